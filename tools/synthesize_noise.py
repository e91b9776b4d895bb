#!/usr/bin/env python3
"""Draw noisy labels for a `path label` list from a random column-stochastic noise matrix Q.

Writes OUT as `path noisy_label` lines and Q (indexed [noisy, true]) as a 1x1xNxN binaryproto
and text; prints the achieved noise rate.
"""
import argparse
import os

import numpy as np

from noisy_label import cli
from noisy_label.core import matrix_c, noise
from noisy_label.io import imageset


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("list", help="input list: `path label` lines")
    parser.add_argument("out", help="output list: `path noisy_label` lines")
    parser.add_argument("--num-classes", type=cli.at_least(2), required=True)
    parser.add_argument("--noise-level", type=float, default=0.5, help="L in [0, 1] (default 0.5)")
    parser.add_argument("--seed", type=cli.at_least(0), default=1)
    parser.add_argument("--matrix-q", default=None,
                        help="write Q to this .binaryproto (and .txt beside it)")
    args = parser.parse_args()
    text = args.matrix_q and os.path.splitext(args.matrix_q)[0] + ".txt"
    if args.matrix_q and os.path.abspath(text) in (os.path.abspath(args.matrix_q),
                                                   os.path.abspath(args.out)):
        raise ValueError("the text copy of Q would overwrite %s: name --matrix-q *.binaryproto"
                         % text)
    items = imageset.read_image_list(args.list, args.num_classes)
    rng = np.random.RandomState(args.seed)
    matrix_q = noise.synthesize_matrix_q(args.num_classes, args.noise_level, rng)
    labels = np.array([label for _, label in items])
    noisy = noise.draw_noisy_labels(labels, matrix_q, rng)
    imageset.write_image_list(args.out, [(path, n) for (path, _), n in zip(items, noisy)])
    if args.matrix_q:
        matrix_c.save_matrix(args.matrix_q, matrix_q, text)
    print("%d labels, noise level asked %.3f, achieved %.3f"
          % (len(labels), args.noise_level, noise.noise_rate(labels, noisy)))


if __name__ == "__main__":
    cli.run(main, "synthesize_noise")
