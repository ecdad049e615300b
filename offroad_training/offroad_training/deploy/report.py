"""``offroad quantize-report``: did quantisation destroy a class?

Scores the FP32 ONNX model (CPU), the QDQ model (CPU) and the QNN context binary (QNN EP,
HTP backend, emulated on x86_64) with the project's evaluator
(:func:`offroad_core.evaluation.evaluate`) through :class:`offroad_core.engine.InferenceEngine`,
on the same images in the same order.

For each quantised model and class: IoU, delta to FP32 in points, and a flag when

* the IoU drops by more than ``threshold`` points (default 3), or
* the IoU falls under ``near_zero`` points (default 5) while the FP32 IoU was above it
  (the EfficientViT failure: a class silently at 0 %).

Also reported: mIoU and its drop, and the share of pixels whose label equals the FP32 label
(the acceptance criterion for the context binary is >= 99 %). Written as JSON and as a Markdown
table (``<out>.md``); the command exits non-zero when anything is flagged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from offroad_core.evaluation import EvalResult, LabelledDataset, evaluate


class ReportError(ValueError):
    """The models cannot be compared (different sizes or classes)."""


class _Recorder:
    """Predictor that runs an engine and keeps its labels (to compare models pixel by pixel)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.labels: list[np.ndarray] = []

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        labels = self.engine.run(rgb).labels
        self.labels.append(labels)
        return labels


GOAL_AGREEMENT, GOAL_MIOU_DROP, GOAL_CLASS_DROP = 99.0, 0.3, 1.5
"""Goals of the deploy chain for a context binary against FP32: label agreement (%), mIoU drop
and the worst class's IoU drop (points). Printed by ``make demo`` and
``bench/bench_quantization.py`` on the demo-sized model, never asserted on toy models."""


def goal_figures(entry: dict[str, Any]) -> dict[str, Any]:
    """The goal figures of one non-FP32 entry of a report's ``results``, and whether all three
    goals are met."""
    agreement, drop = entry.get("agreement_with_fp32"), entry.get("miou_drop")
    drops = [-d for d in (entry.get("delta") or {}).values() if d is not None]
    worst = max(drops) if drops else None
    met = (agreement is not None and agreement >= GOAL_AGREEMENT
           and drop is not None and drop <= GOAL_MIOU_DROP
           and worst is not None and worst <= GOAL_CLASS_DROP)
    return {"agreement": agreement, "miou_drop": drop, "worst_class_drop": worst, "met": met}


def _points(x: float) -> float | None:
    return None if not math.isfinite(x) else round(100.0 * x, 2)


def quantize_report(fp32: str | Path, dataset: LabelledDataset, *, qdq: str | Path | None = None,
                    ctx: str | Path | None = None, limit: int | None = None,
                    threshold: float = 3.0, near_zero: float = 5.0,
                    engine_factory: Callable[[Path, str], Any] | None = None) -> dict[str, Any]:
    """Evaluate the models and return the report (JSON-safe dict with ``flags``).

    ``engine_factory(path, provider)`` builds the predictors' engines (default:
    :class:`InferenceEngine`); FP32 and QDQ run on ``cpu``, the context binary on ``qnn``.
    """
    import time

    from offroad_core.engine import InferenceEngine

    factory = engine_factory or (lambda p, prov: InferenceEngine(p, provider=prov))
    models = [("fp32", Path(fp32), "cpu")]
    if qdq is not None:
        models.append(("qdq", Path(qdq), "cpu"))
    if ctx is not None:
        models.append(("htp", Path(ctx), "qnn"))
    if len(models) < 2:
        raise ReportError("give at least one quantised model (--qdq and/or --ctx)")
    results: dict[str, EvalResult] = {}
    recorders: dict[str, _Recorder] = {}
    seconds: dict[str, float] = {}
    size = None
    names = None
    for key, path, provider in models:
        engine = factory(path, provider)
        c = engine.contract
        if size is None:
            size, names = (c.height, c.width), c.class_names
        elif (c.height, c.width) != size or c.class_names != names:
            raise ReportError(f"{path}: {c.width}x{c.height} {list(c.class_names)} differs from "
                              f"the FP32 model's {size[1]}x{size[0]} {list(names)}")
        recorders[key] = _Recorder(engine)
        start = time.perf_counter()
        results[key] = evaluate(recorders[key], dataset, limit=limit, height=size[0],
                                width=size[1], num_classes=len(names), class_names=names)
        seconds[key] = round(time.perf_counter() - start, 2)
    base = results["fp32"]
    report: dict[str, Any] = {
        "models": {key: str(path) for key, path, _ in models},
        "providers": {key: provider for key, _, provider in models},
        "images": base.images, "pixels": base.pixels, "size": list(size),
        "threshold_points": threshold, "near_zero_points": near_zero,
        "seconds": seconds, "classes": list(names), "results": {}, "flags": [],
    }
    for key, result in results.items():
        entry: dict[str, Any] = {"miou": _points(result.miou),
                                 "iou": {n: _points(v) for n, v in zip(names, result.iou,
                                                                       strict=True)}}
        if key != "fp32":
            entry["miou_drop"] = _points(base.miou - result.miou)
            same = sum(int((a == b).sum()) for a, b in
                       zip(recorders["fp32"].labels, recorders[key].labels, strict=True))
            total = sum(a.size for a in recorders["fp32"].labels)
            entry["agreement_with_fp32"] = round(100.0 * same / total, 3)
            entry["delta"] = {}
            for name, ref, got in zip(names, base.iou, result.iou, strict=True):
                if not math.isfinite(ref):
                    entry["delta"][name] = None
                    continue
                got = got if math.isfinite(got) else 0.0
                delta = 100.0 * (got - ref)
                entry["delta"][name] = round(delta, 2)
                reason = None
                if 100.0 * got < near_zero <= 100.0 * ref:
                    reason = f"IoU collapsed to {100 * got:.1f} (FP32 {100 * ref:.1f})"
                elif -delta > threshold:
                    reason = f"IoU dropped {-delta:.1f} points (> {threshold:g})"
                if reason:
                    report["flags"].append({"model": key, "class": name, "reason": reason})
        report["results"][key] = entry
    return report


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table (IoU in points, deltas vs FP32, flags)."""
    keys = list(report["results"])
    quant = [k for k in keys if k != "fp32"]
    flagged = {(f["model"], f["class"]) for f in report["flags"]}

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1f}"

    head = ["class", "FP32"] + [f"{k.upper()} | Δ {k.upper()}" for k in quant]
    lines = [f"# Quantisation report ({report['images']} images, {report['size'][1]}x"
             f"{report['size'][0]})", "",
             "| " + " | ".join(head) + " |",
             "|" + "---|" * (1 + 1 + 2 * len(quant))]
    for name in report["classes"]:
        row = [name, fmt(report["results"]["fp32"]["iou"][name])]
        for k in quant:
            r = report["results"][k]
            mark = " **FLAG**" if (k, name) in flagged else ""
            row += [fmt(r["iou"][name]), fmt(r["delta"][name]) + mark]
        lines.append("| " + " | ".join(row) + " |")
    row = ["**mIoU**", fmt(report["results"]["fp32"]["miou"])]
    for k in quant:
        r = report["results"][k]
        row += [fmt(r["miou"]), fmt(-r["miou_drop"] if r["miou_drop"] is not None else None)]
    lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for k in quant:
        lines.append(f"- {k.upper()}: labels equal to FP32 on "
                     f"{report['results'][k]['agreement_with_fp32']:.2f}% of pixels")
    lines.append("")
    if report["flags"]:
        lines.append("**FLAGGED** (drop > "
                     f"{report['threshold_points']:g} points or IoU < "
                     f"{report['near_zero_points']:g}):")
        lines += [f"- {f['model']}: {f['class']}: {f['reason']}" for f in report["flags"]]
    else:
        lines.append(f"No class dropped more than {report['threshold_points']:g} points.")
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write ``out`` (JSON with provenance) and ``out`` with suffix ``.md``, atomically."""
    from offroad_core.atomic import atomic_write_text
    from offroad_core.provenance import provenance

    out = Path(out)
    json_path = atomic_write_text(out, json.dumps({**report, "provenance": provenance()},
                                                  indent=2) + "\n")
    md_path = atomic_write_text(out.with_suffix(".md"), markdown(report))
    return json_path, md_path
