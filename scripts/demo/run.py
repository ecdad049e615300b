"""``make demo``: the whole chain on the synthetic world, end to end, in one command.

Stages (each one a real command of this repository, logged to ``OUT/logs/<stage>.log``):

1. ``offroad data synth``        training/val dataset (unified format) from the synthetic world
2. ``offroad data synth --bag``  a rosbag2 (mcap) of the robot driving through another world,
                                 with a depth image, a LiDAR cloud, ground-truth labels and
                                 top-down class maps (``--bag-relief``: its world's relief)
3. ``offroad train``             DDRNet23-slim from scratch, ``configs/synthetic.yaml``
4. ``offroad export onnx``       the deploy graph (uint8 NHWC in, uint8 labels + confidence out)
5. ``offroad quantize``          INT8 QDQ (W8A8), calibrated on the training split
6. ``offroad compile``           QNN context binary for the IQ-9075 (HTP v73, soc 77), CPU
                                 fallback disabled
7. ``offroad quantize-report``   FP32 / QDQ / HTP (emulated) mIoU with the project's evaluator
8. ``offroad evaluate-bag``      both costmap modes offline on the bag (flat ground; depth
                                 image + LiDAR, docs/depth.md), FP32 model on the CPU
9. live replay                   the bag through the real segmentation node (provider ``qnn``,
                                 the context binary on the emulated HTP) and the real costmap
                                 node over DDS, outputs recorded and scored (``live.py``)
10. report                       ``OUT/report/index.html`` (``report.py``)

Decisions (x86, 2 cores, under 20 minutes): the demo model runs at 272x320 (H x W), half the
robot's 544x640, because the x86 HTP emulator needs ~1 s per frame at that size and ~4.3 s at
544x640 (docs/deployment.md); the training frames are rendered at that size. The bag frames are
640x544 (the same field of view at twice the resolution), so the node's resize path is
exercised. Every stage is re-run on each ``make demo`` except the
dataset synthesis, which ``offroad data synth`` resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import live
import report

REPO = Path(__file__).resolve().parents[2]
SYNTH_CONFIG = REPO / "offroad_training" / "offroad_training" / "configs" / "synthetic.yaml"


class StageError(RuntimeError):
    """A demo stage failed; the message names the stage and its log."""


class Stages:
    """Runs and times the stages; keeps their wall times for the report."""

    def __init__(self, out: Path, total: int) -> None:
        """``out`` is the demo output directory; ``total`` the number of stages."""
        self.out = out
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.total = total
        self.done = 0
        self.seconds: dict[str, float] = {}

    def run(self, name: str, command: list[str], ok_codes: tuple[int, ...] = (0,)) -> int:
        """Run one command, its output to ``logs/<name>.log``; raise StageError on failure.

        Exit codes in ``ok_codes`` count as success; the code is returned.
        """
        self.done += 1
        log_path = self.logs / f"{name}.log"
        print(f"[{self.done}/{self.total}] {name}: {' '.join(command)}", flush=True)
        started = time.monotonic()
        with open(log_path, "w") as log:
            result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                    check=False)
        self.seconds[name] = round(time.monotonic() - started, 1)
        if result.returncode not in ok_codes:
            tail = "".join(log_path.read_text(errors="replace").splitlines(True)[-25:])
            raise StageError(f"stage {name!r} failed (exit {result.returncode}); "
                             f"log: {log_path}\n{tail}")
        print(f"      done in {self.seconds[name]:.1f} s", flush=True)
        return result.returncode

    def offroad(self, name: str, *args: str, ok_codes: tuple[int, ...] = (0,)) -> int:
        """Run one ``offroad`` command as a stage."""
        return self.run(name, [sys.executable, "-m", "offroad_training.cli", *args], ok_codes)

    def call(self, name: str, function, *args, **kwargs):
        """Run a Python stage (same bookkeeping as :meth:`run`)."""
        self.done += 1
        print(f"[{self.done}/{self.total}] {name}", flush=True)
        started = time.monotonic()
        value = function(*args, **kwargs)
        self.seconds[name] = round(time.monotonic() - started, 1)
        print(f"      done in {self.seconds[name]:.1f} s", flush=True)
        return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line of the demo (defaults = what ``make demo`` runs)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "demo_output", help="output directory")
    p.add_argument("--frames", type=int, default=250, help="synthetic dataset frames")
    p.add_argument("--bag-frames", type=int, default=30, help="frames in the replayed bag")
    p.add_argument("--bag-rate", type=float, default=0.5,
                   help="bag frame rate (Hz); the x86 HTP emulator needs 1-2 s a frame")
    p.add_argument("--height", type=int, default=272, help="model input height")
    p.add_argument("--width", type=int, default=320, help="model input width")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs (default: synthetic.yaml's)")
    p.add_argument("--calib", type=int, default=200, help="calibration images")
    p.add_argument("--eval-limit", type=int, default=50, help="val images in the quant report")
    p.add_argument("--bag-relief", default="flat",
                   help="relief of the bag's world (flat, gentle, rugged); the training data "
                        "stays flat")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run every stage; print where the report is. Exit 1 when a stage fails."""
    args = parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("train", "model", "quant_report", "bag_eval", "live", "report"):
        shutil.rmtree(out / stale, ignore_errors=True)
    data, bag, model = out / "data", out / "synthetic_bag", out / "model"
    stages = Stages(out, total=10)
    started = time.monotonic()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        stages.offroad(
            "synth_dataset", "data", "synth", "--out", str(data), "--frames", str(args.frames),
            "--size", f"{args.width}x{args.height}", "--seed", str(args.seed),
            "--val-fraction", "0.2", "--no-progress")
        shutil.rmtree(bag, ignore_errors=True)
        stages.offroad(
            "synth_bag", "data", "synth", "--out", str(out / "bag_world"), "--restart",
            "--frames", str(args.bag_frames), "--size", f"{2 * args.width}x{2 * args.height}",
            "--seed", str(args.seed + 1000), "--bag", str(bag), "--rate", str(args.bag_rate),
            "--storage", "mcap", "--relief", args.bag_relief, "--no-progress")
        train_set = [f"data_root={data}", f"out_dir={out / 'train'}",
                     f"crop_height={args.height}", f"crop_width={args.width}"]
        if args.epochs is not None:
            train_set.append(f"epochs={args.epochs}")
        stages.offroad("train", "train", "--config", str(SYNTH_CONFIG), "--no-progress",
                       *[a for kv in train_set for a in ("--set", kv)])
        checkpoint = out / "train" / "best_model.pth"
        stages.offroad(
            "export", "export", "onnx", "--checkpoint", str(checkpoint),
            "--out", str(model / "model.onnx"), "--confidence")  # size: the checkpoint's
        stages.offroad(
            "quantize", "quantize", "--onnx", str(model / "model.onnx"), "--calib", str(data),
            "--num", str(args.calib), "--seed", str(args.seed),
            "--out", str(model / "model.qdq.onnx"))
        stages.offroad(
            "compile", "compile", "--qdq", str(model / "model.qdq.onnx"),
            "--out", str(model / "model_ctx.onnx"), "--soc-model", "77", "--htp-arch", "73")
        # exit 3 = a class flagged by the health check: shown in the report, not a demo failure
        flagged = stages.offroad(
            "quantize_report", "quantize-report", "--fp32", str(model / "model.onnx"),
            "--qdq", str(model / "model.qdq.onnx"), "--ctx", str(model / "model_ctx.onnx"),
            "--data", str(data), "--split", "val", "--limit", str(args.eval_limit),
            "--out", str(out / "quant_report" / "report.json"), ok_codes=(0, 3))
        if flagged:
            print("      QUANTIZATION DAMAGE FLAGGED: see the report", flush=True)
        # both costmap modes (flat ground, depth image + LiDAR) offline on the same bag, with
        # the FP32 model on the CPU: the modes differ by geometry, not by the model's runtime
        stages.offroad(
            "evaluate_bag", "evaluate-bag", str(bag), "--model", str(model / "model.onnx"),
            "--params", str(REPO / "launch" / "config" / "replay.yaml"), "--provider", "cpu",
            "--out", str(out / "bag_eval"), "--every", "1000")
        live_result = stages.call("live_replay", live.run_live, bag=bag,
                                  model=model / "model_ctx.onnx", out=out / "live",
                                  logs=stages.logs)
        if live_result.get("error"):
            raise StageError(f"live replay: {live_result['error']} (logs in {stages.logs})")
        stages.seconds["total"] = round(time.monotonic() - started, 1)
        index = stages.call("report", report.write_report, out, stages.seconds)
    except StageError as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        return 1
    (out / "stage_seconds.json").write_text(json.dumps(stages.seconds, indent=2) + "\n")
    summary = report.summary_lines(out)
    print("\n" + "\n".join(summary))
    print(f"\nDemo finished in {stages.seconds['total'] / 60:.1f} min. Report: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
