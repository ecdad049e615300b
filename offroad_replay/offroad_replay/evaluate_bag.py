"""``offroad evaluate-bag BAG --model MODEL``: the nodes' code run offline over a rosbag2.

No rclpy and no DDS: messages are deserialised with ``rosbags`` and every frame goes through the
same code the nodes run: :class:`offroad_core.segmentation.pipeline.FramePipeline` (resize,
inference, confidence gate) over :class:`offroad_core.engine.InferenceEngine`, and the costmap core
(:class:`offroad_core.costmap.projection.GroundProjector` with the node's parameter validation
:func:`offroad_core.costmap.params.validate`). Metrics use THE evaluator's
:class:`offroad_core.evaluation.ConfusionMatrix`.

Topics (defaults = the synthetic bag layout of ``offroad data synth --bag``; all overridable):
``/camera/image_raw`` (sensor_msgs/Image or CompressedImage), ``/camera/camera_info``,
``/ground_truth/labels`` (mono8, same header stamp as its image), ``/ground_truth/class_map``
(nav_msgs/OccupancyGrid in ``base_link`` of the frame with the same stamp; data = class id
0..6, -1 unknown; row index along +y, column along +x as in every OccupancyGrid).

Decisions:

* Frames are processed in bag order, every one (no drops: this measures the model, not the
  machine's real-time budget). Ground truth is joined to its image by header stamp; an image
  whose ground truth has not arrived within ``join_window`` seconds of bag time is scored
  without it (counted as ``frames_without_labels`` / ``frames_without_class_map``).
* mIoU is scored at the model resolution (the evaluator's protocol: labels resized with
  ``resize_labels``) on the **ungated** model labels; the confidence gate only affects what the
  costmap sees (as in the nodes).
* Costmap: one grid per frame in ``base_link`` from the labels and the bag's CameraInfo rescaled
  to the label size; temporal fusion (``use_odom``) is not replayed: the score is per frame.
  Costmap agreement: over the cells that are known in both our grid and the ground truth
  (class id with a traversability category other than UNKNOWN), the fraction whose
  OccupancyGrid value equals the value of the ground-truth class's category. Also reported:
  coverage (known ground-truth cells we observed) and unsafe cells (ground truth BLOCKED or
  HAZARD, ours FREE).
* Latency per stage (decode, preprocess, inference, postprocess, costmap) is wall time in this
  process: on the x86 HTP emulator it is not the robot's latency.
* Outputs (each file written atomically, the report last): ``report.json``, ``frames.csv``
  (per-frame stamp, stage timings, class fractions, pixel accuracy, agreement),
  ``overlays/<n>.png`` and ``costmaps/<n>.png`` every ``every`` frames, or one
  ``overlay.mp4`` (cv2 ``mp4v``) with ``video``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from offroad_core.atomic import atomic_path, atomic_write_text
from offroad_core.camera import Camera, CameraIntrinsics
from offroad_core.costmap.categories import LabelTable
from offroad_core.costmap.grid import GridGeometry, grid_picture
from offroad_core.costmap.params import ConfigError, CostmapConfig, validate
from offroad_core.costmap.projection import GroundProjector, ProjectionError, ProjectionTables
from offroad_core.evaluation import ConfusionMatrix
from offroad_core.imaging import (
    ImageDecodeError,
    decode_compressed,
    decode_image,
    resize_labels,
)
from offroad_core.segmentation.overlay import blend_overlay, palette_lut
from offroad_core.segmentation.pipeline import FramePipeline
from offroad_core.stamps import stamp_ns
from offroad_replay.bag_replay import BagError, open_reader

log = logging.getLogger(__name__)

STAGES = ("decode", "preprocess", "inference", "postprocess", "costmap")
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
COSTMAP_NODE = "offroad_costmap"


@dataclass
class Topics:
    """Bag topics the evaluation reads."""

    image: str = "/camera/image_raw"
    camera_info: str = "/camera/camera_info"
    labels: str = "/ground_truth/labels"
    class_map: str = "/ground_truth/class_map"


@dataclass
class EvalOptions:
    """Options of one bag evaluation (see the module docstring)."""

    model: str
    out_dir: str
    provider: str = "cpu"
    num_threads: int | None = None
    topics: Topics = field(default_factory=Topics)
    costmap_params: dict[str, Any] = field(default_factory=dict)
    confidence_threshold: float = 0.0
    every: int = 10
    video: bool = False
    overlay_alpha: float = 0.5
    limit: int | None = None
    join_window: float = 1.0


def load_costmap_params(path: str | Path) -> dict[str, Any]:
    """The costmap node's ``ros__parameters`` of a ROS params YAML file.

    Sections ``offroad_costmap``, ``/offroad_costmap``, ``/**/offroad_costmap`` or ``/**`` (the
    first found); ``use_sim_time`` (every node's built-in parameter) is dropped.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read costmap params {path}: {exc}") from exc
    for key in (COSTMAP_NODE, f"/{COSTMAP_NODE}", f"/**/{COSTMAP_NODE}", "/**"):
        section = (data or {}).get(key) if isinstance(data, dict) else None
        if isinstance(section, dict) and "ros__parameters" in section:
            params = dict(section["ros__parameters"] or {})
            params.pop("use_sim_time", None)
            return params
    raise ConfigError(f"{path}: no '{COSTMAP_NODE}: ros__parameters:' section")


def _header_ns(header: Any) -> int:
    return stamp_ns(header.stamp)


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "p50": None, "p90": None, "max": None, "n": 0}
    a = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(a.mean()), 3), "p50": round(float(np.median(a)), 3),
            "p90": round(float(np.percentile(a, 90)), 3), "max": round(float(a.max()), 3),
            "n": len(values)}


@dataclass
class _Pending:
    """An image waiting for its ground truth."""

    image: Any = None
    msgtype: str = ""
    labels: Any = None
    class_map: Any = None
    bag_ns: int = 0


class GridScorer:
    """Costmap agreement of our per-frame grids with ground-truth class maps."""

    def __init__(self, table: LabelTable, level_lut: np.ndarray, geometry: GridGeometry) -> None:
        """``table`` maps class ids to severity levels, ``level_lut`` levels to grid values."""
        self.table = table
        self.level_lut = level_lut
        self.xs, self.ys = geometry.cell_centres()
        self.agree = 0
        self.compared = 0
        self.gt_known = 0
        self.unsafe = 0
        self.level_confusion = np.zeros((5, 5), dtype=np.int64)  # rows gt level, cols ours

    def score(self, ours: np.ndarray, levels: np.ndarray, gt: Any) -> float | None:
        """Add one frame; return its agreement (None when no cell is comparable)."""
        info = gt.info
        geom = GridGeometry(float(info.resolution), int(info.width), int(info.height),
                            float(info.origin.position.x), float(info.origin.position.y))
        data = np.asarray(gt.data, dtype=np.int16).reshape(geom.ny, geom.nx)
        cell = geom.cell_index(self.xs, self.ys)
        gt_class = np.full(ours.shape, -1, dtype=np.int16)
        gt_class[cell >= 0] = data.ravel()[cell[cell >= 0]]
        known = (gt_class >= 0) & (gt_class < 256)
        gt_level = np.zeros(ours.shape, dtype=np.uint8)
        gt_level[known] = self.table.levels[gt_class[known]]
        known &= gt_level > 0
        gt_value = self.level_lut[gt_level]
        observed = ours >= 0
        both = known & observed
        agree = int((ours[both] == gt_value[both]).sum())
        self.agree += agree
        self.compared += int(both.sum())
        self.gt_known += int(known.sum())
        self.unsafe += int((both & (gt_level >= 3) & (levels == 1)).sum())
        np.add.at(self.level_confusion, (gt_level[both], levels[both]), 1)
        return agree / int(both.sum()) if both.any() else None

    def summary(self) -> dict[str, Any]:
        """Totals over every scored frame."""
        return {
            "agreement": self.agree / self.compared if self.compared else None,
            "compared_cells": self.compared,
            "coverage": self.compared / self.gt_known if self.gt_known else None,
            "unsafe_cells": self.unsafe,
            "level_names": ["none", "FREE", "CAUTION", "BLOCKED", "HAZARD"],
            "level_confusion_gt_rows": self.level_confusion.tolist(),
        }


def _messages(reader: Any, connections: list[Any], typestore: Any,
              bag: str | Path) -> Iterator[tuple[Any, int, Any]]:
    """Deserialised ``(connection, bag time ns, message)``; :class:`BagError` if corrupt."""
    from rosbags.rosbag2 import ReaderError

    try:
        for conn, bag_ns, raw in reader.messages(connections):
            yield conn, int(bag_ns), typestore.deserialize_cdr(raw, conn.msgtype)
    except (ReaderError, KeyError, ValueError, IndexError, AssertionError) as exc:
        raise BagError(f"corrupt bag {bag}: {type(exc).__name__}: {exc}") from exc


class BagEvaluator:
    """Streams a bag through the segmentation pipeline and the costmap core."""

    def __init__(self, options: EvalOptions) -> None:
        """Load the model and validate the costmap parameters (clear errors, nothing run)."""
        from offroad_core.engine import InferenceEngine

        if options.every < 1:
            raise ConfigError(f"--every must be >= 1, got {options.every}")
        self.options = options
        self.config: CostmapConfig = validate(options.costmap_params)
        if self.config.use_odom:
            log.warning("use_odom is set: bag evaluation scores per-frame grids (no fusion)")
        engine = InferenceEngine(options.model, options.provider,
                                 num_threads=options.num_threads)
        self.pipeline = FramePipeline(engine, options.confidence_threshold)
        c = engine.contract
        self.contract = c
        self.table = LabelTable.build(list(range(c.num_classes)), list(c.class_names),
                                      self.config.categories, self.config.vertical_classes,
                                      c.ignore_index)
        self.lut = palette_lut(c.palette, c.ignore_index)
        self.cm = ConfusionMatrix(c.num_classes, c.ignore_index)
        self.scorer = GridScorer(self.table, self.config.category_values.level_lut(),
                                 self.config.geometry)
        self._projector: GroundProjector | None = None
        self._projector_key: tuple | None = None
        self.out = Path(options.out_dir)
        self.timings: dict[str, list[float]] = {s: [] for s in STAGES}
        self.rows: list[dict[str, Any]] = []
        self.counters = {"frames": 0, "frames_without_labels": 0, "frames_without_class_map": 0,
                         "frames_without_camera_info": 0, "rejected": 0}
        self.rejected: dict[str, int] = {}
        self._camera_info: Any = None
        self._video: Any = None
        self._video_tmp: Any = None
        self.written: list[str] = []

    # ------------------------------------------------------------------ costmap
    def _projector_for(self, cam: Any) -> GroundProjector:
        key = (cam.width, cam.height, tuple(cam.k), tuple(cam.d), cam.distortion_model)
        if self._projector is None or key != self._projector_key:
            intr = CameraIntrinsics.from_camera_info(cam.width, cam.height, cam.k, cam.d,
                                                     cam.distortion_model)
            intr = intr.scaled(self.contract.width, self.contract.height)
            tables = ProjectionTables.build(Camera(intr, self.config.pose), self.config.geometry,
                                            self.config.max_range, self.config.oversample)
            self._projector = GroundProjector(tables, self.table, self.config.category_values,
                                              self.config.min_support, self.config.occlusion)
            self._projector_key = key
        return self._projector

    # ------------------------------------------------------------------ frames
    def _reject(self, reason: str, message: str) -> None:
        self.counters["rejected"] += 1
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        log.warning("frame rejected (%s): %s", reason, message)

    def process(self, item: _Pending, with_labels: bool, with_map: bool) -> None:
        """Run one frame through every stage and score it."""
        msg = item.image
        t0 = time.perf_counter()
        try:
            if item.msgtype.endswith("CompressedImage"):
                rgb = decode_compressed(msg.format, msg.data)
            else:
                rgb = decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data)
        except ImageDecodeError as exc:
            self._reject(exc.reason, str(exc))
            return
        t1 = time.perf_counter()
        model_input = self.pipeline.preprocess(rgb)
        t2 = time.perf_counter()
        out = self.pipeline.infer(model_input)
        t3 = time.perf_counter()
        result = self.pipeline.postprocess(model_input, out)
        t4 = time.perf_counter()
        grid = None
        if self._camera_info is not None:
            try:
                grid = self._projector_for(self._camera_info).project(result.labels)
            except (ProjectionError, ValueError) as exc:
                self._reject("no_ground_in_view", str(exc))
        else:
            self.counters["frames_without_camera_info"] += 1
        t5 = time.perf_counter()
        n = self.counters["frames"]
        self.counters["frames"] += 1
        stage_ms = dict(zip(STAGES, np.diff([t0, t1, t2, t3, t4, t5]) * 1e3, strict=True))
        for stage, ms in stage_ms.items():
            if stage != "costmap" or grid is not None:
                self.timings[stage].append(float(ms))
        counts = np.bincount(out.labels.ravel(), minlength=256)[: self.contract.num_classes]
        row: dict[str, Any] = {"frame": n, "stamp_ns": _header_ns(msg.header),
                               **{f"{s}_ms": round(float(v), 3) for s, v in stage_ms.items()},
                               **{f"frac_{name}": round(float(c / out.labels.size), 5)
                                  for name, c in zip(self.contract.class_names, counts,
                                                     strict=True)}}
        row["pixel_accuracy"] = self._score_labels(item, out.labels) if with_labels else None
        if with_labels and item.labels is None:
            self.counters["frames_without_labels"] += 1
        row["costmap_agreement"] = None
        if with_map and grid is not None:
            if item.class_map is None:
                self.counters["frames_without_class_map"] += 1
            else:
                row["costmap_agreement"] = self.scorer.score(grid.values, grid.levels,
                                                             item.class_map)
        self.rows.append(row)
        overlay = blend_overlay(result.model_input, result.labels, self.lut,
                                self.options.overlay_alpha)
        if self.options.video:
            self._write_video_frame(overlay)
        elif n % self.options.every == 0:
            self._write_png(self.out / "overlays" / f"{n:06d}.png", overlay)
            if grid is not None:
                self._write_png(self.out / "costmaps" / f"{n:06d}.png", grid_picture(grid.values))

    def _score_labels(self, item: _Pending, pred: np.ndarray) -> float | None:
        if item.labels is None:
            return None
        gt_msg = item.labels
        gt = np.frombuffer(bytes(gt_msg.data), dtype=np.uint8)
        gt = np.lib.stride_tricks.as_strided(gt, (gt_msg.height, gt_msg.width), (gt_msg.step, 1))
        gt = resize_labels(np.ascontiguousarray(gt), self.contract.width, self.contract.height)
        frame = ConfusionMatrix(self.contract.num_classes, self.contract.ignore_index)
        frame.update(pred, gt)
        self.cm.merge(frame)
        scored = frame.matrix.sum()
        return round(float(np.trace(frame.matrix) / scored), 5) if scored else None

    def _write_png(self, path: Path, rgb: np.ndarray) -> None:
        with atomic_path(path) as tmp:
            if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                raise OSError(f"cannot write {path}")
        self.written.append(str(path.relative_to(self.out)))

    def _write_video_frame(self, rgb: np.ndarray) -> None:
        if self._video is None:
            self._video_tmp = atomic_path(self.out / "overlay.mp4")
            tmp = self._video_tmp.__enter__()
            h, w = rgb.shape[:2]
            self._video = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (w, h))
            if not self._video.isOpened():
                raise OSError("cv2.VideoWriter cannot write mp4 (mp4v) here; use PNG overlays")
        self._video.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def _close_video(self, ok: bool) -> None:
        if self._video is None:
            return
        self._video.release()
        if ok:
            self._video_tmp.__exit__(None, None, None)
            self.written.append("overlay.mp4")
        else:
            self._video_tmp.__exit__(RuntimeError, RuntimeError("aborted"), None)
        self._video = None

    # ------------------------------------------------------------------ the bag
    def run(self, bag: str | Path) -> dict[str, Any]:
        """Evaluate ``bag``; write every output and return the report."""
        from rosbags.typesys import Stores, get_typestore

        typestore = get_typestore(Stores.ROS2_JAZZY)
        reader = open_reader(bag)
        t = self.options.topics
        try:
            conns = {c.topic: c for c in reader.connections}
            image = conns.get(t.image)
            if image is None or image.msgtype not in IMAGE_TYPES:
                raise BagError(f"{bag}: no image topic {t.image} (Image or CompressedImage); "
                               f"topics: {', '.join(sorted(conns))}")
            with_labels = t.labels in conns
            with_map = t.class_map in conns
            if t.camera_info not in conns:
                log.warning("%s: no %s: no costmap (projection needs the calibration)", bag,
                            t.camera_info)
            wanted = [conns[name] for name in (t.image, t.camera_info, t.labels, t.class_map)
                      if name in conns]
            pending: OrderedDict[int, _Pending] = OrderedDict()
            ok = False
            try:
                for conn, bag_ns, msg in _messages(reader, wanted, typestore, bag):
                    if conn.topic == t.camera_info:
                        self._camera_info = msg
                        continue
                    item = pending.setdefault(_header_ns(msg.header), _Pending(bag_ns=bag_ns))
                    if conn.topic == t.image:
                        item.image, item.msgtype, item.bag_ns = msg, conn.msgtype, bag_ns
                    elif conn.topic == t.labels:
                        item.labels = msg
                    else:
                        item.class_map = msg
                    self._flush(pending, bag_ns, with_labels, with_map, final=False)
                    if self.options.limit and self.counters["frames"] >= self.options.limit:
                        break
                self._flush(pending, None, with_labels, with_map, final=True)
                ok = True
            finally:
                self._close_video(ok)
        finally:
            reader.close()
        if self.counters["frames"] == 0:
            raise BagError(f"{bag}: no frame could be evaluated on {t.image}")
        return self._write_report(bag, with_labels, with_map)

    def _flush(self, pending: OrderedDict[int, _Pending], bag_ns: int | None, with_labels: bool,
               with_map: bool, final: bool) -> None:
        """Process the oldest images whose ground truth is complete or can no longer come."""
        window = int(self.options.join_window * 1e9)
        while pending:
            stamp, item = next(iter(pending.items()))
            complete = item.image is not None and (not with_labels or item.labels is not None) \
                and (not with_map or item.class_map is not None)
            expired = final or (bag_ns is not None and bag_ns - item.bag_ns > window)
            if not (complete or expired):
                return
            pending.pop(stamp)
            if item.image is None:
                continue  # ground truth without its image
            if self.options.limit and self.counters["frames"] >= self.options.limit:
                return
            self.process(item, with_labels, with_map)

    def _write_report(self, bag: str | Path, with_labels: bool, with_map: bool) -> dict[str, Any]:
        from offroad_core.provenance import provenance

        engine = self.pipeline.engine
        seg = None
        if with_labels and self.cm.matrix.sum():
            seg = self.cm.result(self.contract.class_names,
                                 images=self.counters["frames"]).to_dict()
        fractions = np.array([[r[f"frac_{n}"] for n in self.contract.class_names]
                              for r in self.rows])
        report = {
            "bag": str(bag),
            "model": {"path": str(engine.model_path), "sha256": engine.model_sha256,
                      "model_id": self.contract.model_id, "provider": engine.provider,
                      "input": [self.contract.width, self.contract.height]},
            "counters": self.counters,
            "rejected_by_reason": self.rejected,
            "latency_ms": {s: _percentiles(v) for s, v in self.timings.items()},
            "class_distribution": {
                "mean": dict(zip(self.contract.class_names,
                                 np.round(fractions.mean(axis=0), 5).tolist(), strict=True)),
                "per_frame": "frames.csv (frac_<class> columns)",
            },
            "segmentation": seg,
            "costmap": self.scorer.summary() if with_map else None,
            "costmap_params": self.config.values,
            "outputs": [*sorted(self.written), "frames.csv", "report.json"],
            "provenance": provenance(),
        }
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(self.rows[0]))
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.out / "frames.csv", buffer.getvalue())
        atomic_write_text(self.out / "report.json", json.dumps(report, indent=2, default=str))
        return report


def summary_text(report: dict[str, Any]) -> str:
    """A few lines for the terminal."""
    lines = [f"frames: {report['counters']['frames']} (model {report['model']['model_id']} on "
             f"{report['model']['provider']})"]
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
    return "\n".join(lines)


def run_command(args: Any) -> int:
    """``offroad evaluate-bag``; exit 0 done, 1 bad bag/model/parameters."""
    from offroad_core.engine import EngineError

    try:
        params = load_costmap_params(args.costmap_params) if args.costmap_params else {}
        params.update(_parse_sets(args.set or []))
        options = EvalOptions(
            model=args.model, out_dir=args.out, provider=args.provider,
            num_threads=args.num_threads,
            topics=Topics(args.image_topic, args.camera_info_topic, args.labels_topic,
                          args.class_map_topic),
            costmap_params=params, confidence_threshold=args.confidence_threshold,
            every=args.every, video=args.video, limit=args.limit)
        report = BagEvaluator(options).run(args.bag)
    except (BagError, ConfigError, EngineError) as exc:
        print(f"offroad evaluate-bag: {exc}", flush=True)
        return 1
    print(summary_text(report))
    print(f"report: {Path(args.out) / 'report.json'}")
    return 0


def _parse_sets(items: list[str]) -> dict[str, Any]:
    """``name=value`` costmap parameter overrides (values parsed as YAML scalars)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--set {item!r}: expected name=value")
        out[name.strip()] = yaml.safe_load(value)
    return out


def register(subparsers: Any) -> None:
    """Add ``offroad evaluate-bag`` (entry point group ``offroad.commands``)."""
    topics = Topics()
    p = subparsers.add_parser(
        "evaluate-bag", help="run the segmentation + costmap code offline on a rosbag2",
        description="Run the nodes' engine and costmap code on a bag without DDS; report "
                    "stage latencies, class distribution, mIoU and costmap agreement (when "
                    "the bag has ground truth) and write overlays and costmap images.")
    p.add_argument("bag", help="rosbag2 directory or .db3/.mcap file")
    p.add_argument("--model", required=True, help="deploy-contract ONNX / context binary")
    p.add_argument("--provider", default="cpu", choices=("auto", "qnn", "cpu"))
    p.add_argument("--num-threads", type=int, default=None)
    p.add_argument("--out", default="bag_eval", help="output directory")
    p.add_argument("--image-topic", default=topics.image)
    p.add_argument("--camera-info-topic", default=topics.camera_info)
    p.add_argument("--labels-topic", default=topics.labels)
    p.add_argument("--class-map-topic", default=topics.class_map)
    p.add_argument("--costmap-params", help="costmap params YAML (e.g. launch/config/*.yaml)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="override one costmap parameter (repeatable)")
    p.add_argument("--confidence-threshold", type=float, default=0.0)
    p.add_argument("--every", type=int, default=10, help="write overlay/costmap PNGs every N "
                   "frames")
    p.add_argument("--video", action="store_true", help="write overlay.mp4 instead of PNGs")
    p.add_argument("--limit", type=int, default=None, help="evaluate at most N frames")
    p.set_defaults(func=run_command)
