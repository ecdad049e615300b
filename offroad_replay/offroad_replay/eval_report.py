"""What ``offroad evaluate-bag`` reports: ``report.json``, ``frames.csv`` and the terminal
summary, from a finished :class:`offroad_replay.evaluate_bag.BagEvaluator`."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from offroad_replay.scoring import percentiles


def build_report(evaluator: Any, bag: str | Path, with_labels: bool,
                 with_map: bool) -> dict[str, Any]:
    """The JSON report of an evaluation run (see ``offroad_replay/README.md``)."""
    from offroad_core.provenance import provenance

    ev = evaluator
    engine, c = ev.segmentation.engine, ev.contract
    seg = ev.labels.result()
    fractions = np.array([[r[f"frac_{n}"] for n in c.class_names] for r in ev.rows])
    return {
        "bag": str(bag),
        "model": {"path": str(engine.model_path), "sha256": engine.model_sha256,
                  "model_id": c.model_id, "provider": engine.provider,
                  "input": [c.width, c.height]},
        "counters": ev.counters,
        "rejected_by_reason": ev.rejected,
        "latency_ms": {s: percentiles(v) for s, v in ev.timings.items()},
        "class_distribution": {
            "mean": dict(zip(c.class_names, np.round(fractions.mean(axis=0), 5).tolist(),
                             strict=True)),
            "per_frame": "frames.csv (frac_<class> columns)"},
        "segmentation": seg.to_dict() if with_labels and seg is not None else None,
        "costmap": ev.grids.summary() if with_map else None,
        "costmap_depth": ev.depth.summary() if with_map else None,
        "segmentation_params": asdict(ev.segmentation_config),
        "costmap_params": ev.costmap_config.values,
        "notes": ev.notes,
        "outputs": [*sorted(ev.outputs.written), "frames.csv", "report.json"],
        "provenance": provenance(),
    }


def frame_row(n: int, stamp_ns: int, stage_ms: dict[str, float], labels: np.ndarray,
              class_names: tuple[str, ...]) -> dict[str, Any]:
    """The start of a ``frames.csv`` row: stamp, stage timings, class fractions."""
    counts = np.bincount(labels.ravel(), minlength=256)[: len(class_names)]
    return {"frame": n, "stamp_ns": stamp_ns,
            **{f"{s}_ms": round(float(v), 3) for s, v in stage_ms.items()},
            **{f"frac_{name}": round(float(k / labels.size), 5)
               for name, k in zip(class_names, counts, strict=True)}}


def frames_csv(rows: list[dict[str, Any]]) -> str:
    """The per-frame rows as CSV text (header from the first row)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def summary_text(report: dict[str, Any]) -> str:
    """A few lines for the terminal."""
    lines = [f"frames: {report['counters']['frames']} (model {report['model']['model_id']} on "
             f"{report['model']['provider']}, confidence threshold "
             f"{report['segmentation_params']['confidence_threshold']})"]
    for stage, stats in report["latency_ms"].items():
        if stats["n"]:
            lines.append(f"  {stage:<12} p50 {stats['p50']:8.2f} ms  p90 {stats['p90']:8.2f} ms")
    if report["segmentation"]:
        lines.append(f"mIoU {100 * report['segmentation']['miou']:.2f} "
                     f"(pixel accuracy {100 * report['segmentation']['pixel_accuracy']:.2f})")
    if report["costmap"] and report["costmap"]["agreement"] is not None:
        c = report["costmap"]
        lines.append(f"costmap agreement {100 * c['agreement']:.2f} % of "
                     f"{c['compared_cells']} cells (coverage {100 * c['coverage']:.1f} %, "
                     f"unsafe {c['unsafe_cells']})")
    d = report.get("costmap_depth")
    if d and d["agreement"] is not None:
        lines.append(f"depth mode agreement {100 * d['agreement']:.2f} % of "
                     f"{d['compared_cells']} cells (coverage {100 * d['coverage']:.1f} %, "
                     f"unsafe {d['unsafe_cells']}; grids {d['grids_by_mode']})")
        v = d.get("in_camera_view") or {}
        if v.get("agreement") is not None:
            lines.append(f"depth mode in the camera's view (cells the flat grid observed) "
                         f"{100 * v['agreement']:.2f} % of {v['compared_cells']} cells "
                         f"(unsafe {v['unsafe_cells']})")
    lines += [f"note: {note}" for note in report["notes"]]
    return "\n".join(lines)
