"""Parameters of the segmentation node: one table (name, default, description, range) and the
validation run at configure time and on every runtime change. No rclpy import: the node turns
:data:`PARAMETERS` into ``ParameterDescriptor`` declarations (:mod:`offroad_core.params`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offroad_core.engine import PERFORMANCE_MODES, PROVIDERS
from offroad_core.params import ConfigError, ParamSpec, check_values

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("lifecycle", False, "true: managed lifecycle node (configure loads the model, "
              "activate starts processing); false: configure and activate at start"),
    ParamSpec("model_path", "", "ONNX model following the deploy contract: QNN context binary "
              "(*_ctx.onnx), QDQ or FP32 ONNX. Required."),
    ParamSpec("provider", "auto", "execution provider: qnn (HTP, no CPU fallback), cpu, or auto "
              "(qnn if a real HTP is usable, else cpu with a warning)", choices=PROVIDERS),
    ParamSpec("performance_mode", "burst", "QNN HTP performance mode (htp_performance_mode)",
              choices=PERFORMANCE_MODES),
    ParamSpec("num_threads", 0, "onnxruntime intra-op threads for the CPU provider; 0 = default",
              low=0, high=64),
    ParamSpec("input_transport", "raw", "raw: sensor_msgs/Image on image_topic; compressed: "
              "sensor_msgs/CompressedImage (jpeg/png) on compressed_topic",
              choices=("raw", "compressed")),
    ParamSpec("image_topic", "image", "input sensor_msgs/Image topic (input_transport raw)"),
    ParamSpec("compressed_topic", "image/compressed",
              "input sensor_msgs/CompressedImage topic (input_transport compressed)"),
    ParamSpec("camera_info_topic", "camera_info", "input sensor_msgs/CameraInfo topic "
              "(use_camera_info)"),
    ParamSpec("output_namespace", "segmentation", "prefix of the output topics "
              "(<ns>/labels, <ns>/confidence, <ns>/overlay, <ns>/info, <ns>/stats, "
              "<ns>/camera_info)"),
    ParamSpec("qos_reliability", "best_effort", "reliability of the image/camera_info "
              "subscriptions; best_effort matches every camera driver (use the shipped Fast DDS "
              "profile for large images)", choices=("reliable", "best_effort")),
    ParamSpec("qos_depth", 1, "history depth of the image subscription and the output "
              "publishers", low=1, high=100),
    ParamSpec("publish_overlay", True, "publish <ns>/overlay (rgb8, model resolution); computed "
              "only while someone subscribes"),
    ParamSpec("overlay_alpha", 0.5, "weight of the class colour in the overlay", low=0.0,
              high=1.0, dynamic=True),
    ParamSpec("publish_confidence", False, "publish <ns>/confidence (mono8, max softmax x 255); "
              "needs a model with a confidence output"),
    ParamSpec("confidence_threshold", 0.0, "labels whose confidence is below this (0..1) are "
              "published as the ignore value (255); 0 disables; needs a confidence output",
              low=0.0, high=1.0, dynamic=True),
    ParamSpec("use_camera_info", False, "subscribe camera_info_topic and publish "
              "<ns>/camera_info rescaled to the label resolution with every label image"),
    ParamSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages", low=0.1,
              high=60.0),
    ParamSpec("debug_extra_latency_ms", 0.0, "TEST/DEBUG ONLY: sleep this long after every "
              "inference (simulates a slow model); counted in inference_ms", low=0.0,
              high=10000.0, dynamic=True),
)


@dataclass(frozen=True)
class NodeConfig:
    """Validated parameter values (names as in :data:`PARAMETERS`)."""

    lifecycle: bool
    model_path: str
    provider: str
    performance_mode: str
    num_threads: int
    input_transport: str
    image_topic: str
    compressed_topic: str
    camera_info_topic: str
    output_namespace: str
    qos_reliability: str
    qos_depth: int
    publish_overlay: bool
    overlay_alpha: float
    publish_confidence: bool
    confidence_threshold: float
    use_camera_info: bool
    diagnostics_period: float
    debug_extra_latency_ms: float

    def topic(self, name: str) -> str:
        """Output topic ``<output_namespace>/<name>``."""
        return f"{self.output_namespace.rstrip('/')}/{name}" if self.output_namespace else name


def validate(values: dict[str, Any]) -> NodeConfig:
    """Check every parameter value; return a :class:`NodeConfig` or raise :class:`ConfigError`.

    Model-dependent checks (confidence output present) happen after the model is loaded, in
    :func:`check_against_model`.
    """
    values, problems = check_values(PARAMETERS, values)
    for name in ("image_topic", "compressed_topic", "camera_info_topic"):
        if name in values and not values[name]:
            problems.append(f"{name}: must not be empty")
    model_path = values.get("model_path", "")
    if not model_path:
        problems.append("model_path: not set; pass -p model_path:=/path/to/model.onnx")
    elif not Path(model_path).is_file():
        problems.append(f"model_path: file not found: {model_path}")
    if problems:
        raise ConfigError(problems)
    return NodeConfig(**values)


def check_against_model(config: NodeConfig, has_confidence: bool) -> None:
    """Raise :class:`ConfigError` for options the loaded model cannot serve."""
    problems = []
    if config.publish_confidence and not has_confidence:
        problems.append("publish_confidence is true but the model has no confidence output")
    if config.confidence_threshold > 0 and not has_confidence:
        problems.append(f"confidence_threshold {config.confidence_threshold} needs a model with "
                        "a confidence output; set it to 0.0 or export with confidence")
    if problems:
        raise ConfigError(problems)
