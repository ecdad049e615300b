"""The segmentation node: camera images in, mono8 traversability labels out.

Wiring only: the per-frame work is :class:`offroad_core.segmentation.pipeline.FramePipeline`
run by :class:`.frame_worker.FrameWorker` on its own thread (newest frame only), parameters
are :mod:`offroad_core.segmentation.params`, messages :mod:`.conversions`, diagnostics
:mod:`.diagnostics`. Start-up: in plain mode (``lifecycle: false``) invalid parameters or an
unusable model are one clear error and exit status 2; in lifecycle mode the ``configure``
transition fails and the node stays unconfigured, alive.
"""

from __future__ import annotations

import sys
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from offroad_core.engine import EngineError, InferenceEngine
from offroad_core.exit_codes import EXIT_BAD_INPUT
from offroad_core.node_runtime import (
    CallbackGuard,
    ReasonLog,
    accept_runtime_changes,
    declare_parameters,
    params_files_usable,
    run_node,
)
from offroad_core.params import ConfigError
from offroad_core.segmentation.overlay import palette_lut
from offroad_core.segmentation.params import PARAMETERS, NodeConfig, check_against_model, validate
from offroad_core.segmentation.pipeline import FramePipeline
from offroad_seg_msgs.msg import SegmentationInfo, SegmentationStats
from offroad_seg_node.conversions import info_message
from offroad_seg_node.counters import FrameCounters
from offroad_seg_node.diagnostics import diagnostic_status
from offroad_seg_node.frame_worker import FrameWorker, Outputs

NODE_NAME = "offroad_segmentation"


class SegmentationNode(LifecycleNode):
    """Lifecycle-capable segmentation node (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        """Declare every parameter (one block, with descriptors); load nothing yet."""
        super().__init__(NODE_NAME, **kwargs)
        self.lifecycle_mode = bool(declare_parameters(self, PARAMETERS)["lifecycle"])
        self._config: NodeConfig | None = None
        self._pipeline: FramePipeline | None = None
        self._worker: FrameWorker | None = None
        self._counters = FrameCounters()
        self._last_snapshot = self._counters.snapshot()
        self._problems = ReasonLog(lambda text: self.get_logger().error(f"rejected: {text}"))
        self._guard = CallbackGuard(self.get_logger())
        self._frame_id = ""
        self._entities: list[Any] = []
        accept_runtime_changes(self, PARAMETERS, self._apply_parameters)

    def _apply_parameters(self, values: dict[str, Any]) -> None:
        """Runtime change of dynamic parameters: validated like at configure, then applied."""
        config = validate(values)
        if self._pipeline is not None:
            check_against_model(config, self._pipeline.contract.has_confidence)
            self._pipeline.configure(config.confidence_threshold, config.debug_extra_latency_ms)
            self._worker.overlay_alpha = config.overlay_alpha
            self._config = config
            self._publish_info()

    # ------------------------------------------------------------------ lifecycle transitions
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Validate parameters, load the model, create publishers and subscriptions."""
        try:
            config = validate({s.name: self.get_parameter(s.name).value for s in PARAMETERS})
            engine = InferenceEngine(config.model_path, config.provider, config.performance_mode,
                                     config.num_threads or None, warn=self.get_logger().warning)
            check_against_model(config, engine.contract.has_confidence)
        except (ConfigError, EngineError) as exc:
            self.get_logger().error(f"configure failed: {exc}" + (
                "" if self.lifecycle_mode else " (exiting with status 2)"))
            return TransitionCallbackReturn.FAILURE
        self._config = config
        self._pipeline = FramePipeline(engine, config.confidence_threshold,
                                       config.debug_extra_latency_ms)
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
        pub, sub, guard = self.create_publisher, self.create_subscription, self._guard
        outputs = Outputs(
            labels=pub(Image, config.topic("labels"), out_qos),
            stats=pub(SegmentationStats, config.topic("stats"), out_qos),
            confidence=pub(Image, config.topic("confidence"), out_qos)
            if config.publish_confidence else None,
            overlay=pub(Image, config.topic("overlay"), out_qos) if config.publish_overlay
            else None,
            camera_info=pub(CameraInfo, config.topic("camera_info"), out_qos)
            if config.use_camera_info else None)
        contract = self._pipeline.contract
        self._worker = FrameWorker(
            self._pipeline, outputs, self._counters, self._reject,
            lambda: self.get_clock().now().nanoseconds,
            palette_lut(contract.palette, contract.ignore_index), config.overlay_alpha,
            self._on_frame_id)
        self._pub_info = pub(SegmentationInfo, config.topic("info"), latched)
        self._pub_diag = pub(DiagnosticArray, "/diagnostics", 10)
        raw = config.input_transport == "raw"
        self._entities = [
            *vars(outputs).values(), self._pub_info, self._pub_diag,
            sub(Image if raw else CompressedImage,
                config.image_topic if raw else config.compressed_topic,
                guard("image", self._worker.put), sub_qos),
            sub(CameraInfo, config.camera_info_topic, guard("camera_info", self._on_camera_info),
                sub_qos) if config.use_camera_info else None,
            self.create_timer(config.diagnostics_period,
                              guard("diagnostics", self._publish_diagnostics))]

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Publish the model info and start the worker thread."""
        self._publish_info()
        self._worker.start()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Stop processing; a pending frame is dropped."""
        self.stop()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Release the model, publishers, subscriptions and the timer."""
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Stop and release everything."""
        self.stop()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def stop(self) -> None:
        """Stop the worker thread (a pending frame counts as dropped)."""
        if self._worker is not None:
            self._worker.stop()

    def _release(self) -> None:
        for entity in filter(None, self._entities):
            if hasattr(entity, "publish"):
                self.destroy_publisher(entity)
            elif hasattr(entity, "timer_period_ns"):
                self.destroy_timer(entity)
            else:
                self.destroy_subscription(entity)
        self._entities, self._pipeline, self._worker = [], None, None

    # ------------------------------------------------------------------ callbacks
    def _on_camera_info(self, msg: CameraInfo) -> None:
        if self._worker is not None:
            self._worker.camera_info = msg

    def _reject(self, reason: str, message: str) -> None:
        self._counters.rejected(reason, message)
        self._problems(reason, message)

    def _on_frame_id(self, frame_id: str) -> None:
        self._frame_id = frame_id
        self._publish_info()

    def _publish_info(self) -> None:
        """Publish the latched SegmentationInfo (on activation and when frame_id changes)."""
        if self._pipeline is None:
            return
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self._frame_id)
        engine = self._pipeline.engine
        self._pub_info.publish(info_message(engine.contract, engine.provider,
                                            engine.model_sha256,
                                            self._config.confidence_threshold, header))

    def _publish_diagnostics(self) -> None:
        """Publish /diagnostics with counters, rejected inputs by reason and stage timings."""
        if self._pipeline is None:
            return
        now, engine = self._counters.snapshot(), self._pipeline.engine
        status = diagnostic_status(
            f"{self.get_name()}: segmentation", engine.contract.model_id, now,
            self._last_snapshot, self._config.diagnostics_period,
            {"provider": engine.provider, "model_path": str(engine.model_path),
             "model_sha256": engine.model_sha256,
             "active": str(self._worker is not None and self._worker.active),
             **{f"fault_{k}": str(v) for k, v in sorted(self._guard.faults.items())}})
        self._last_snapshot = now
        self._pub_diag.publish(DiagnosticArray(header=Header(
            stamp=self.get_clock().now().to_msg()), status=[status]))


def _start(node: SegmentationNode) -> bool:
    """Plain mode configures and activates at once; False (exit 2) if configure fails."""
    if node.lifecycle_mode:
        return True
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        return False  # on_configure logged the one line saying why
    node.trigger_activate()
    return True


def main(args: list[str] | None = None) -> int:
    """Run the node; 2 for an unusable params file or when plain mode cannot configure, 0 on
    Ctrl-C or shutdown."""
    if not params_files_usable(NODE_NAME, args):
        return EXIT_BAD_INPUT
    return run_node(SegmentationNode, NODE_NAME, args, start=_start,
                    stop=lambda node: node.stop())


if __name__ == "__main__":
    sys.exit(main())
