#!/usr/bin/env python3
"""Copy trained layers from one net into another with a layer-name map, and save the result.

    python tools/copy_params.py clean_trainval.prototxt clean.caffemodel \\
        noisy_label_loss_trainval.prototxt init.caffemodel \\
        --map conv1:conv1_clean conv2:conv2_clean ...

As the original release's copy_params.py, every layer that both nets have by the same name
is copied too (a bare LAYER in --map says so explicitly). --target-weights starts from
existing weights (e.g. to add a second net's layers to the output of a first call);
otherwise the target's fillers.
"""
import argparse
import sys

from noisy_label import net_surgery


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("source_net", help="source net prototxt")
    parser.add_argument("source_weights", help="source .caffemodel")
    parser.add_argument("target_net", help="target net prototxt")
    parser.add_argument("out", help="output .caffemodel")
    parser.add_argument("--map", nargs="*", default=[], metavar="SOURCE[:TARGET]",
                        help="renames, besides the layers both nets have by the same name")
    parser.add_argument("--target-weights", default=None, help="start from these target weights")
    args = parser.parse_args()
    try:
        layer_map = net_surgery.parse_layer_map(args.map)
        copied = net_surgery.copy_params(args.source_net, args.source_weights, args.target_net,
                                         args.out, layer_map, args.target_weights)
    except (IOError, ValueError) as e:
        sys.exit("copy_params: %s" % e)
    print("copied %s -> %s" % (", ".join("%s->%s" % pair for pair in copied),
                               args.out))


if __name__ == "__main__":
    main()
