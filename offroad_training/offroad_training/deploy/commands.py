"""``offroad export onnx``, ``quantize``, ``compile``, ``quantize-report`` and ``hub``.

Heavy imports (torch, onnx, onnxruntime) happen inside the command functions. Every command
prints a one-line ``offroad <cmd>: ...`` error and returns 2 on bad input; ``quantize-report``
returns 3 when a class is flagged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from offroad_core.exit_codes import CommandError
from offroad_training.outputs import check_output_file


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the deployment subcommands."""
    export = subparsers.add_parser("export", help="export a checkpoint to ONNX")
    export_sub = export.add_subparsers(dest="format", metavar="FORMAT", required=True)
    e = export_sub.add_parser(
        "onnx", help="deploy ONNX graph (uint8 NHWC in, uint8 labels out; opset 17)",
        description="Export best_model.pth/last.pth to the deploy ONNX graph (see "
                    "docs/deployment.md). --kind logits writes the float-logits graph used "
                    "for evaluation.")
    e.add_argument("--checkpoint", type=Path, required=True)
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--height", type=int, help="input height (default: the checkpoint's "
                                              "training size, crop_height)")
    e.add_argument("--width", type=int, help="input width (default: the checkpoint's crop_width)")
    e.add_argument("--kind", choices=("labels", "logits"), default="labels")
    e.add_argument("--upsample", choices=("bilinear", "nearest"), default="bilinear",
                   help="bilinear logits then ArgMax (default), or ArgMax at 1/8 then nearest")
    e.add_argument("--confidence", action="store_true",
                   help="add the uint8 confidence output (max softmax x 255)")
    e.set_defaults(func=run_export)

    q = subparsers.add_parser(
        "quantize", help="QDQ quantisation for the QNN HTP (W8A8, 16-bit DAPPM + head)",
        description="Quantise the FP32 deploy graph with onnxruntime's QNN configuration, "
                    "calibrating on a seeded random subset of a unified dataset split.")
    q.add_argument("--onnx", type=Path, required=True, help="FP32 deploy graph")
    q.add_argument("--calib", type=Path, required=True, help="unified dataset root")
    q.add_argument("--split", default="train", help="calibration split (default train)")
    q.add_argument("--num", type=int, default=300, help="calibration images (200-500)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--precision", choices=("w8a8-mixed", "w8a8", "w8a16"),
                   default="w8a8-mixed",
                   help="activations: uint8 with uint16 DAPPM + head (default), all uint8, "
                        "or all uint16; weights int8 per-channel")
    q.add_argument("--out", type=Path, required=True)
    q.set_defaults(func=run_quantize)

    c = subparsers.add_parser(
        "compile", help="QNN HTP context binary (EPContext .onnx + .bin)",
        description="Compile a QDQ model (or the FP32 one with --fp16) to a QNN context binary "
                    "with onnxruntime-qnn; CPU fallback disabled.")
    c.add_argument("--qdq", type=Path, required=True, help="QDQ model (FP32 with --fp16)")
    c.add_argument("--out", type=Path, required=True, help="EPContext model (.onnx)")
    c.add_argument("--soc-model", type=int, default=77)
    c.add_argument("--htp-arch", type=int, default=73)
    c.add_argument("--fp16", action="store_true", help="FP16 context binary from the FP32 graph")
    c.set_defaults(func=run_compile)

    r = subparsers.add_parser(
        "quantize-report", help="per-class IoU of FP32 vs QDQ vs HTP context binary; flags "
                                "classes destroyed by quantisation (exit 3)",
        description="Evaluate the FP32 ONNX (CPU), the QDQ model (CPU) and the context binary "
                    "(QNN HTP, emulated on x86) with the project's evaluator; write JSON and "
                    "Markdown.")
    r.add_argument("--fp32", type=Path, required=True)
    r.add_argument("--qdq", type=Path)
    r.add_argument("--ctx", type=Path, help="EPContext model")
    r.add_argument("--data", type=Path, required=True, help="unified dataset root")
    r.add_argument("--split", default="val")
    r.add_argument("--limit", type=int, help="first N images only")
    r.add_argument("--threshold", type=float, default=3.0, help="max IoU drop in points")
    r.add_argument("--near-zero", type=float, default=5.0,
                   help="IoU (points) under which a class counts as collapsed")
    r.add_argument("--out", type=Path, required=True, help="JSON report; .md written next to it")
    r.set_defaults(func=run_report)

    h = subparsers.add_parser(
        "hub", help="quantise/compile/profile on Qualcomm AI Hub (needs qai-hub + token)",
        description="Submit compile and profile jobs through the qai-hub client, download the "
                    "context binary and write the same metadata as `offroad compile`.")
    h.add_argument("--onnx", type=Path, required=True, help="FP32 or QDQ deploy graph")
    h.add_argument("--device", default="Dragonwing IQ-9075 EVK")
    h.add_argument("--out", type=Path, required=True, help="EPContext model (.onnx)")
    h.add_argument("--calib", type=Path, help="unified dataset root (hub quantise job)")
    h.add_argument("--num", type=int, default=300)
    h.add_argument("--no-profile", action="store_true")
    h.set_defaults(func=run_hub)


def _fail(command: str, exc: Exception) -> int:
    print(f"offroad {command}: {exc}", file=sys.stderr)
    return 2


def run_export(args: argparse.Namespace) -> int:
    """Entry point of ``offroad export onnx``."""
    from offroad_training.deploy.export import ExportError, export_checkpoint
    from offroad_training.model.checkpoint import CheckpointError

    try:
        out = export_checkpoint(args.checkpoint, args.out, height=args.height, width=args.width,
                                kind=args.kind, upsample=args.upsample,
                                confidence=args.confidence)
    except (ExportError, CheckpointError) as exc:
        return _fail("export onnx", exc)
    print(f"wrote {out}")
    return 0


def run_quantize(args: argparse.Namespace) -> int:
    """Entry point of ``offroad quantize``."""
    from offroad_core.contract import ContractError
    from offroad_training.data.unified import DatasetError, UnifiedDataset
    from offroad_training.deploy.quantize import QuantizeError, quantize_dataset

    try:
        check_output_file(args.out)
        dataset = UnifiedDataset(args.calib, args.split)
        out = quantize_dataset(args.onnx, dataset, args.out, num=args.num, seed=args.seed,
                               precision=args.precision, source=f"{args.calib}:{args.split}")
    except (QuantizeError, ContractError, DatasetError, CommandError) as exc:
        return _fail("quantize", exc)
    print(f"wrote {out}")
    return 0


def run_compile(args: argparse.Namespace) -> int:
    """Entry point of ``offroad compile``."""
    from offroad_core.contract import ContractError
    from offroad_training.deploy.compile import CompileError, compile_context

    try:
        check_output_file(args.out)
        result = compile_context(args.qdq, args.out, soc_model=args.soc_model,
                                 htp_arch=args.htp_arch,
                                 precision="fp16" if args.fp16 else None)
    except (CompileError, ContractError, CommandError) as exc:
        return _fail("compile", exc)
    print(f"wrote {result.model} + {result.binary.name} ({result.qnn.precision}, "
          f"sha256 {result.qnn.binary_sha256[:12]}, {result.seconds:.1f} s)")
    return 0


def run_report(args: argparse.Namespace) -> int:
    """Entry point of ``offroad quantize-report``."""
    from offroad_core.engine import EngineError
    from offroad_training.data.unified import DatasetError, UnifiedDataset
    from offroad_training.deploy.report import ReportError, quantize_report, write_report

    try:
        check_output_file(args.out)
        dataset = UnifiedDataset(args.data, args.split)
        report = quantize_report(args.fp32, dataset, qdq=args.qdq, ctx=args.ctx,
                                 limit=args.limit, threshold=args.threshold,
                                 near_zero=args.near_zero)
    except (ReportError, DatasetError, EngineError, CommandError) as exc:
        return _fail("quantize-report", exc)
    json_path, md_path = write_report(report, args.out)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")
    if report["flags"]:
        print("QUANTIZATION DAMAGE: " + json.dumps(report["flags"]), file=sys.stderr)
        return 3
    return 0


def run_hub(args: argparse.Namespace) -> int:
    """Entry point of ``offroad hub``."""
    from offroad_training.deploy.hub import HubError, hub_compile

    try:
        check_output_file(args.out)
        result = hub_compile(args.onnx, args.out, device=args.device, calib=args.calib,
                             num=args.num, profile=not args.no_profile)
    except (HubError, CommandError) as exc:
        return _fail("hub", exc)
    print(f"wrote {result.model} + {result.binary.name}")
    return 0
