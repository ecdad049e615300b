"""The segmentation node's worker thread: newest frame -> decode, infer, publish, count.

The executor thread only puts messages into a latest-frame-only slot (:meth:`FrameWorker.put`);
one worker thread takes the newest, runs :class:`FramePipeline` and publishes every output with
the input's header. A frame arriving while another waits replaces it and counts as dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from offroad_core.imaging import ImageDecodeError
from offroad_core.segmentation.overlay import blend_overlay
from offroad_core.segmentation.pipeline import FramePipeline
from offroad_core.stamps import stamp_ns
from offroad_seg_node.conversions import (
    array_to_image,
    message_to_rgb,
    rescale_camera_info,
    stats_message,
)
from offroad_seg_node.counters import FrameCounters
from offroad_seg_node.frame_slot import LatestFrameSlot


@dataclass
class Outputs:
    """The node's per-frame publishers (None: not configured)."""

    labels: Any
    stats: Any
    confidence: Any = None
    overlay: Any = None
    camera_info: Any = None


class FrameWorker:
    """Processes the newest frame on its own thread (module docstring)."""

    def __init__(self, pipeline: FramePipeline, outputs: Outputs, counters: FrameCounters,
                 reject: Callable[[str, str], None], now_ns: Callable[[], int],
                 palette: np.ndarray, overlay_alpha: float,
                 on_frame_id: Callable[[str], None]) -> None:
        """``reject(reason, message)`` counts a bad input; ``on_frame_id`` hears a new frame_id."""
        self.pipeline = pipeline
        self.outputs = outputs
        self.counters = counters
        self.overlay_alpha = overlay_alpha
        self.camera_info: CameraInfo | None = None
        self._reject, self._now_ns, self._lut = reject, now_ns, palette
        self._on_frame_id = on_frame_id
        self._frame_id: str | None = None
        self._slot: LatestFrameSlot[Image | CompressedImage] = LatestFrameSlot()
        self._active = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        """True while the worker runs."""
        return self._active.is_set()

    def put(self, msg: Image | CompressedImage) -> None:
        """Hand over the newest frame (ignored while stopped)."""
        if self._active.is_set():
            self.counters.received(dropped=self._slot.put(msg))

    def start(self) -> None:
        """Start the worker thread."""
        self._slot.reopen()
        self._active.set()
        self._thread = threading.Thread(target=self._work, name="segmentation", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; a pending frame counts as dropped."""
        self._active.clear()
        self._slot.close()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None
        if self._slot.clear():
            self.counters.dropped()

    def _work(self) -> None:
        while self._active.is_set():
            msg = self._slot.take(timeout=0.2)
            if msg is None:
                continue
            try:
                self._process(msg)
            except ImageDecodeError as exc:
                self._reject(exc.reason, str(exc))
            except Exception as exc:  # EngineError or a bug: one frame never kills the worker
                self.counters.engine_error(f"{type(exc).__name__}: {exc}")
                self._reject("engine_error", f"frame failed: {type(exc).__name__}: {exc}")

    def _process(self, msg: Image | CompressedImage) -> None:
        """Decode, infer and publish one frame, timing every stage."""
        pipeline, out = self.pipeline, self.outputs
        t0 = time.perf_counter()
        rgb = message_to_rgb(msg)
        model_input = pipeline.preprocess(rgb)
        t1 = time.perf_counter()
        raw = pipeline.infer(model_input)
        t2 = time.perf_counter()
        result = pipeline.postprocess(model_input, raw)
        header = msg.header
        self._publish_camera_info(header, rgb.shape)  # first: the costmap needs it
        out.labels.publish(array_to_image(result.labels, "mono8", header))
        if out.confidence is not None and result.confidence is not None:
            out.confidence.publish(array_to_image(result.confidence, "mono8", header))
        if out.overlay is not None and out.overlay.get_subscription_count() > 0:
            overlay = blend_overlay(result.model_input, result.labels, self._lut,
                                    self.overlay_alpha)
            out.overlay.publish(array_to_image(overlay, "rgb8", header))
        t3 = time.perf_counter()
        if self._frame_id != header.frame_id:
            self._frame_id = header.frame_id
            self._on_frame_id(header.frame_id)
        stage_ms = {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3,
                    "postprocess": (t3 - t2) * 1e3,
                    "age": (self._now_ns() - stamp_ns(header.stamp)) / 1e6}
        self.counters.processed(stage_ms)
        out.stats.publish(stats_message(header, stage_ms, result.labels,
                                        pipeline.contract.num_classes, self.counters.totals))

    def _publish_camera_info(self, header: Header, image_shape: tuple[int, ...]) -> None:
        """The latest CameraInfo rescaled to the label size, if configured and valid for this
        frame: a calibration of another image size would put every label in the wrong place."""
        info = self.camera_info
        if self.outputs.camera_info is None or info is None:
            return
        c = self.pipeline.contract
        try:
            scaled = rescale_camera_info(info, c.width, c.height, header)
            if (info.height, info.width) != tuple(image_shape[:2]):
                raise ValueError(f"it is for {info.width}x{info.height} images, the image is "
                                 f"{image_shape[1]}x{image_shape[0]}")
        except ValueError as exc:
            self._reject("bad_camera_info", f"camera_info not republished: {exc}")
            return
        self.outputs.camera_info.publish(scaled)
