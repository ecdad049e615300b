"""``offroad evaluate-bag BAG --model MODEL [--params FILE]``: the nodes' cores over a rosbag2.

No rclpy and no DDS: messages are read with ``rosbags`` and every frame goes through the code
the nodes run: :class:`offroad_core.segmentation.pipeline.FramePipeline` (resize, inference,
confidence gate) and :class:`offroad_core.costmap.pipeline.CostmapPipeline` (label table from
the model, projector cache, checks), configured from one params file's two node sections
through each node's own validator. Scores: :mod:`offroad_replay.scoring`. Topics, outputs and
the decisions (per-frame grids, stamps, ground-truth join): ``offroad_replay/README.md``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from offroad_core.camera import CameraIntrinsics
from offroad_core.contract import ModelContract
from offroad_core.costmap.grid import grid_picture
from offroad_core.costmap.pipeline import CostmapPipeline, GridFrame, InputError, ModelInfo
from offroad_core.exit_codes import EXIT_BAD_INPUT, EXIT_OK, CommandError
from offroad_core.imaging import ImageDecodeError, decode_labels
from offroad_core.params import ConfigError
from offroad_core.segmentation import params as segmentation_params
from offroad_core.segmentation.overlay import blend_overlay, palette_lut
from offroad_core.segmentation.pipeline import FramePipeline
from offroad_core.stamps import stamp_seconds
from offroad_replay.bag_frames import BagFrames, Frame, Topics, decode_frame
from offroad_replay.bag_replay import BagError
from offroad_replay.depth_eval import DepthEvaluation
from offroad_replay.eval_report import build_report, frame_row, frames_csv, summary_text
from offroad_replay.node_params import apply_overrides, offline_costmap_config, read_sections
from offroad_replay.outputs import RunOutputs
from offroad_replay.scoring import GridScorer, LabelScorer

log = logging.getLogger(__name__)

STAGES = ("decode", "preprocess", "inference", "postprocess", "costmap")


@dataclass
class EvalOptions:
    """One bag evaluation; ``*_params`` are the nodes' raw parameter values (validated here)."""

    model: str
    out_dir: str
    provider: str = "cpu"
    num_threads: int | None = None
    topics: Topics = field(default_factory=Topics)
    segmentation_params: dict[str, Any] = field(default_factory=dict)
    costmap_params: dict[str, Any] = field(default_factory=dict)
    every: int = 10
    video: bool = False
    limit: int | None = None
    join_window: float = 1.0
    notes: list[str] = field(default_factory=list)  # for the report (params file reading)


def model_info(contract: ModelContract) -> ModelInfo:
    """What the segmentation node publishes in SegmentationInfo about the model's classes."""
    return ModelInfo(tuple(range(contract.num_classes)), tuple(contract.class_names),
                     tuple(contract.class_categories), int(contract.ignore_index),
                     int(contract.height), int(contract.width))


class BagEvaluator:
    """Streams a bag through the segmentation and costmap pipelines and scores it."""

    def __init__(self, options: EvalOptions) -> None:
        """Validate both nodes' parameters and load the model (clear errors, nothing run)."""
        from offroad_core.engine import InferenceEngine

        if options.every < 1:
            raise ConfigError(f"--every must be >= 1, got {options.every}")
        self.options = options
        seg = segmentation_params.validate({**options.segmentation_params,
                                            "model_path": str(options.model)})
        self.costmap_config, note = offline_costmap_config(options.costmap_params)
        self.notes = [*options.notes, *([note] if note else [])]
        engine = InferenceEngine(options.model, options.provider, seg.performance_mode,
                                 options.num_threads or seg.num_threads or None)
        segmentation_params.check_against_model(seg, engine.contract.has_confidence)
        self.segmentation_config = seg
        self.segmentation = FramePipeline(engine, seg.confidence_threshold)
        self.contract = c = engine.contract
        self.costmap = CostmapPipeline(self.costmap_config)
        try:
            self.costmap.set_model_info(model_info(c))
        except InputError as exc:
            raise ConfigError(f"{options.model}: {exc}") from None
        self.labels = LabelScorer(c.class_names, c.ignore_index)
        self.grids = GridScorer(self.costmap.table, self.costmap_config.category_values.level_lut())
        self.depth = DepthEvaluation(self.costmap_config, model_info(c))
        self.lut = palette_lut(c.palette, c.ignore_index)
        self.outputs = RunOutputs(options.out_dir)
        self.timings: dict[str, list[float]] = {s: [] for s in STAGES}
        self.rows: list[dict[str, Any]] = []
        self.counters = {"frames": 0, "frames_without_labels": 0, "frames_without_class_map": 0,
                         "frames_without_camera_info": 0, "rejected": 0}
        self.rejected: dict[str, int] = {}
        self._camera_error: str | None = None

    def _reject(self, reason: str, message: str) -> None:
        self.counters["rejected"] += 1
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        log.warning("frame rejected (%s): %s", reason, message)

    def set_camera_info(self, msg: Any) -> None:
        """The bag's calibration, rescaled to the label (model) resolution."""
        try:
            intrinsics = CameraIntrinsics.from_camera_info(msg.width, msg.height, msg.k, msg.d,
                                                           msg.distortion_model)
            self.costmap.set_camera(intrinsics.scaled(self.contract.width, self.contract.height))
            self.depth.set_camera(intrinsics, self.costmap.camera)
            self._camera_error = None
        except ValueError as exc:
            self._camera_error = f"camera_info: {exc}"

    def costmap_step(self, labels: np.ndarray, frame: Frame) -> GridFrame | None:
        """The grid of one frame's labels, or None (counted) when the costmap refuses it.

        The frame's own stamp is the clock (``now``): bag frames are never stale offline.
        """
        if self._camera_error is not None:
            self._reject("bad_camera_info", self._camera_error)
            return None
        if self.costmap.camera is None:
            self.counters["frames_without_camera_info"] += 1
            return None
        stamp = stamp_seconds(frame.image.header.stamp)
        try:
            return self.costmap.process(labels, stamp, now=stamp)
        except InputError as exc:
            self._reject(exc.reason, str(exc))
            return None

    def process(self, frame: Frame, with_labels: bool, with_map: bool) -> None:
        """Run one frame through every stage, score it and write its pictures."""
        seg = self.segmentation
        t = [time.perf_counter()]
        try:
            rgb = decode_frame(frame)
        except ImageDecodeError as exc:
            self._reject(exc.reason, str(exc))
            return
        t.append(time.perf_counter())
        model_input = seg.preprocess(rgb)
        t.append(time.perf_counter())
        out = seg.infer(model_input)
        t.append(time.perf_counter())
        result = seg.postprocess(model_input, out)
        t.append(time.perf_counter())
        grid = self.costmap_step(result.labels, frame)
        t.append(time.perf_counter())
        n = self.counters["frames"]
        self.counters["frames"] += 1
        stage_ms = dict(zip(STAGES, np.diff(t) * 1e3, strict=True))
        for stage, ms in stage_ms.items():
            if stage != "costmap" or grid is not None:
                self.timings[stage].append(float(ms))
        row = frame_row(n, frame.stamp_ns, stage_ms, out.labels, self.contract.class_names)
        row["pixel_accuracy"] = self._score_labels(frame, out.labels) if with_labels else None
        row["costmap_agreement"] = None
        if with_map and grid is not None:
            if frame.class_map is None:
                self.counters["frames_without_class_map"] += 1
            else:
                row["costmap_agreement"] = self.grids.score(grid.values, grid.geometry,
                                                            frame.class_map)
        if self.depth.active:
            self._depth_step(result.labels, frame, row, with_map, grid)
        self.rows.append(row)
        overlay = blend_overlay(result.model_input, result.labels, self.lut,
                                self.segmentation_config.overlay_alpha)
        if self.options.video:
            self.outputs.video_frame(overlay)
        elif n % self.options.every == 0:
            self.outputs.png(f"overlays/{n:06d}.png", overlay)
            if grid is not None:
                self.outputs.png(f"costmaps/{n:06d}.png", grid_picture(grid.values))

    def _depth_step(self, labels: np.ndarray, frame: Frame, row: dict[str, Any],
                    with_map: bool, flat: GridFrame | None) -> None:
        """The depth mode of the same labels (docs/depth.md): its grid, mode and score (also
        on the cells the flat grid ``flat`` observed: the camera's view)."""
        grid = None
        if self.costmap.camera is not None and self._camera_error is None:
            grid = self.depth.step(labels, stamp_seconds(frame.image.header.stamp))
        row["costmap_mode_depth"] = grid.mode if grid is not None else None
        row["costmap_agreement_depth"] = None
        if grid is not None and with_map and frame.class_map is not None:
            row["costmap_agreement_depth"] = self.depth.score(grid, frame.class_map, flat)

    def _score_labels(self, frame: Frame, pred: np.ndarray) -> float | None:
        """Pixel accuracy of the ungated labels (mIoU measures the model, not the gate)."""
        msg = frame.labels
        try:
            if msg is None:
                raise ImageDecodeError("no ground-truth labels with this stamp", "missing")
            truth = decode_labels(msg.encoding, msg.height, msg.width, msg.step, msg.data)
        except ImageDecodeError as exc:
            self.counters["frames_without_labels"] += 1
            if exc.reason != "missing":
                log.warning("ground-truth labels not scored: %s", exc)
            return None
        return self.labels.score(pred, truth)

    def run(self, bag: str | Path) -> dict[str, Any]:
        """Evaluate ``bag``; write every output and return the report (nothing on failure)."""
        try:
            return self._run(bag)
        except BaseException:
            self.outputs.discard()
            raise

    def _run(self, bag: str | Path) -> dict[str, Any]:
        o = self.options
        self.notes += self.depth.start(bag)
        with BagFrames(bag, o.topics, o.join_window, self.depth.topics,
                       self.depth.sync_tolerance) as source:
            if not source.with_camera_info:
                log.warning("%s: no %s: no costmap (projection needs the calibration)", bag,
                            o.topics.camera_info)
            for frame in source.frames(self.set_camera_info, self.depth.on_message):
                self.process(frame, source.with_labels, source.with_map)
                if o.limit and self.counters["frames"] >= o.limit:
                    break
        self.outputs.close_video()
        if self.counters["frames"] == 0:
            raise BagError(f"{bag}: no frame could be evaluated on {o.topics.image}")
        report = build_report(self, bag, source.with_labels, source.with_map)
        self.outputs.text("frames.csv", frames_csv(self.rows))
        self.outputs.text("report.json", json.dumps(report, indent=2, default=str))
        return report


def options_from_args(args: Any) -> EvalOptions:
    """:class:`EvalOptions` of the command line (params file, ``--set``, overrides)."""
    if not Path(args.model).is_file():
        raise CommandError(f"--model {args.model}: file not found")
    values, notes = read_sections(args.params)
    apply_overrides(values, args.set or [])
    if args.confidence_threshold is not None:
        values["offroad_segmentation"]["confidence_threshold"] = args.confidence_threshold
    return EvalOptions(
        model=args.model, out_dir=args.out, provider=args.provider, num_threads=args.num_threads,
        topics=Topics(args.image_topic, args.camera_info_topic, args.labels_topic,
                      args.class_map_topic),
        segmentation_params=values["offroad_segmentation"],
        costmap_params=values["offroad_costmap"], every=args.every, video=args.video,
        limit=args.limit, notes=notes)


def run_command(args: Any) -> int:
    """``offroad evaluate-bag``; exit 0 done, 2 bad bag, model or parameters (one line)."""
    from offroad_core.engine import EngineError

    try:
        report = BagEvaluator(options_from_args(args)).run(args.bag)
    except (BagError, ConfigError, EngineError, CommandError, OSError) as exc:
        text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"offroad evaluate-bag: {text}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    print(summary_text(report))
    print(f"report: {Path(args.out) / 'report.json'}")
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``offroad evaluate-bag`` (entry point group ``offroad.commands``)."""
    topics = Topics()
    p = subparsers.add_parser(
        "evaluate-bag", help="run the segmentation + costmap code offline on a rosbag2",
        description="Run the nodes' pipelines on a bag without DDS, configured like the live "
                    "nodes; report stage latencies, class distribution, mIoU and costmap "
                    "agreement (when the bag has ground truth); write overlays and costmaps.")
    p.add_argument("bag", help="rosbag2 directory or .db3/.mcap file")
    p.add_argument("--model", required=True, help="deploy-contract ONNX / context binary")
    p.add_argument("--params", metavar="FILE", help="ROS params file with offroad_segmentation "
                   "and/or offroad_costmap sections (e.g. launch/config/replay.yaml), read "
                   "through each node's validator")
    p.add_argument("--set", action="append", metavar="[NODE.]NAME=VALUE",
                   help="override one parameter, e.g. offroad_costmap.max_range=6 (the node "
                        "prefix may be left out when one node alone has NAME; repeatable)")
    p.add_argument("--confidence-threshold", type=float, default=None,
                   help="override offroad_segmentation.confidence_threshold")
    p.add_argument("--provider", default="cpu", choices=("auto", "qnn", "cpu"),
                   help="execution provider of this machine (not read from --params)")
    p.add_argument("--num-threads", type=int, default=None)
    p.add_argument("--out", default="bag_eval", help="output directory")
    p.add_argument("--image-topic", default=topics.image)
    p.add_argument("--camera-info-topic", default=topics.camera_info)
    p.add_argument("--labels-topic", default=topics.labels)
    p.add_argument("--class-map-topic", default=topics.class_map)
    p.add_argument("--every", type=int, default=10, help="write overlay/costmap PNGs every N "
                   "frames")
    p.add_argument("--video", action="store_true", help="write overlay.mp4 instead of PNGs")
    p.add_argument("--limit", type=int, default=None, help="evaluate at most N frames")
    p.set_defaults(func=run_command)
