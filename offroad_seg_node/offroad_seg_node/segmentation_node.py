"""The segmentation node: camera images in, mono8 traversability labels out.

Wiring only; the work lives in plain modules (:mod:`.pipeline`, :mod:`.conversions`,
:mod:`.frame_slot`, :mod:`.counters`, :mod:`.diagnostics`, :mod:`.params`).

Threads: the executor thread only stores incoming messages in a latest-frame-only slot
(:class:`.frame_slot.LatestFrameSlot`); one worker thread decodes, runs the model and publishes.
A frame arriving while another waits replaces it and is counted as dropped.

Start-up decision: in plain mode (``lifecycle: false``) the node configures and activates itself
at start; invalid parameters or a missing/corrupt/contract-mismatched model are logged as one
clear error and the process exits with status 2 (nothing to run without a model; a supervisor
restart will not help either, so the code is distinct from a crash). In lifecycle mode the same
problems make the ``configure`` transition fail and the node stays unconfigured, alive.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from offroad_core.engine import EngineError, InferenceEngine
from offroad_core.imaging import ImageDecodeError
from offroad_core.params import descriptor
from offroad_core.segmentation.overlay import blend_overlay, palette_lut
from offroad_core.segmentation.params import (
    PARAMETERS,
    ConfigError,
    NodeConfig,
    check_against_model,
    validate,
)
from offroad_core.segmentation.pipeline import FramePipeline
from offroad_seg_msgs.msg import SegmentationInfo, SegmentationStats
from offroad_seg_node.conversions import (
    array_to_image,
    class_fractions,
    info_message,
    message_to_rgb,
    rescale_camera_info,
)
from offroad_seg_node.counters import FrameCounters
from offroad_seg_node.diagnostics import diagnostic_status
from offroad_seg_node.frame_slot import LatestFrameSlot

NODE_NAME = "offroad_segmentation"
EXIT_CONFIG_ERROR = 2
LOG_THROTTLE_S = 5.0


class SegmentationNode(LifecycleNode):
    """Lifecycle-capable segmentation node (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        """Declare every parameter (one block, with descriptors); load nothing yet."""
        super().__init__(NODE_NAME, **kwargs)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, descriptor(spec))
        self.lifecycle_mode = bool(self.get_parameter("lifecycle").value)
        self._config: NodeConfig | None = None
        self._pipeline: FramePipeline | None = None
        self._slot: LatestFrameSlot[Image | CompressedImage] = LatestFrameSlot()
        self._counters = FrameCounters()
        self._last_snapshot = self._counters.snapshot()
        self._camera_info: CameraInfo | None = None
        self._frame_id: str | None = None
        self._worker: threading.Thread | None = None
        self._active = threading.Event()
        self._entities: list[Any] = []
        self._diag_timer = None
        self._lut = None

    # ------------------------------------------------------------------ lifecycle transitions
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Validate parameters, load the model, create publishers and subscriptions."""
        try:
            values = {s.name: self.get_parameter(s.name).value for s in PARAMETERS}
            config = validate(values)
            engine = InferenceEngine(config.model_path, config.provider, config.performance_mode,
                                     config.num_threads or None)
            check_against_model(config, engine.contract.has_confidence)
        except (ConfigError, EngineError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._config = config
        self._pipeline = FramePipeline(engine, config.confidence_threshold,
                                       config.debug_extra_latency_ms)
        self._lut = palette_lut(engine.contract.palette, engine.contract.ignore_index)
        self._create_entities(config)
        c = engine.contract
        self.get_logger().info(
            f"model {config.model_path} ({c.model_id} {c.model_version}, {c.width}x{c.height}, "
            f"{c.num_classes} classes) on {engine.provider}; input {config.input_transport} "
            f"({config.qos_reliability}, depth {config.qos_depth})")
        return TransitionCallbackReturn.SUCCESS

    def _create_entities(self, config: NodeConfig) -> None:
        """Publishers, subscriptions and the diagnostics timer."""
        reliability = (ReliabilityPolicy.RELIABLE if config.qos_reliability == "reliable"
                       else ReliabilityPolicy.BEST_EFFORT)
        sub_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=config.qos_depth,
                             reliability=reliability)
        out_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=config.qos_depth,
                             reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._pub_labels = self.create_publisher(Image, config.topic("labels"), out_qos)
        self._pub_conf = (self.create_publisher(Image, config.topic("confidence"), out_qos)
                          if config.publish_confidence else None)
        self._pub_overlay = (self.create_publisher(Image, config.topic("overlay"), out_qos)
                             if config.publish_overlay else None)
        self._pub_info = self.create_publisher(SegmentationInfo, config.topic("info"), latched)
        self._pub_stats = self.create_publisher(SegmentationStats, config.topic("stats"),
                                                out_qos)
        self._pub_cam = (self.create_publisher(CameraInfo, config.topic("camera_info"), out_qos)
                         if config.use_camera_info else None)
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        if config.input_transport == "raw":
            sub = self.create_subscription(Image, config.image_topic, self._on_image, sub_qos)
        else:
            sub = self.create_subscription(CompressedImage, config.compressed_topic,
                                           self._on_image, sub_qos)
        self._entities = [self._pub_labels, self._pub_conf, self._pub_overlay, self._pub_info,
                          self._pub_stats, self._pub_cam, self._pub_diag, sub]
        if config.use_camera_info:
            self._entities.append(self.create_subscription(
                CameraInfo, config.camera_info_topic, self._on_camera_info, sub_qos))
        self._diag_timer = self.create_timer(config.diagnostics_period, self._publish_diagnostics)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Publish the model info and start the worker thread."""
        self._publish_info()
        self._slot.reopen()
        self._active.set()
        self._worker = threading.Thread(target=self._work, name="segmentation", daemon=True)
        self._worker.start()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Stop processing; a pending frame is dropped."""
        self.stop()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Release the model, publishers and subscriptions."""
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Stop and release everything."""
        self.stop()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def stop(self) -> None:
        """Stop the worker thread and count a pending frame as dropped."""
        self._active.clear()
        self._slot.close()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
            self._worker = None
        if self._slot.clear():
            self._counters.dropped()

    def _release(self) -> None:
        """Destroy publishers, subscriptions, the timer and the engine."""
        for entity in self._entities:
            if entity is None:
                continue
            if hasattr(entity, "topic_name") and hasattr(entity, "publish"):
                self.destroy_publisher(entity)
            else:
                self.destroy_subscription(entity)
        self._entities = []
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        self._pipeline = None

    # ------------------------------------------------------------------ callbacks
    def _on_image(self, msg: Image | CompressedImage) -> None:
        """Store the newest frame; the one it replaces (if any) counts as dropped."""
        if not self._active.is_set():
            return
        self._counters.received(dropped=self._slot.put(msg))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        """Remember the latest camera calibration."""
        self._camera_info = msg

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        """Worker loop: take the newest frame and process it, until deactivated."""
        while self._active.is_set():
            msg = self._slot.take(timeout=0.2)
            if msg is None or self._pipeline is None:
                continue
            try:
                self._process(msg, self._pipeline)
            except Exception as exc:  # never let one frame kill the worker
                self._counters.engine_error(f"{type(exc).__name__}: {exc}")
                self.get_logger().error(f"frame failed: {type(exc).__name__}: {exc}",
                                        throttle_duration_sec=LOG_THROTTLE_S)

    def _process(self, msg: Image | CompressedImage, pipeline: FramePipeline) -> None:
        """Decode, infer and publish one frame, timing every stage."""
        config = self._config
        t0 = time.perf_counter()
        try:
            rgb = message_to_rgb(msg)
        except ImageDecodeError as exc:
            self._counters.rejected(exc.reason, str(exc))
            self.get_logger().error(f"rejected input frame ({exc.reason}): {exc}",
                                    throttle_duration_sec=LOG_THROTTLE_S)
            return
        model_input = pipeline.preprocess(rgb)
        t1 = time.perf_counter()
        try:
            out = pipeline.infer(model_input)
        except EngineError as exc:
            self._counters.engine_error(str(exc))
            self.get_logger().error(f"inference failed: {exc}",
                                    throttle_duration_sec=LOG_THROTTLE_S)
            return
        t2 = time.perf_counter()
        result = pipeline.postprocess(model_input, out)
        header = msg.header
        # camera_info first: a consumer (the costmap) needs it to use the labels that follow
        self._publish_camera_info(header, pipeline)
        self._pub_labels.publish(array_to_image(result.labels, "mono8", header))
        if self._pub_conf is not None and result.confidence is not None:
            self._pub_conf.publish(array_to_image(result.confidence, "mono8", header))
        if self._pub_overlay is not None and self._pub_overlay.get_subscription_count() > 0:
            overlay = blend_overlay(result.model_input, result.labels, self._lut,
                                    config.overlay_alpha)
            self._pub_overlay.publish(array_to_image(overlay, "rgb8", header))
        t3 = time.perf_counter()
        if self._frame_id != header.frame_id:
            self._frame_id = header.frame_id
            self._publish_info()
        age_ms = (self.get_clock().now().nanoseconds
                  - (header.stamp.sec * 1_000_000_000 + header.stamp.nanosec)) / 1e6
        stage_ms = {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3,
                    "postprocess": (t3 - t2) * 1e3, "age": age_ms}
        self._counters.processed(stage_ms)
        self._publish_stats(header, stage_ms, result.labels, pipeline.contract.num_classes)

    def _publish_camera_info(self, header: Header, pipeline: FramePipeline) -> None:
        """Publish the latest CameraInfo rescaled to the label size (if configured)."""
        info = self._camera_info
        if self._pub_cam is None or info is None:
            return
        try:
            scaled = rescale_camera_info(info, pipeline.contract.width, pipeline.contract.height,
                                         header)
        except ValueError as exc:
            self._counters.rejected("bad_camera_info", f"camera_info: {exc}")
            self.get_logger().error(f"cannot rescale camera_info: {exc}",
                                    throttle_duration_sec=LOG_THROTTLE_S)
            return
        self._pub_cam.publish(scaled)

    def _publish_stats(self, header: Header, stage_ms: dict[str, float], labels: Any,
                       num_classes: int) -> None:
        """Publish SegmentationStats for one processed frame."""
        received, processed, dropped, rejected = self._counters.totals
        stats = SegmentationStats()
        stats.header = header
        stats.preprocess_ms = stage_ms["preprocess"]
        stats.inference_ms = stage_ms["inference"]
        stats.postprocess_ms = stage_ms["postprocess"]
        stats.age_ms = stage_ms["age"]
        stats.class_fractions = class_fractions(labels, num_classes)
        stats.frames_received, stats.frames_processed = received, processed
        stats.frames_dropped, stats.frames_rejected = dropped, rejected
        self._pub_stats.publish(stats)

    def _publish_info(self) -> None:
        """Publish the latched SegmentationInfo (on activation and when frame_id changes)."""
        if self._pipeline is None:
            return
        header = Header()
        header.stamp = self.get_clock().now().to_msg()
        header.frame_id = self._frame_id or ""
        engine = self._pipeline.engine
        self._pub_info.publish(info_message(engine.contract, engine.provider,
                                            engine.model_sha256,
                                            self._config.confidence_threshold, header))

    def _publish_diagnostics(self) -> None:
        """Publish /diagnostics with counters, rejected inputs by reason and stage timings."""
        if self._pipeline is None:
            return
        now = self._counters.snapshot()
        engine = self._pipeline.engine
        status = diagnostic_status(
            f"{self.get_name()}: segmentation", engine.contract.model_id, now,
            self._last_snapshot, self._config.diagnostics_period,
            {"provider": engine.provider, "model_path": str(engine.model_path),
             "model_sha256": engine.model_sha256, "active": str(self._active.is_set())})
        self._last_snapshot = now
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self._pub_diag.publish(array)


def main(args: list[str] | None = None) -> int:
    """Run the node; returns 2 when plain mode cannot configure (see the module docstring)."""
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = SegmentationNode()
        except Exception as exc:  # rclpy's parameter exceptions (type/range) at declaration
            print(f"[{NODE_NAME}] invalid parameters: {exc}", file=sys.stderr)
            return EXIT_CONFIG_ERROR
        if not node.lifecycle_mode:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal("cannot start (see the error above); exiting with "
                                        f"status {EXIT_CONFIG_ERROR}")
                return EXIT_CONFIG_ERROR
            node.trigger_activate()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.stop()
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
