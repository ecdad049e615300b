"""``offroad data convert | merge`` (see docs/data.md); ``offroad data synth`` is added to the same
group by :mod:`offroad_training.cli` (the data layer does not depend on the synthetic world)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add ``data`` with its ``convert`` and ``merge`` commands; return the ``data`` group's
    subparsers (where the CLI adds ``synth``)."""
    from offroad_training.data.unified import parse_size

    data = subparsers.add_parser(
        "data", help="datasets: convert RELLIS-3D/RUGD/GOOSE, merge, synthesise",
        description="Build unified datasets (images/, labels/, splits/, ontology.json, "
                    "stats.json) for training and evaluation.")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    data.set_defaults(func=lambda _args: (data.print_help(), 2)[1])

    c = data_sub.add_parser(
        "convert", help="one source dataset -> the unified format (parallel, resumable)",
        description="Convert RELLIS-3D, RUGD or GOOSE as distributed into the unified format. "
                    "A re-run resumes (finished pairs are skipped); corrupt or size-mismatched "
                    "pairs are reported in stats.json and skipped.")
    c.add_argument("--dataset", required=True, choices=("rellis3d", "rugd", "goose"))
    c.add_argument("--root", type=Path, required=True, help="the dataset as downloaded")
    c.add_argument("--out", type=Path, required=True, help="unified dataset directory")
    c.add_argument("--base-size", type=parse_size, default=(1280, 1088), metavar="WxH",
                   help="output size, or 'native' to keep the source size (default 1280x1088 "
                        "= 2x the model input)")
    c.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    c.add_argument("--jpeg-quality", type=int, default=95, metavar="Q")
    c.add_argument("--rugd-split", type=Path, metavar="FILE",
                   help="RUGD only: sequence split as YAML {split: [sequence, ...]} instead of "
                        "the built-in one (public sources differ; see docs/data.md)")
    c.add_argument("--restart", action="store_true",
                   help="forget previous progress and rewrite every pair")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=run_convert)

    m = data_sub.add_parser(
        "merge", help="converted datasets -> one training set + the seed's validation set",
        description="Merge converted datasets: 'train' = the --train-splits of every source, "
                    "'val' = --val (default rellis3d:test), plus '<source>_<split>' for each "
                    "source split. Ids become '<source>_<id>'. Files are hard-linked (copied "
                    "across filesystems or with --copy).")
    m.add_argument("sources", nargs="+", metavar="[NAME=]DIR",
                   help="converted datasets (name defaults to stats.json 'dataset')")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--val", default="rellis3d:test", metavar="SOURCE:SPLIT")
    m.add_argument("--train-splits", default="train,val", metavar="SPLIT[,SPLIT]")
    m.add_argument("--copy", action="store_true", help="copy files instead of hard links")
    m.set_defaults(func=run_merge)
    return data_sub


def run_convert(args: argparse.Namespace) -> int:
    """Entry point of ``offroad data convert``."""
    from offroad_training.data.convert import ConvertError, convert, summary

    if not 1 <= args.jpeg_quality <= 100:
        raise ConvertError("--jpeg-quality must be in 1..100")
    stats = convert(args.dataset, args.root, args.out, base_size=args.base_size,
                    jpeg_quality=args.jpeg_quality, workers=args.workers or None,
                    restart=args.restart, progress=not args.no_progress,
                    split_file=args.rugd_split)
    print(summary(stats))
    print(f"wrote {args.out}")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    """Entry point of ``offroad data merge``."""
    from offroad_training.data.merge import merge, parse_source

    splits = [s.strip() for s in args.train_splits.split(",") if s.strip()]
    result = merge([parse_source(s) for s in args.sources], args.out, val=args.val,
                   train_splits=splits, copy=args.copy)
    counts = ", ".join(f"{k} {v}" for k, v in result["counts"].items())
    print(f"merged {', '.join(result['sources'])}: {counts}; files {result['files']}")
    print(f"wrote {args.out}")
    return 0
