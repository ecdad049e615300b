"""Demo stage 9: a synthetic bag through the real segmentation and costmap nodes over DDS.

Starts ``segmentation_node`` (provider ``qnn``: the context binary on the emulated HTP, CPU
fallback disabled) and ``costmap_node`` as separate processes with the shipped replay
parameters (``launch/config/replay.yaml``, the same file ``offroad_replay.launch.py`` uses),
records their outputs with an rclpy subscriber in this process, plays the bag with
``offroad replay`` (``/clock`` on, rate 1.0) and scores what was recorded against the bag's
ground truth with :mod:`offroad_replay.scoring` (as ``offroad evaluate-bag``):

* labels: mIoU over the pixels the node did not gate as uncertain (``confidence_threshold``;
  their share is ``label_coverage``), one label image per input frame or a counted drop;
* costmap: agreement with ``/ground_truth/class_map`` (cells known in both; unsafe = ground
  truth BLOCKED/HAZARD, ours FREE), with the costmap's own label table for the classes, names
  and categories the node published in ``SegmentationInfo``;
* stage latencies and frame age from ``SegmentationStats`` (wall time on the x86 HTP emulator:
  not the robot's latency), as percentiles and per frame (``per_frame``, for the report's plots).

Writes ``result.json`` and a few overlay / costmap pictures to the output directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
REPLAY_PARAMS = REPO / "launch" / "config" / "replay.yaml"
IMAGE_TOPIC = "/camera/image_raw"
QUIET_SECONDS = 6.0  # no new labels for this long after the replay ended: the nodes are done
PICTURES = 4
LATENCY_FIELDS = {"preprocess": "preprocess_ms", "inference": "inference_ms",
                  "postprocess": "postprocess_ms", "age_at_publish": "age_ms"}
# The x86 HTP emulator needs 1-5 s per frame (the robot's HTP: milliseconds), so labels reach the
# costmap seconds after their image; the replay config's 2 s would reject most of them as stale.
EMULATION_STALE_TIMEOUT = 8.0
# Until the costmap's own /clock subscription is matched its sim time is 0 and it refuses labels
# as stamped in the future (seen 1.1 s after the replay started, on a loaded machine).
CLOCK_DELAY_S = 3.0


def _executable(package: str, name: str) -> str:
    path = REPO / "install" / package / "lib" / package / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make setup` first")
    return str(path)


class Recorder:
    """rclpy subscriber of the nodes' outputs, spinning in a background thread."""

    def __init__(self) -> None:
        """Create the node and its subscriptions (rclpy must not be initialised yet)."""
        import rclpy
        from nav_msgs.msg import OccupancyGrid
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from offroad_seg_msgs.msg import SegmentationInfo, SegmentationStats

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("offroad_demo_recorder", context=self.context)
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.labels: dict[int, np.ndarray] = {}
        self.grids: dict[int, Any] = {}
        self.stats: list[Any] = []
        self.info: Any = None
        self.last_labels_time = 0.0
        self.lock = threading.Lock()
        n = self.node
        n.create_subscription(Image, "/segmentation/labels", self._on_labels, reliable)
        n.create_subscription(SegmentationStats, "/segmentation/stats", self.stats.append,
                              reliable)
        n.create_subscription(SegmentationInfo, "/segmentation/info", self._on_info, latched)
        n.create_subscription(OccupancyGrid, "/costmap/grid", self._on_grid, latched)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            while self.context.ok():
                self.executor.spin_once(timeout_sec=0.1)
        except ExternalShutdownException:
            pass

    def wait_for_nodes(self, timeout: float) -> bool:
        """True once the segmentation node has published its info (model loaded) and the
        costmap node subscribes to the labels."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            costmap_up = self.node.count_subscribers("/segmentation/labels") >= 2
            if self.info is not None and costmap_up:
                return True
            time.sleep(0.2)
        return False

    def _on_labels(self, msg: Any) -> None:
        from offroad_core.imaging import decode_labels
        from offroad_core.stamps import stamp_ns

        labels = decode_labels(msg.encoding, msg.height, msg.width, msg.step, msg.data).copy()
        with self.lock:
            self.labels[stamp_ns(msg.header.stamp)] = labels
            self.last_labels_time = time.monotonic()

    def _on_info(self, msg: Any) -> None:
        self.info = msg

    def _on_grid(self, msg: Any) -> None:
        from offroad_core.stamps import stamp_ns

        with self.lock:
            self.grids[stamp_ns(msg.header.stamp)] = msg

    def close(self) -> None:
        """Stop spinning and shut rclpy down."""
        self.rclpy.shutdown(context=self.context)
        self.thread.join(timeout=5)
        self.node.destroy_node()


def _start(name: str, command: list[str], logs: Path) -> subprocess.Popen:
    log = open(logs / f"live_{name}.log", "w")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))


def _stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def _read_ground_truth(bag: Path) -> dict[int, Any]:
    """The bag's frames (image, ground-truth labels and class map) by header stamp (ns)."""
    from offroad_replay.bag_frames import BagFrames

    with BagFrames(bag) as source:
        return {frame.stamp_ns: frame for frame in source.frames()}


def _costmap_table(info: Any) -> tuple[Any, np.ndarray]:
    """The costmap node's label table for the published SegmentationInfo, and level values."""
    from offroad_core.costmap.params import validate
    from offroad_core.costmap.pipeline import CostmapPipeline
    from offroad_core.params import load_params_file
    from offroad_costmap.conversions import model_info

    config = validate(load_params_file(REPLAY_PARAMS, "offroad_costmap"))
    pipeline = CostmapPipeline(config)
    pipeline.set_model_info(model_info(info))
    return pipeline.table, config.category_values.level_lut()


def _pictures(rec: Recorder, frames: dict[int, Any], scored: list[tuple[int, Any]],
              scorer: Any, out: Path) -> list[dict[str, Any]]:
    """Node labels, ground truth and both costmaps of a few frames spread over the bag."""
    from offroad_core.costmap.grid import grid_picture
    from offroad_core.imaging import decode_labels, resize_labels, resize_to_model
    from offroad_core.segmentation.overlay import blend_overlay, palette_lut
    from offroad_replay.bag_frames import decode_frame
    from offroad_replay.outputs import RunOutputs
    from offroad_replay.scoring import grid_values

    info = rec.info
    rgb = np.asarray(info.palette_rgb, dtype=np.uint8).reshape(-1, 3)
    lut = palette_lut(tuple(tuple(int(v) for v in c) for c in rgb), int(info.ignore_value))
    picks = [scored[i] for i in np.linspace(0, len(scored) - 1,
                                            min(PICTURES, len(scored))).astype(int)]
    pictures, files_out = [], RunOutputs(out)  # atomic PNGs
    for n, (stamp, grid) in enumerate(picks):
        pred, frame = rec.labels.get(stamp), frames[stamp]
        if pred is None or frame.labels is None:
            continue
        h, w = pred.shape
        small = resize_to_model(decode_frame(frame), w, h)
        m = frame.labels
        gt_small = resize_labels(decode_labels(m.encoding, m.height, m.width, m.step, m.data),
                                 w, h)
        ours, geometry = grid_values(grid)
        files = {
            "overlay": blend_overlay(small, pred, lut, 0.5),
            "ground_truth": blend_overlay(small, gt_small, lut, 0.5),
            "costmap": grid_picture(ours),
            "costmap_truth": grid_picture(scorer.truth_values(frame.class_map, geometry)),
        }
        entry: dict[str, Any] = {"stamp_ns": stamp}
        for kind, picture in files.items():
            if kind.startswith("costmap"):
                picture = cv2.resize(picture, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
            entry[kind] = f"pictures/{n}_{kind}.png"
            files_out.png(entry[kind], picture)
        pictures.append(entry)
    return pictures


def _per_frame(rec: Recorder, agreement: dict[int, float]) -> list[dict[str, Any]]:
    """One entry per processed frame (SegmentationStats): stage times, age, grid agreement."""
    from offroad_core.stamps import stamp_ns

    stats = sorted(rec.stats, key=lambda s: stamp_ns(s.header.stamp))
    first = stamp_ns(stats[0].header.stamp) if stats else 0
    rows = []
    for s in stats:
        stamp = stamp_ns(s.header.stamp)
        rows.append({"stamp_ns": stamp, "t_s": round((stamp - first) * 1e-9, 3),
                     "preprocess_ms": round(float(s.preprocess_ms), 2),
                     "inference_ms": round(float(s.inference_ms), 2),
                     "postprocess_ms": round(float(s.postprocess_ms), 2),
                     "age_ms": round(float(s.age_ms), 2),
                     "costmap_agreement": agreement.get(stamp)})
    return rows


def _score(rec: Recorder, frames: dict[int, Any], out: Path) -> dict[str, Any]:
    from offroad_core.imaging import decode_labels
    from offroad_replay.scoring import GridScorer, LabelScorer, grid_values, percentiles

    info = rec.info
    names, ignore = tuple(info.class_names), int(info.ignore_value)
    labels = LabelScorer(names, ignore)
    for stamp, pred in sorted(rec.labels.items()):
        m = frames[stamp].labels if stamp in frames else None
        if m is not None:  # pixels the node gated as uncertain count as coverage, not IoU
            labels.score(pred, decode_labels(m.encoding, m.height, m.width, m.step, m.data),
                         gated=pred == ignore)
    table, level_lut = _costmap_table(info)
    scorer = GridScorer(table, level_lut)
    agreement: dict[int, float] = {}
    scored = []
    with_truth = 0
    for stamp, grid in sorted(rec.grids.items()):
        class_map = frames[stamp].class_map if stamp in frames else None
        if class_map is None:
            continue
        with_truth += 1
        value = scorer.score(*grid_values(grid), class_map)
        if value is not None:
            agreement[stamp] = round(100.0 * value, 2)
            scored.append((stamp, grid))
    last = rec.stats[-1] if rec.stats else None
    evaluation = labels.result()
    return {
        "frames_in_bag": len(frames),
        "labels_received": len(rec.labels),
        "labels_scored": labels.frames,
        "frames_without_labels": [i for i, stamp in enumerate(sorted(frames))
                                  if stamp not in rec.labels],
        "grids_received": len(rec.grids),
        # the costmap's grid for a label image carries its stamp (fail-safe grids: the clock's)
        "grids_for_labels": sum(stamp in rec.grids for stamp in rec.labels),
        "grids_scored": len(agreement),
        "execution_provider": info.execution_provider,
        "model_sha256": info.model_sha256,
        "confidence_threshold": round(float(info.confidence_threshold), 3),
        "counters": None if last is None else {
            "frames_received": int(last.frames_received),
            "frames_processed": int(last.frames_processed),
            "frames_dropped": int(last.frames_dropped),
            "frames_rejected": int(last.frames_rejected)},
        "miou": None if evaluation is None else round(100.0 * float(evaluation.miou), 2),
        "label_coverage": None if labels.coverage is None else round(100 * labels.coverage, 2),
        "iou": None if evaluation is None else {
            name: (None if not np.isfinite(v) else round(100.0 * float(v), 2))
            for name, v in zip(names, evaluation.iou, strict=True)},
        "costmap": None if not with_truth else {
            **scorer.summary(),
            "per_frame_agreement": percentiles(list(agreement.values()), digits=2)},
        "latency_ms": {name: percentiles([float(getattr(s, field)) for s in rec.stats], digits=2)
                       for name, field in LATENCY_FIELDS.items()},
        "per_frame": _per_frame(rec, agreement),
        "pictures": _pictures(rec, frames, scored, scorer, out),
    }


def run_live(bag: Path, model: Path, out: Path, logs: Path, rate: float = 1.0,
             provider: str = "qnn") -> dict[str, Any]:
    """Replay ``bag`` through the nodes with ``model``; return (and write) the scored result.

    On failure the result has an ``error`` entry naming the cause and the logs to read.
    """
    out.mkdir(parents=True, exist_ok=True)
    seg = _start("segmentation_node", [
        _executable("offroad_seg_node", "segmentation_node"), "--ros-args",
        "--params-file", str(REPLAY_PARAMS), "-p", f"model_path:={model}",
        "-p", f"provider:={provider}"], logs)
    costmap = _start("costmap_node", [
        _executable("offroad_costmap", "costmap_node"), "--ros-args",
        "--params-file", str(REPLAY_PARAMS), "-p", f"stale_timeout:={EMULATION_STALE_TIMEOUT}"],
        logs)
    rec = Recorder()
    result: dict[str, Any]
    try:
        if not rec.wait_for_nodes(timeout=120):
            return {"error": "the nodes did not come up within 120 s "
                             "(live_segmentation_node.log, live_costmap_node.log)"}
        replay = subprocess.run(
            [_executable("offroad_replay", "replay"), str(bag), "--rate", str(rate),
             "--wait-for", IMAGE_TOPIC, "--wait-timeout", "120", "--delay", str(CLOCK_DELAY_S),
             "--linger", "2"],
            stdout=open(logs / "live_replay.log", "w"), stderr=subprocess.STDOUT,
            cwd=REPO, check=False)
        if replay.returncode != 0:
            return {"error": f"offroad replay exited {replay.returncode} (live_replay.log)"}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with rec.lock:
                quiet = time.monotonic() - max(rec.last_labels_time, 0.0)
            if seg.poll() is not None or quiet > QUIET_SECONDS:
                break
            time.sleep(0.5)
        time.sleep(1.0)  # the costmap's grid for the last labels
        codes = {"segmentation_node": _stop(seg), "costmap_node": _stop(costmap)}
        if not rec.labels:
            return {"error": "no label image was recorded (live_segmentation_node.log)",
                    "exit_codes": codes}
        truth = _read_ground_truth(bag)
        result = _score(rec, truth, out)
        result["exit_codes"] = codes
    finally:
        for p in (seg, costmap):
            _stop(p)
        rec.close()
    from offroad_core.atomic import atomic_write_text

    atomic_write_text(out / "result.json", json.dumps(result, indent=2) + "\n")
    return result
