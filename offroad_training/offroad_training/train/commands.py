"""``offroad train`` and ``offroad eval`` (torch and onnxruntime are imported when run)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

LOG = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` and ``eval`` subcommands."""
    p = subparsers.add_parser(
        "train", help="train DDRNet23-slim (seed recipe; see docs/training.md)",
        description="Train DDRNet23-slim on a unified dataset. Writes config.yaml, "
                    "train_log.csv, eval_log.csv, last.pth and best_model.pth to out_dir. "
                    "Ctrl-C / SIGTERM save a resumable last.pth.")
    p.add_argument("--config", type=Path, help="YAML config (defaults: the seed's full run)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable), e.g. --set lr=5e-4")
    p.add_argument("--resume", action="store_true",
                   help="continue exactly from out_dir/last.pth")
    p.add_argument("--fast", action="store_true",
                   help="throughput mode: cudnn.benchmark, TF32, channels_last (GPU results "
                        "are then not bit-reproducible); same as --set fast=true")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train)

    e = subparsers.add_parser(
        "eval", help="per-class IoU, mIoU and confusion matrix of a checkpoint or ONNX model",
        description="The project's evaluator (offroad_core.evaluation) on a unified dataset split.")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="best_model.pth / last.pth")
    src.add_argument("--onnx", type=Path, help="ONNX model (through the inference engine)")
    e.add_argument("--data", type=Path, required=True, help="unified dataset root")
    e.add_argument("--split", default="val")
    e.add_argument("--out", type=Path, help="write the result as JSON here")
    e.add_argument("--limit", type=int, help="evaluate the first N images only")
    e.add_argument("--provider", default="cpu", choices=("auto", "qnn", "cpu"),
                   help="onnxruntime provider for --onnx (default cpu)")
    e.add_argument("--height", type=int, help="model input height for --checkpoint "
                                              "(default: the checkpoint's crop_height)")
    e.add_argument("--width", type=int, help="model input width for --checkpoint")
    e.add_argument("--threads", type=int, default=0, help="torch/onnxruntime threads (0 = all)")
    e.set_defaults(func=run_eval)


def run_train(args: argparse.Namespace) -> int:
    """Entry point of ``offroad train``."""
    from offroad_training.train.config import load_config
    from offroad_training.train.loop import train

    overrides = list(args.overrides) + (["fast=true"] if args.fast else [])
    cfg = load_config(args.config, overrides)
    result = train(cfg, resume=args.resume, progress=not args.no_progress)
    if result.is_main:
        best = f"{result.best_miou:.4f}" if result.best_miou >= 0 else "not evaluated yet"
        print(f"step {result.step}, epoch {result.epoch}, best mIoU {best}; "
              f"checkpoints in {result.out_dir}")
    if result.interrupted:
        return 130 if result.interrupted == "SIGINT" else 143
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Entry point of ``offroad eval`` (bad input raises; ``offroad_training.cli`` reports it)."""
    from offroad_core.evaluation import evaluate
    from offroad_training.data.unified import UnifiedDataset
    from offroad_training.outputs import check_output_file

    if args.out:
        check_output_file(args.out)
    dataset = UnifiedDataset(args.data, args.split)
    if args.onnx is not None:
        from offroad_core.engine import InferenceEngine

        engine = InferenceEngine(args.onnx, provider=args.provider,
                                 num_threads=args.threads or None)
        height, width = engine.contract.height, engine.contract.width

        def predict(rgb):
            return engine.run(rgb).labels

        extra = {"onnx": str(args.onnx), "provider": engine.provider}
    else:
        import torch

        from offroad_training.model.checkpoint import load_checkpoint
        from offroad_training.train.evaluation import torch_predictor

        if args.threads:
            torch.set_num_threads(args.threads)
        model, config = load_checkpoint(args.checkpoint)
        height = args.height or int(config.get("crop_height", 544))
        width = args.width or int(config.get("crop_width", 640))
        predict = torch_predictor(model, config.get("mean", [0.485, 0.456, 0.406]),
                                  config.get("std", [0.229, 0.224, 0.225]))
        extra = {"checkpoint": str(args.checkpoint)}
    result = evaluate(predict, dataset, limit=args.limit, height=height, width=width,
                      progress=True)
    print(result.table())
    if args.out:
        result.save_json(args.out, data=str(args.data), split=args.split, height=height,
                         width=width, **extra)
        print(f"wrote {args.out}")
    return 0
