"""Demo stage 10: one self-contained HTML page from the demo's outputs.

Reads ``train/train_log.csv``, ``train/eval_log.csv``, ``quant_report/report.json`` and
``live/result.json`` under the demo output directory and writes ``report/index.html`` with
plots beside the tables: training curves, per-class IoU of FP32 / QDQ / HTP, per-frame latency
and frame age over the replay (matplotlib, Agg backend, PNGs next to the HTML; every file
written atomically). Pictures are referenced relatively, so the directory can be copied as a
whole. Figures absent from the outputs are shown as "n/a" and their plot is left out.
"""

from __future__ import annotations

import csv
import html
import json
import math
from pathlib import Path
from typing import Any

from offroad_core.atomic import atomic_path, atomic_write_text
from offroad_training.deploy.report import (
    GOAL_AGREEMENT,
    GOAL_CLASS_DROP,
    GOAL_MIOU_DROP,
    goal_figures,
)

PLOT_DPI = 100

STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1200px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #bbb; padding: 3px 8px; text-align: right; }
th { background: #eee; } td:first-child, th:first-child { text-align: left; }
.bad { color: #b00; font-weight: bold; } .good { color: #070; font-weight: bold; }
figure { display: inline-block; margin: 4px; } figcaption { font-size: small; }
.side { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
.side img { max-width: 640px; }
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


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _series(rows: list[dict[str, Any]], x: str, y: str) -> tuple[list[float], list[float]]:
    """(xs, ys) of the rows where both are numbers."""
    xs, ys = [], []
    for row in rows:
        try:
            a, b = float(row[x]), float(row[y])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(a) and math.isfinite(b):
            xs.append(a)
            ys.append(b)
    return xs, ys


def _save(fig: Any, path: Path) -> str:
    """Write a matplotlib figure as PNG atomically; return its name (relative to the HTML)."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=PLOT_DPI, bbox_inches="tight")
    plt.close(fig)
    return path.name


def _figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (6.4, 3.2)) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, cols, figsize=size, squeeze=False)


def plot_training(out: Path, report_dir: Path) -> str | None:
    """Training loss and val mIoU per step (``train_log.csv``, ``eval_log.csv``)."""
    loss = _series(_read_csv(out / "train" / "train_log.csv"), "step", "loss")
    miou = _series(_read_csv(out / "train" / "eval_log.csv"), "step", "miou")
    if not loss[0] and not miou[0]:
        return None
    fig, axes = _figure(1, 2, (10.0, 3.4))
    left, right = axes[0]
    left.plot(*loss, color="tab:blue", linewidth=1)
    left.set(title="training loss", xlabel="step", ylabel="loss")
    right.plot(miou[0], [100.0 * v for v in miou[1]], "o-", color="tab:green")
    right.set(title="val mIoU", xlabel="step", ylabel="mIoU (points)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return _save(fig, report_dir / "training.png")


def plot_quant_iou(q: dict[str, Any] | None, report_dir: Path) -> str | None:
    """Per-class IoU of every model of the quantize report, as grouped bars."""
    if not q or not q.get("classes") or not q.get("results"):
        return None
    classes, models = list(q["classes"]), list(q["results"])
    fig, axes = _figure(1, 1, (max(6.4, 1.1 * len(classes) + 2), 3.6))
    ax = axes[0][0]
    width = 0.8 / len(models)
    for i, model in enumerate(models):
        iou = q["results"][model].get("iou") or {}
        values = [iou.get(name) for name in classes]
        xs = [c + (i - (len(models) - 1) / 2) * width for c in range(len(classes))]
        ax.bar(xs, [math.nan if v is None else v for v in values], width,
               label=f"{model.upper()} (mIoU {_fmt(q['results'][model].get('miou'))})")
    ax.set_xticks(range(len(classes)), classes, rotation=20, ha="right")
    ax.set(ylabel="IoU (points)", ylim=(0, 100), title="per-class IoU on the val images")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, report_dir / "quant_iou.png")


def plot_live(live: dict[str, Any] | None, report_dir: Path) -> str | None:
    """Stage latencies and frame age per frame over the replay (``per_frame``)."""
    rows = (live or {}).get("per_frame") or []
    if not rows:
        return None
    fig, axes = _figure(2, 1, (8.0, 5.0))
    top, bottom = axes[0][0], axes[1][0]
    for stage in ("preprocess", "inference", "postprocess"):
        top.plot(*_series(rows, "t_s", f"{stage}_ms"), ".-", label=stage)
    top.set(title="per-frame latency (x86 HTP emulator, not the robot)", ylabel="ms")
    top.set_yscale("log")  # inference is 100-1000x the other stages on the emulator
    top.legend(fontsize="small")
    bottom.plot(*_series(rows, "t_s", "age_ms"), ".-", color="tab:red")
    bottom.set(title="frame age when its labels were published (bag /clock time, which stops "
                     "with the bag)", xlabel="bag time (s)", ylabel="ms")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, report_dir / "live_latency.png")


def _beside(table: str, plot: str | None, alt: str) -> str:
    if plot is None:
        return table
    return (f"<div class='side'><div>{table}</div>"
            f"<img src='{html.escape(plot)}' alt='{html.escape(alt)}'></div>")


def _training(out: Path) -> str:
    rows = _read_csv(out / "train" / "eval_log.csv")
    if not rows:
        return "<p>No evaluation log.</p>"
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
        ["confidence threshold of the segmentation node", live.get("confidence_threshold")],
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


def _modes(ev: dict[str, Any] | None) -> str:
    """Flat ground vs depth mode, offline on the same bag (``offroad evaluate-bag``)."""
    if not ev or not ev.get("costmap"):
        return "<p>No offline costmap evaluation.</p>"
    rows = []
    for name, c in (("flat ground (labels only)", ev["costmap"]),
                    ("depth mode (depth image + LiDAR)", ev.get("costmap_depth"))):
        if not c:
            rows.append([name, None, None, None, None])
            continue
        rows.append([name, None if c["agreement"] is None else 100.0 * c["agreement"],
                     None if c["coverage"] is None else 100.0 * c["coverage"],
                     c["unsafe_cells"], c["compared_cells"]])
    return _table(["mode", "agreement (% cells)", "coverage (%)", "unsafe cells",
                   "cells compared"], rows)


def write_report(out: Path, stage_seconds: dict[str, float]) -> Path:
    """Write ``out/report/index.html`` and its plots; return the HTML's path."""
    quant = _load_json(out / "quant_report" / "report.json")
    live = _load_json(out / "live" / "result.json")
    bag_eval = _load_json(out / "bag_eval" / "report.json")
    report_dir = out / "report"
    body = [
        "<h1>Off-road perception demo: synthetic world, end to end</h1>",
        "<p>synthetic data &rarr; training &rarr; ONNX export &rarr; INT8 QDQ &rarr; QNN "
        "context binary (HTP v73, soc 77, emulated on x86) &rarr; bag replay through the "
        "segmentation and costmap nodes over DDS.</p>",
        "<h2>Stages (wall time, s)</h2>",
        _table(["stage", "seconds"], [[k, v] for k, v in stage_seconds.items()]),
        "<h2>Training (evaluation log)</h2>",
        _beside(_training(out), plot_training(out, report_dir), "training curves"),
        "<h2>Quantization health: FP32 vs QDQ vs HTP</h2>",
        _beside(_quantization(quant), plot_quant_iou(quant, report_dir), "per-class IoU"),
        "<h2>Costmap modes on the bag (offline, FP32 model)</h2>", _modes(bag_eval),
        "<h2>Live replay through the nodes</h2>",
        _beside(_live(live), plot_live(live, report_dir), "per-frame latency and age"),
        "<h2>Frames</h2>", _pictures(live),
    ]
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>offroad demo</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")
    return atomic_write_text(report_dir / "index.html", page)


def _htp_goal_line(htp: dict) -> str:
    """The context binary against FP32, beside the deploy chain's goals (printed, not asserted)."""
    g = goal_figures(htp)
    return (f"HTP vs FP32: label agreement {_fmt(g['agreement'], 2)} % (goal >= "
            f"{GOAL_AGREEMENT:g}), mIoU drop {_fmt(g['miou_drop'], 2)} points (goal <= "
            f"{GOAL_MIOU_DROP:g}), worst class {_fmt(g['worst_class_drop'], 2)} points (goal <= "
            f"{GOAL_CLASS_DROP:g}): {'goals met' if g['met'] else 'GOALS NOT MET'}")


def summary_lines(out: Path) -> list[str]:
    """The headline figures, for the console."""
    quant = _load_json(out / "quant_report" / "report.json") or {"results": {}}
    live = _load_json(out / "live" / "result.json") or {}
    res = quant["results"]
    lines = ["mIoU (val, points): " + ", ".join(
        f"{k} {_fmt(v.get('miou'))}" for k, v in res.items())]
    if "htp" in res:
        lines.append(_htp_goal_line(res["htp"]))
    cm = live.get("costmap") or {}
    c = live.get("counters") or {}
    lines.append(f"live: {live.get('labels_received')} label images for "
                 f"{live.get('frames_in_bag')} frames ({c.get('frames_dropped')} dropped), "
                 f"mIoU {_fmt(live.get('miou'))}, costmap agreement "
                 f"{_fmt(None if cm.get('agreement') is None else 100 * cm['agreement'])} %")
    ev = _load_json(out / "bag_eval" / "report.json") or {}
    depth = ev.get("costmap_depth") or {}
    modes = [("flat", ev.get("costmap")),
             ("depth in the camera's view", depth.get("in_camera_view")),
             ("depth whole grid (LiDAR cells outside the view: geometry only)", depth)]
    if any(c and c.get("agreement") is not None for _, c in modes):
        lines.append("offline costmap agreement: " + ", ".join(
            f"{name} {_fmt(100 * c['agreement'])} % (unsafe {c['unsafe_cells']})"
            for name, c in modes if c and c.get("agreement") is not None))
    return lines
