"""The demo report (``scripts/demo/report.py``) from small fake demo outputs: the HTML holds
the tables and references one PNG plot per section, each a valid image, written atomically;
missing inputs leave their plot out instead of failing."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import pytest

REPO = Path(__file__).resolve().parents[1]
PLOTS = ("training.png", "quant_iou.png", "live_latency.png")
CLASSES = ["smooth_ground", "rough_ground", "vegetation", "obstacle", "water", "sky", "dynamic"]


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("demo_report",
                                                  REPO / "scripts" / "demo" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_outputs(out: Path) -> None:
    train = out / "train"
    train.mkdir(parents=True)
    (train / "train_log.csv").write_text("step,epoch,loss,lr,seconds\n" + "".join(
        f"{s},{s // 10},{2.0 / (1 + s):.4f},0.01,0.1\n" for s in range(1, 41)))
    (train / "eval_log.csv").write_text("step,epoch,miou,pixel_accuracy,best_miou\n"
                                        "10,1,0.20,0.5,0.20\n20,2,0.35,0.7,0.35\n"
                                        "40,4,0.41,0.8,0.41\n")
    results = {m: {"miou": 50.0 - i, "iou": {c: 40.0 + 5 * k - i for k, c in enumerate(CLASSES)}}
               for i, m in enumerate(("fp32", "qdq", "htp"))}
    results["htp"]["iou"]["water"] = None  # a class absent from the val images
    for m in ("qdq", "htp"):
        results[m]["agreement_with_fp32"] = 99.1
    quant = {"results": results, "classes": CLASSES, "images": 10, "size": [272, 320],
             "providers": {"fp32": "cpu", "qdq": "cpu", "htp": "qnn"}, "flags": [],
             "threshold_points": 3.0}
    (out / "quant_report").mkdir()
    (out / "quant_report" / "report.json").write_text(json.dumps(quant))
    per_frame = [{"stamp_ns": i, "t_s": 2.0 * i, "preprocess_ms": 2.0, "inference_ms": 900.0 + i,
                  "postprocess_ms": 3.0, "age_ms": 1200.0 + 10 * i, "costmap_agreement": 90.0}
                 for i in range(12)]
    live = {"execution_provider": "QNNExecutionProvider", "frames_in_bag": 12,
            "labels_received": 12, "miou": 40.0, "confidence_threshold": 0.6,
            "latency_ms": {"inference": {"p50": 905.0, "p90": 910.0, "max": 911.0}},
            "iou": {"sky": 90.0}, "per_frame": per_frame, "pictures": []}
    (out / "live").mkdir()
    (out / "live" / "result.json").write_text(json.dumps(live))


def test_report_has_a_valid_plot_beside_each_table(report, tmp_path: Path) -> None:
    _fake_outputs(tmp_path)
    index = report.write_report(tmp_path, {"train": 12.5, "total": 60.0})
    page = index.read_text()
    for name in PLOTS:
        path = index.parent / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        image = cv2.imread(str(path))
        assert image is not None and image.shape[0] > 200 and image.shape[1] > 300, name
        assert image.std() > 10, f"{name} looks blank"  # axes, lines and bars drawn
        assert f"src='{name}'" in page
    assert "<table>" in page and "0.6" in page  # the tables stay, with the live threshold
    assert not list(index.parent.glob(".*"))  # atomic writes left no temporaries


def test_missing_inputs_leave_their_plots_out(report, tmp_path: Path) -> None:
    index = report.write_report(tmp_path, {})
    assert index.exists() and "No evaluation log." in index.read_text()
    assert not any((index.parent / name).exists() for name in PLOTS)


def _summary(report, out: Path, htp: dict) -> list[str]:
    (out / "quant_report").mkdir(parents=True, exist_ok=True)
    (out / "quant_report" / "report.json").write_text(json.dumps(
        {"results": {"fp32": {"miou": 75.0}, "htp": {"miou": 74.8, **htp}}}))
    return report.summary_lines(out)


def test_summary_prints_the_goal_verdict_and_both_costmap_modes(report, tmp_path: Path) -> None:
    good = {"agreement_with_fp32": 99.08, "miou_drop": 0.2, "delta": {"water": -0.95,
                                                                      "sky": None}}
    (tmp_path / "bag_eval").mkdir()
    depth = {"agreement": 0.742, "unsafe_cells": 138,
             "in_camera_view": {"agreement": 0.948, "unsafe_cells": 137}}
    (tmp_path / "bag_eval" / "report.json").write_text(json.dumps(
        {"costmap": {"agreement": 0.953, "unsafe_cells": 530}, "costmap_depth": depth}))
    lines = _summary(report, tmp_path, good)
    htp = next(line for line in lines if line.startswith("HTP vs FP32"))
    assert "99.08 %" in htp and "worst class 0.95 points" in htp and htp.endswith("goals met")
    modes = next(line for line in lines if line.startswith("offline costmap"))
    assert "flat 95.3 % (unsafe 530)" in modes
    assert "camera's view 94.8 % (unsafe 137)" in modes and "74.2 % (unsafe 138)" in modes
    for bad in ({**good, "agreement_with_fp32": 98.9}, {**good, "miou_drop": 0.31},
                {**good, "delta": {"water": -1.6}}):
        assert _summary(report, tmp_path, bad)[1].endswith("GOALS NOT MET")
