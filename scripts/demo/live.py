"""Demo stage 8: a synthetic bag through the real segmentation and costmap nodes over DDS.

Starts ``segmentation_node`` (provider ``qnn``: the context binary on the emulated HTP, CPU
fallback disabled) and ``costmap_node`` as separate processes with the shipped replay
parameters (``launch/config/replay.yaml``, the same file ``offroad_replay.launch.py`` uses),
records their outputs with an rclpy subscriber in this process, plays the bag with
``offroad replay`` (``/clock`` on, rate 1.0) and scores what was recorded against the bag's
ground truth:

* labels: mIoU with THE evaluator's :class:`ConfusionMatrix` (ground truth resized to the label
  size with ``resize_labels``) over the pixels the node did not gate as uncertain
  (``confidence_threshold``; their share is ``label_coverage``), one label image per input
  frame or a counted drop;
* costmap: agreement with ``/ground_truth/class_map`` by the same :class:`GridScorer` as
  ``offroad evaluate-bag`` (cells known in both; unsafe = ground truth BLOCKED/HAZARD, ours FREE);
* stage latencies from ``SegmentationStats`` (wall time on the x86 HTP emulator: not the
  robot's latency).

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
# The x86 HTP emulator needs 1-5 s per frame (the robot's HTP: milliseconds), so labels reach the
# costmap seconds after their image; the replay config's 2 s would reject most of them as stale.
EMULATION_STALE_TIMEOUT = 8.0


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

    @staticmethod
    def _stamp(header: Any) -> int:
        return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec

    def _on_labels(self, msg: Any) -> None:
        array = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)
        with self.lock:
            self.labels[self._stamp(msg.header)] = array[:, : msg.width].copy()
            self.last_labels_time = time.monotonic()

    def _on_info(self, msg: Any) -> None:
        self.info = msg

    def _on_grid(self, msg: Any) -> None:
        with self.lock:
            self.grids[self._stamp(msg.header)] = msg

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


def _read_ground_truth(bag: Path) -> dict[str, dict[int, Any]]:
    """Images, ground-truth labels and class maps of the bag, by header stamp (ns)."""
    from rosbags.highlevel import AnyReader

    wanted = {IMAGE_TOPIC: "image", "/ground_truth/labels": "labels",
              "/ground_truth/class_map": "class_map"}
    out: dict[str, dict[int, Any]] = {v: {} for v in wanted.values()}
    with AnyReader([bag]) as reader:
        connections = [c for c in reader.connections if c.topic in wanted]
        for conn, _, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, conn.msgtype)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            if conn.topic == "/ground_truth/class_map":
                out["class_map"][stamp] = msg
            else:
                channels = 3 if msg.encoding == "rgb8" else 1
                arr = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)
                arr = arr[:, : msg.width * channels].reshape(msg.height, msg.width, channels)
                out[wanted[conn.topic]][stamp] = arr if channels == 3 else arr[..., 0]
    return out


def _truth_on_grid(gt_map: Any, geometry: Any, table: Any, level_lut: np.ndarray) -> np.ndarray:
    """Ground-truth class map resampled onto our grid's cells, as OccupancyGrid values."""
    from offroad_core.costmap.grid import GridGeometry

    info = gt_map.info
    truth = GridGeometry(float(info.resolution), int(info.width), int(info.height),
                         float(info.origin.position.x), float(info.origin.position.y))
    classes = np.asarray(gt_map.data, dtype=np.int16).ravel()
    xs, ys = geometry.cell_centres()
    cell = truth.cell_index(xs, ys)
    levels = np.zeros(cell.shape, dtype=np.uint8)
    inside = cell >= 0
    known = np.zeros(cell.shape, dtype=bool)
    known[inside] = classes[cell[inside]] >= 0
    levels[known] = table.levels[classes[cell[known]]]
    return level_lut[levels].astype(np.int16)


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "max": None}
    a = np.asarray(values, dtype=np.float64)
    return {"p50": round(float(np.percentile(a, 50)), 2),
            "p90": round(float(np.percentile(a, 90)), 2), "max": round(float(a.max()), 2)}


def _score(rec: Recorder, truth: dict[str, dict[int, Any]], out: Path) -> dict[str, Any]:
    from offroad_core import ontology
    from offroad_core.costmap.categories import CategoryValues, LabelTable
    from offroad_core.costmap.grid import GridGeometry, grid_picture
    from offroad_core.evaluation import ConfusionMatrix
    from offroad_core.imaging import resize_labels, resize_to_model
    from offroad_core.segmentation.overlay import blend_overlay, palette_lut
    from offroad_replay.evaluate_bag import GridScorer

    info = rec.info
    names = list(info.class_names) if info is not None else list(ontology.CLASS_NAMES)
    ids = list(info.class_ids) if info is not None else list(range(len(names)))
    from offroad_core.ontology import CATEGORY_OF

    table = LabelTable.build(ids, names, dict(CATEGORY_OF))
    level_lut = CategoryValues().level_lut()
    # grid value (-1..100) + 1 -> severity level; equal values (blocked = hazard) keep the higher
    level_of_value = np.zeros(102, dtype=np.uint8)
    for level in range(1, 5):
        level_of_value[int(level_lut[level]) + 1] = level
    ignore = info.ignore_value if info is not None else ontology.IGNORE_INDEX
    confusion = ConfusionMatrix(num_classes=len(names))
    scored_labels = []
    confident = total = 0
    for stamp, pred in sorted(rec.labels.items()):
        gt = truth["labels"].get(stamp)
        if gt is None:
            continue
        # pixels the node gated as uncertain (ignore value) are scored as coverage, not IoU
        gated = pred == ignore
        target = resize_labels(gt, pred.shape[1], pred.shape[0]).copy()
        target[gated] = ignore
        confusion.update(np.where(gated, 0, pred), target)
        confident += int((~gated).sum())
        total += gated.size
        scored_labels.append(stamp)
    scorer = None
    grid_geometry = None
    per_frame_agreement = []
    scored_grids = []
    for stamp, grid in sorted(rec.grids.items()):
        gt_map = truth["class_map"].get(stamp)
        if gt_map is None:
            continue
        geom = GridGeometry(float(grid.info.resolution), int(grid.info.width),
                            int(grid.info.height), float(grid.info.origin.position.x),
                            float(grid.info.origin.position.y))
        ours = np.asarray(grid.data, dtype=np.int16).reshape(geom.ny, geom.nx)
        levels = level_of_value[ours + 1]
        if scorer is None:
            scorer = GridScorer(table, level_lut, geom)
            grid_geometry = geom
        agreement = scorer.score(ours, levels, gt_map)
        if agreement is not None:
            per_frame_agreement.append(agreement)
            scored_grids.append((stamp, ours, gt_map))
    # pictures of a few frames spread over the sequence
    pictures = []
    pics = out / "pictures"
    pics.mkdir(parents=True, exist_ok=True)
    lut = palette_lut(tuple(tuple(int(v) for v in c.rgb) for c in ontology.CLASSES),
                      ontology.IGNORE_INDEX)
    picks = [scored_grids[i] for i in np.linspace(0, len(scored_grids) - 1,
                                                  min(PICTURES, len(scored_grids))).astype(int)]
    for n, (stamp, ours, gt_map) in enumerate(picks):
        pred = rec.labels.get(stamp)
        image = truth["image"].get(stamp)
        gt_labels = truth["labels"].get(stamp)
        if pred is None or image is None or gt_labels is None:
            continue
        h, w = pred.shape
        small = resize_to_model(image, w, h)
        gt_small = resize_labels(gt_labels, w, h)
        truth_values = _truth_on_grid(gt_map, grid_geometry, table, level_lut)
        files = {
            "overlay": blend_overlay(small, pred, lut, 0.5),
            "ground_truth": blend_overlay(small, gt_small, lut, 0.5),
            "costmap": grid_picture(ours),
            "costmap_truth": grid_picture(truth_values),
        }
        entry = {"stamp_ns": stamp}
        for kind, rgb in files.items():
            if kind.startswith("costmap"):
                rgb = cv2.resize(rgb, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
            path = pics / f"{n}_{kind}.png"
            cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            entry[kind] = str(path.relative_to(out))
        pictures.append(entry)
    last = rec.stats[-1] if rec.stats else None
    evaluation = confusion.result(names, images=len(scored_labels)) if scored_labels else None
    return {
        "frames_in_bag": len(truth["image"]),
        "labels_received": len(rec.labels),
        "labels_scored": len(scored_labels),
        "frames_without_labels": [i for i, stamp in enumerate(sorted(truth["image"]))
                                  if stamp not in rec.labels],
        "grids_received": len(rec.grids),
        "grids_for_frames": sum(stamp in rec.grids for stamp in truth["image"]),
        "grids_scored": len(per_frame_agreement),
        "execution_provider": info.execution_provider if info is not None else None,
        "model_sha256": info.model_sha256 if info is not None else None,
        "counters": None if last is None else {
            "frames_received": int(last.frames_received),
            "frames_processed": int(last.frames_processed),
            "frames_dropped": int(last.frames_dropped),
            "frames_rejected": int(last.frames_rejected)},
        "miou": None if evaluation is None else round(100.0 * float(evaluation.miou), 2),
        "label_coverage": None if not total else round(100.0 * confident / total, 2),
        "iou": None if evaluation is None else {
            name: (None if not np.isfinite(v) else round(100.0 * float(v), 2))
            for name, v in zip(names, evaluation.iou, strict=True)},
        "costmap": None if scorer is None else {
            **scorer.summary(),
            "per_frame_agreement": _percentiles([100.0 * a for a in per_frame_agreement])},
        "latency_ms": {
            "preprocess": _percentiles([s.preprocess_ms for s in rec.stats]),
            "inference": _percentiles([s.inference_ms for s in rec.stats]),
            "postprocess": _percentiles([s.postprocess_ms for s in rec.stats]),
            "age_at_publish": _percentiles([s.age_ms for s in rec.stats])},
        "pictures": pictures,
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
            [_executable("offroad_seg_node", "bag_replay"), str(bag), "--rate", str(rate),
             "--wait-for", IMAGE_TOPIC, "--wait-timeout", "120", "--linger", "2"],
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
