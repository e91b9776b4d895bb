#!/usr/bin/env python3
"""Build a dataset's LMDBs, mean file and matrix C into $EXP/db/<dataset>/ (`make lmdb`).

    python tools/make_lmdb.py digits
    python tools/make_lmdb.py cifar10 --noise-level 0.3 --num-clean 10000
    python tools/make_lmdb.py cifar10 --jpeg-quality 75      # the original's JPEG step too
    python tools/make_lmdb.py clothing1M --data-root /data/clothing1M --skip-bad
"""
import argparse

from noisy_label import cli, datasets, paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("dataset", choices=datasets.names())
    parser.add_argument("--exp", default=None, help="experiment root (default: $EXP or exp/)")
    parser.add_argument("--data-root", default=None,
                        help="raw data (default: <exp>/datasets/<dataset>)")
    parser.add_argument("--seed", type=cli.at_least(0), default=1,
                        help="seed of the noise, splits, shuffles; seed n > 1 writes to "
                             "<exp>/seeds/n, where make train SEED=n reads (default 1)")
    parser.add_argument("--force", action="store_true", help="rebuild outputs that are up to date")
    parser.add_argument("--noise-level", type=float, default=None,
                        help="cifar10/digits: synthetic noise level in [0, 1] (default 0.5)")
    parser.add_argument("--num-clean", type=int, default=None,
                        help="cifar10/digits: training images that keep clean labels "
                             "(default 10000 / 100)")
    parser.add_argument("--jpeg-quality", type=int, default=None,
                        help="cifar10: pass the images through JPEG at this quality first, as "
                             "the original release did (75); default: lossless")
    parser.add_argument("--resize", type=cli.at_least(0), default=None,
                        help="clothing1M: resize images to RESIZE x RESIZE (default 256; 0 keeps)")
    parser.add_argument("--upsample", type=float, default=None,
                        help="clothing1M: clean train keys per noisy key in the mixed set "
                             "(default 1.0)")
    parser.add_argument("--encoded", action="store_true",
                        help="store JPEG (clothing1M) / PNG (cifar10, digits) instead of raw pixels")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip (and list) missing or corrupt images instead of stopping")
    args = parser.parse_args()
    # Seed n has its own root (paths.seed_root); the raw data is shared.
    datasets.build(args.dataset, exp=paths.seed_root(args.exp, args.seed),
                   data_root=args.data_root or paths.data_root(args.dataset, args.exp),
                   seed=args.seed,
                   force=args.force, encoded=args.encoded, skip_bad=args.skip_bad,
                   noise_level=args.noise_level, num_clean=args.num_clean,
                   jpeg_quality=args.jpeg_quality, resize=args.resize, upsample=args.upsample)


if __name__ == "__main__":
    cli.run(main, "make_lmdb")
