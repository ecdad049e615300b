"""The depth mode of ``offroad evaluate-bag``, scored beside the flat-ground projection.

When the bag has a depth image (``/camera/depth/image_raw``) and/or a LiDAR cloud
(``/lidar/points``), a second :class:`offroad_core.costmap.pipeline.CostmapPipeline` runs with
the same parameters plus those inputs (``depth_topic``/``cloud_topics`` of the params file win
when set), fed message by message as the node's callbacks would be: the depth image's
CameraInfo is the bag's camera_info (the depth is registered to the RGB image), the clouds'
frames come from the bag's ``/tf_static`` (the camera pose stays the ``camera_*`` parameters,
as for the flat mode; a note says when they differ from the bag's TF). Each frame's labels go
through both pipelines; the depth grid is scored with the same :class:`GridScorer`. Frames
whose depth sources dropped out are projected on flat ground by the depth pipeline, as on the
robot: ``modes`` counts them.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from offroad_core.camera import CameraIntrinsics
from offroad_core.costmap.depth import DepthError
from offroad_core.costmap.extrinsics import Rigid, StaticTree
from offroad_core.costmap.params import CostmapConfig, validate
from offroad_core.costmap.pipeline import CostmapPipeline, GridFrame, InputError, ModelInfo
from offroad_core.costmap.pointcloud import CloudError, Field
from offroad_core.costmap.sensors import CloudMessage, DepthMessage
from offroad_core.stamps import stamp_seconds
from offroad_replay.bag_frames import messages
from offroad_replay.bag_replay import open_reader
from offroad_replay.scoring import GridScorer, percentiles

log = logging.getLogger(__name__)

DEPTH_TOPIC, CLOUD_TOPIC, TF_STATIC = "/camera/depth/image_raw", "/lidar/points", "/tf_static"


def static_tree(bag: str | Path, reader: Any, topic: str = TF_STATIC) -> StaticTree | None:
    """Every transform of the bag's ``/tf_static`` (None when it has none)."""
    conns = [c for c in reader.connections if c.topic == topic]
    if not conns:
        return None
    tree = StaticTree()
    for _, _, msg in messages(reader, conns, bag):
        for t in msg.transforms:
            tr, q = t.transform.translation, t.transform.rotation
            tree.add(t.header.frame_id, t.child_frame_id,
                     Rigid.from_quaternion((tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w)))
    return tree


class DepthEvaluation:
    """The depth pipeline of one bag evaluation (module docstring)."""

    def __init__(self, config: CostmapConfig, info: ModelInfo) -> None:
        """``config``: the flat mode's validated costmap parameters."""
        self.config, self.info = config, info
        self.pipeline: CostmapPipeline | None = None
        self.scorer: GridScorer | None = None
        self.in_view: GridScorer | None = None
        self.topics: tuple[str, ...] = ()
        self.problems: Counter[str] = Counter()
        self.modes: Counter[str] = Counter()
        self.costmap_ms: list[float] = []

    def _count(self, reason: str, message: str) -> None:
        self.problems[reason] += 1
        if self.problems[reason] == 1:
            log.warning("depth mode: %s [%s]", message, reason)

    def start(self, bag: str | Path) -> list[str]:
        """Look at the bag's topics and ``/tf_static``; returns notes for the report."""
        reader = open_reader(bag)
        try:
            have = {c.topic for c in reader.connections}
            tree = static_tree(bag, reader)
        finally:
            reader.close()
        v = self.config.values
        depth = v["depth_topic"] or (DEPTH_TOPIC if DEPTH_TOPIC in have else "")
        clouds = v["cloud_topics"] or (CLOUD_TOPIC if CLOUD_TOPIC in have else "")
        if not depth and not clouds:
            return [f"no {DEPTH_TOPIC} nor {CLOUD_TOPIC}: depth mode not scored"]
        config = validate({**v, "depth_topic": depth, "cloud_topics": clouds})
        self.pipeline = CostmapPipeline(config, on_sensor=self._count)
        self.pipeline.set_model_info(self.info)
        self.scorer = GridScorer(self.pipeline.table, config.category_values.level_lut())
        self.in_view = GridScorer(self.pipeline.table, config.category_values.level_lut())
        self.topics = tuple(t for t in (depth, *config.depth.clouds) if t)
        notes = [f"depth mode: {', '.join(self.topics)}"]
        if tree is not None:
            base = config.base_frame
            self.pipeline.depth.lookup = lambda frame, stamp: tree.lookup(base, frame)
            notes += self._check_camera(tree.lookup(base, config.camera_frame))
        return notes

    def _check_camera(self, found: Rigid | None) -> list[str]:
        if found is None:
            return []
        got, want = found.camera_pose(), self.config.pose
        moved = math.dist((got.x, got.y, got.z), (want.x, want.y, want.z))
        turned = max(abs(math.remainder(a - b, 2 * math.pi)) for a, b in (
            (got.roll, want.roll), (got.pitch, want.pitch), (got.yaw, want.yaw)))
        if moved > 0.02 or turned > 0.01:
            return [f"camera_* parameters differ from the bag's /tf_static ({got}): both modes "
                    "use the parameters"]
        return []

    @property
    def sync_tolerance(self) -> float:
        """How long after a frame its depth inputs may still arrive (s)."""
        return self.pipeline.config.sync_tolerance if self.pipeline is not None else 0.0

    @property
    def active(self) -> bool:
        """True when the bag has depth inputs."""
        return self.pipeline is not None

    def set_camera(self, raw: CameraIntrinsics, labels: CameraIntrinsics) -> None:
        """The bag's calibration: the depth image's (camera resolution) and the labels'."""
        if self.pipeline is not None:
            self.pipeline.set_camera(labels)
            self.pipeline.depth.depth_camera = raw

    def on_message(self, topic: str, msg: Any) -> None:
        """A depth image or cloud read from the bag, buffered like the node's callbacks do."""
        if self.pipeline is None:
            return
        stamp = stamp_seconds(msg.header.stamp)
        try:
            if topic == self.pipeline.config.depth_topic:
                self.pipeline.depth.add_depth(DepthMessage(
                    stamp, msg.header.frame_id, msg.encoding, msg.height, msg.width, msg.step,
                    msg.data, bool(msg.is_bigendian)))
            else:
                fields = tuple(Field(f.name, f.offset, f.datatype, f.count) for f in msg.fields)
                self.pipeline.depth.add_cloud(CloudMessage(
                    stamp, msg.header.frame_id, fields, msg.width, msg.height, msg.point_step,
                    msg.row_step, msg.data, bool(msg.is_bigendian), topic))
        except (DepthError, CloudError) as exc:
            self._count(exc.reason, str(exc))

    def step(self, labels: np.ndarray, stamp: float) -> GridFrame | None:
        """The depth-mode grid of one frame's labels (None when the costmap refuses it)."""
        t0 = time.perf_counter()
        try:
            grid = self.pipeline.process(labels, stamp, now=stamp)
        except InputError as exc:
            self._count(exc.reason, str(exc))
            return None
        self.costmap_ms.append((time.perf_counter() - t0) * 1e3)
        self.modes[grid.mode] += 1
        return grid

    def score(self, grid: GridFrame, class_map: Any, flat: GridFrame | None = None) -> float | None:
        """Agreement of one depth-mode grid with the ground-truth class map; with the flat
        mode's grid of the same labels, also scored on the cells that grid observed (the
        camera's view: LiDAR cells outside it are geometry-only, CAUTION by default)."""
        if flat is not None and flat.geometry == grid.geometry:
            self.in_view.score(np.where(flat.values >= 0, grid.values, -1), grid.geometry,
                               class_map)
        return self.scorer.score(grid.values, grid.geometry, class_map)

    def summary(self) -> dict[str, Any] | None:
        """The depth mode's section of report.json (None when not scored)."""
        if self.pipeline is None:
            return None
        return {"topics": list(self.topics), "grids_by_mode": dict(self.modes),
                "sensor_problems": dict(self.problems),
                "costmap_ms": percentiles(self.costmap_ms), **self.scorer.summary(),
                "in_camera_view": {k: v for k, v in self.in_view.summary().items()
                                   if k in ("agreement", "compared_cells", "unsafe_cells")}}
