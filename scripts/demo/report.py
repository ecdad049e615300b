"""Demo stage 9: one self-contained HTML page from the demo's outputs.

Reads ``train/eval_log.csv``, ``quant_report/report.json`` and ``live/result.json`` under the
demo output directory and writes ``report/index.html`` (pictures referenced relatively, so the
directory can be copied as a whole). Figures absent from the outputs are shown as "n/a".
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path
from typing import Any

from offroad_core.atomic import atomic_write_text

STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1200px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #bbb; padding: 3px 8px; text-align: right; }
th { background: #eee; } td:first-child, th:first-child { text-align: left; }
.bad { color: #b00; font-weight: bold; } .good { color: #070; font-weight: bold; }
figure { display: inline-block; margin: 4px; } figcaption { font-size: small; }
"""


def _load_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _training(out: Path) -> str:
    path = out / "train" / "eval_log.csv"
    if not path.exists():
        return "<p>No evaluation log.</p>"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return "<p>Empty evaluation log.</p>"
    keys = list(rows[0].keys())
    return _table(keys, [[_maybe_float(r[k]) for k in keys] for r in rows])


def _maybe_float(text: str) -> Any:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text
    return value if abs(value) > 1.5 or value == 0 else round(100.0 * value, 2)


def _quantization(q: dict[str, Any] | None) -> str:
    if q is None:
        return "<p>No quantization report.</p>"
    models = list(q["results"])
    rows = [["mIoU"] + [q["results"][m]["miou"] for m in models]]
    rows += [[name] + [q["results"][m]["iou"].get(name) for m in models] for name in q["classes"]]
    rows.append(["agreement with FP32 (% pixels)"]
                + [q["results"][m].get("agreement_with_fp32") for m in models])
    flags = q.get("flags") or []
    flag_html = ("<p class='good'>No class flagged (threshold "
                 f"{_fmt(q.get('threshold_points'))} IoU points).</p>" if not flags else
                 "<ul>" + "".join(f"<li class='bad'>{html.escape(f['model'])}: "
                                  f"{html.escape(f['class'])}: {html.escape(f['reason'])}</li>"
                                  for f in flags) + "</ul>")
    providers = ", ".join(f"{m}: {q['providers'][m]}" for m in models)
    return (f"<p>{q['images']} val images at {q['size'][1]}x{q['size'][0]}; providers "
            f"{html.escape(providers)} (htp = context binary on the emulated HTP).</p>"
            + _table(["IoU (points)", *models], rows) + flag_html)


def _live(live: dict[str, Any] | None) -> str:
    if live is None:
        return "<p>No live replay result.</p>"
    c = live.get("counters") or {}
    cm = live.get("costmap") or {}
    rows = [
        ["execution provider", live.get("execution_provider")],
        ["frames in the bag", live.get("frames_in_bag")],
        ["label images received", live.get("labels_received")],
        ["frames dropped by the node (latest-frame policy)", c.get("frames_dropped")],
        ["frames rejected", c.get("frames_rejected")],
        ["share of pixels confident enough to publish (%)", live.get("label_coverage")],
        ["mIoU of the node's confident labels (points)", live.get("miou")],
        ["grids scored", live.get("grids_scored")],
        ["costmap agreement with ground truth (% cells)",
         None if cm.get("agreement") is None else 100.0 * cm["agreement"]],
        ["coverage of known ground-truth cells (%)",
         None if cm.get("coverage") is None else 100.0 * cm["coverage"]],
        ["unsafe cells (truth BLOCKED/HAZARD, ours FREE)", cm.get("unsafe_cells")],
    ]
    lat = live.get("latency_ms") or {}
    lat_rows = [[stage, v.get("p50"), v.get("p90"), v.get("max")] for stage, v in lat.items()]
    iou = live.get("iou") or {}
    return (_table(["", "value"], rows)
            + "<h3>Stage latency (ms; x86 HTP emulator, not the robot)</h3>"
            + _table(["stage", "p50", "p90", "max"], lat_rows)
            + "<h3>Per-class IoU of the node's labels</h3>"
            + _table(["class", "IoU"], [[k, v] for k, v in iou.items()]))


def _pictures(live: dict[str, Any] | None) -> str:
    if not live or not live.get("pictures"):
        return "<p>No pictures.</p>"
    captions = {"overlay": "node labels", "ground_truth": "ground-truth labels",
                "costmap": "our costmap", "costmap_truth": "ground-truth costmap"}
    parts = []
    for entry in live["pictures"]:
        figs = "".join(
            f"<figure><img src='../live/{html.escape(entry[k])}'><figcaption>{cap}"
            "</figcaption></figure>" for k, cap in captions.items() if k in entry)
        parts.append(f"<div>{figs}</div>")
    return ("<p>Costmaps: forward is up, the robot at the bottom centre; green FREE, yellow "
            "CAUTION, red BLOCKED/HAZARD, grey unknown.</p>" + "".join(parts))


def write_report(out: Path, stage_seconds: dict[str, float]) -> Path:
    """Write ``out/report/index.html`` and return its path."""
    quant = _load_json(out / "quant_report" / "report.json")
    live = _load_json(out / "live" / "result.json")
    body = [
        "<h1>Off-road perception demo: synthetic world, end to end</h1>",
        "<p>synthetic data &rarr; training &rarr; ONNX export &rarr; INT8 QDQ &rarr; QNN "
        "context binary (HTP v73, soc 77, emulated on x86) &rarr; bag replay through the "
        "segmentation and costmap nodes over DDS.</p>",
        "<h2>Stages (wall time, s)</h2>",
        _table(["stage", "seconds"], [[k, v] for k, v in stage_seconds.items()]),
        "<h2>Training (evaluation log)</h2>", _training(out),
        "<h2>Quantization health: FP32 vs QDQ vs HTP</h2>", _quantization(quant),
        "<h2>Live replay through the nodes</h2>", _live(live),
        "<h2>Frames</h2>", _pictures(live),
    ]
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>offroad demo</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")
    return atomic_write_text(out / "report" / "index.html", page)


def summary_lines(out: Path) -> list[str]:
    """The headline figures, for the console."""
    quant = _load_json(out / "quant_report" / "report.json") or {"results": {}}
    live = _load_json(out / "live" / "result.json") or {}
    res = quant["results"]
    lines = ["mIoU (val, points): " + ", ".join(
        f"{k} {_fmt(v.get('miou'))}" for k, v in res.items())]
    if "htp" in res:
        lines.append(f"HTP vs FP32: drop {_fmt(res['htp'].get('miou_drop'), 2)} points, "
                     f"label agreement {_fmt(res['htp'].get('agreement_with_fp32'), 2)} %")
    cm = live.get("costmap") or {}
    c = live.get("counters") or {}
    lines.append(f"live: {live.get('labels_received')} label images for "
                 f"{live.get('frames_in_bag')} frames ({c.get('frames_dropped')} dropped), "
                 f"mIoU {_fmt(live.get('miou'))}, costmap agreement "
                 f"{_fmt(None if cm.get('agreement') is None else 100 * cm['agreement'])} %")
    return lines
