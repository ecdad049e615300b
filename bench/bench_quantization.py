"""Quantization goal figures on the demo-sized model: HTP context binary vs FP32.

    python bench/bench_quantization.py [--run demo_output] [--limit 50]

Goals (the acceptance of the deploy chain; printed here and by ``make demo``, never asserted by
a unit test on a toy model): labels of the context binary equal FP32 on >= 99 % of val pixels,
mIoU drop <= 0.3 points, no class drops more than 1.5 points.

Uses the model ``make demo`` trained (``<run>/train/best_model.pth`` and ``<run>/data``, the
272x320 synthetic model); without one it runs the demo's dataset and training stages first
(about 15 min on 2 cores). Then, in this process, it exports the FP32 deploy graph, quantizes
it with the naive baseline (plain ``w8a8``) and with the shipped default (``w8a8-mixed``),
compiles both for the HTP (v73, soc 77, emulated on x86) and scores all of them on the same
val images with the project's evaluator. The ratio is the baseline's disagreement with FP32
over the default's. Accuracy only: HTP emulation is never timed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SYNTH_CONFIG = REPO / "offroad_training" / "offroad_training" / "configs" / "synthetic.yaml"


def _ensure_demo_model(run: Path) -> tuple[Path, Path]:
    """The demo's checkpoint and dataset; made with the demo's own commands when missing."""
    checkpoint, data = run / "train" / "best_model.pth", run / "data"
    if checkpoint.is_file() and data.is_dir():
        return checkpoint, data
    print(f"no demo model under {run}: running the demo's dataset and training stages "
          "(~15 min)", flush=True)
    offroad = [sys.executable, "-m", "offroad_training.cli"]
    subprocess.run([*offroad, "data", "synth", "--out", str(data), "--frames", "250",
                    "--size", "320x272", "--seed", "1", "--val-fraction", "0.2",
                    "--no-progress"], check=True, cwd=REPO)
    subprocess.run([*offroad, "train", "--config", str(SYNTH_CONFIG), "--no-progress",
                    "--set", f"data_root={data}", "--set", f"out_dir={run / 'train'}",
                    "--set", "crop_height=272", "--set", "crop_width=320"], check=True, cwd=REPO)
    return checkpoint, data


def _figures(report: dict) -> dict:
    from offroad_training.deploy.report import goal_figures

    htp, fp32 = report["results"]["htp"], report["results"]["fp32"]
    return {**goal_figures(htp), "fp32_miou": fp32["miou"], "htp_miou": htp["miou"]}


def main() -> int:
    """Run the comparison and print the goal table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, default=REPO / "demo_output",
                   help="a make demo output directory (trained model + synthetic data)")
    p.add_argument("--limit", type=int, default=50, help="val images scored")
    p.add_argument("--calib", type=int, default=200, help="calibration images")
    args = p.parse_args()

    from offroad_training.data.unified import UnifiedDataset
    from offroad_training.deploy.compile import compile_context
    from offroad_training.deploy.export import export_checkpoint
    from offroad_training.deploy.quantize import quantize_dataset
    from offroad_training.deploy.report import (
        GOAL_AGREEMENT,
        GOAL_CLASS_DROP,
        GOAL_MIOU_DROP,
        quantize_report,
    )

    checkpoint, data = _ensure_demo_model(args.run.resolve())
    rows = {}
    with tempfile.TemporaryDirectory(prefix="bench-quant-") as tmp:
        work = Path(tmp)
        fp32 = export_checkpoint(checkpoint, work / "model.onnx", confidence=True)
        val = UnifiedDataset(data, "val")
        for name, precision in (("naive w8a8", "w8a8"), ("default w8a8-mixed", "w8a8-mixed")):
            qdq = quantize_dataset(fp32, UnifiedDataset(data, "train"),
                                   work / f"{precision}.qdq.onnx", num=args.calib, seed=1,
                                   precision=precision)
            ctx = compile_context(qdq, work / f"{precision}_ctx.onnx")
            report = quantize_report(fp32, val, qdq=qdq, ctx=ctx.model, limit=args.limit)
            rows[name] = _figures(report)
            print(f"{name}: done", flush=True)
    print(f"\nHTP context binary vs FP32 on {args.limit} val images of {data}")
    print(f"{'precision':<20} {'agree %':>8} {'mIoU drop':>10} {'worst class':>12} "
          f"{'FP32 mIoU':>10}")
    for name, r in rows.items():
        print(f"{name:<20} {r['agreement']:>8.2f} {r['miou_drop']:>10.2f} "
              f"{r['worst_class_drop']:>12.2f} {r['fp32_miou']:>10.2f}")
    d = rows["default w8a8-mixed"]
    naive = rows["naive w8a8"]
    ratio = (100 - naive["agreement"]) / max(100 - d["agreement"], 1e-6)
    print(f"\ngoal: agreement >= {GOAL_AGREEMENT} % -> {d['agreement']:.2f} "
          f"({'met' if d['agreement'] >= GOAL_AGREEMENT else 'NOT met'})")
    print(f"goal: mIoU drop <= {GOAL_MIOU_DROP} -> {d['miou_drop']:.2f} "
          f"({'met' if d['miou_drop'] <= GOAL_MIOU_DROP else 'NOT met'})")
    print(f"goal: no class drops > {GOAL_CLASS_DROP} -> worst {d['worst_class_drop']:.2f} "
          f"({'met' if d['worst_class_drop'] <= GOAL_CLASS_DROP else 'NOT met'})")
    print(f"ratio: naive w8a8 disagrees with FP32 on {ratio:.1f}x the pixels of the default")
    return 0


if __name__ == "__main__":
    sys.exit(main())
