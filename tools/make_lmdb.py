#!/usr/bin/env python3
"""Build a dataset's LMDBs, mean file and matrix C into $EXP/db/<dataset>/ (`make lmdb`).

    python tools/make_lmdb.py digits
    python tools/make_lmdb.py cifar10 --noise-level 0.3 --num-clean 10000
    python tools/make_lmdb.py cifar10 --option jpeg_quality=75    # as make's JPEG_QUALITY=75
    python tools/make_lmdb.py clothing1M --data-root /data/clothing1M --skip-bad
    python tools/make_lmdb.py mine --data-root /data/mine         # a folder with a dataset.yaml

Each dataset declares its own options (datasets.Option): `--help` after a dataset's name
lists them.
"""
import argparse

from noisy_label import cli, datasets, paths


def parser_for(ds=None) -> argparse.ArgumentParser:
    """The flags every dataset takes, plus the options of `ds` (None: of the built-in ones)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("dataset", help="%s, or a folder's name with a dataset.yaml"
                        % " | ".join(datasets.builtin_names()))
    parser.add_argument("--exp", default=None, help="experiment root (default: $EXP or exp/)")
    parser.add_argument("--data-root", default=None,
                        help="raw data (default: <exp>/datasets/<dataset>)")
    parser.add_argument("--seed", type=cli.at_least(0), default=1,
                        help="seed of the noise, splits, shuffles; seed n > 1 writes to "
                             "<exp>/seeds/n, where make train SEED=n reads (default 1)")
    parser.add_argument("--force", action="store_true", help="rebuild outputs that are up to date")
    parser.add_argument("--encoded", action="store_true",
                        help="store JPEG (key-list datasets) / PNG (cifar10, digits) instead of "
                             "raw pixels")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip (and list) missing or corrupt images instead of stopping")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a dataset option by name (how make passes NOISE_LEVEL=... on)")
    group = parser.add_argument_group("options of " + (ds.name if ds else "the built-in datasets"))
    seen = set()
    # The other datasets' flags are taken too (unlisted), to be refused by name: "digits does
    # not take UPSAMPLE" says more than argparse's "unrecognized arguments".
    for each in ([ds] if ds else []) + list(map(datasets.get_dataset, datasets.builtin_names())):
        for option in each.options:
            if option.name not in seen:
                seen.add(option.name)
                shown = ds is None or each is ds
                group.add_argument("--" + option.name.replace("_", "-"), dest=option.name,
                                   default=None, help=argparse.SUPPRESS if not shown else
                                   "%s%s%s" % (option.help, "" if option.default is None
                                               else " (default %s)" % option.default,
                                               "" if ds else "; " + each.name))
    parser.set_defaults(flags=sorted(seen))
    return parser


def dataset_options(ds, args) -> dict:
    """{option: value} given by flag or --option NAME=VALUE, each read as its declared type."""
    declared = {option.name: option for option in ds.options}
    given = {name: getattr(args, name) for name in args.flags if getattr(args, name) is not None}
    for item in args.option:
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep:
            raise ValueError("--option %r: expected NAME=VALUE" % item)
        given[name] = value
    unknown = sorted(name for name in given if name not in declared)
    if unknown:
        raise ValueError("%s does not take %s (%s)" % (
            ds.name, ", ".join(n.upper() for n in unknown), "it takes: " + ", ".join(sorted(
                n.upper() for n in declared)) if declared else "it takes no options"))
    return {name: declared[name].parse(value, ds.name) for name, value in given.items()}


def main():
    # The dataset first (a user's is found by its dataset.yaml), then its options.
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("dataset", nargs="?")
    pre.add_argument("--exp")
    pre.add_argument("--data-root")
    pre.add_argument("--seed", type=int, default=1)
    first, _ = pre.parse_known_args()
    ds = datasets.find(first.dataset, first.exp, first.data_root, first.seed) \
        if first.dataset else None
    args = parser_for(ds).parse_args()
    # Seed n has its own root (paths.seed_root); the raw data is shared.
    datasets.build(ds.name, exp=paths.seed_root(args.exp, args.seed),
                   data_root=args.data_root or ds.raw_root(args.exp),
                   seed=args.seed, force=args.force, encoded=args.encoded, skip_bad=args.skip_bad,
                   **dataset_options(ds, args))


if __name__ == "__main__":
    cli.run(main, "make_lmdb")
