"""Per-frame work of the segmentation node, without ROS plumbing: decode + resize, inference,
confidence gating. Every stage is timed by the caller around these calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from offroad_core.engine import EngineOutput, InferenceEngine
from offroad_core.imaging import resize_to_model


@dataclass(frozen=True)
class FrameResult:
    """Model-resolution outputs of one frame."""

    model_input: np.ndarray  # RGB (H, W, 3) at model size (what the overlay is drawn on)
    labels: np.ndarray  # (H, W) uint8, gated by the confidence threshold
    confidence: np.ndarray | None  # (H, W) uint8 or None


class FramePipeline:
    """Turns decoded camera frames into label images with one :class:`InferenceEngine`."""

    def __init__(self, engine: InferenceEngine, confidence_threshold: float = 0.0,
                 extra_latency_ms: float = 0.0) -> None:
        """``extra_latency_ms`` (test/debug only) sleeps after every inference."""
        self.engine = engine
        self.contract = engine.contract
        self.configure(confidence_threshold, extra_latency_ms)

    def configure(self, confidence_threshold: float, extra_latency_ms: float = 0.0) -> None:
        """Set the confidence gate (0..1) and the debug latency (runtime parameter changes)."""
        self._threshold = int(np.ceil(confidence_threshold * 255.0))
        self._extra_s = extra_latency_ms / 1000.0

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """Resize a decoded RGB frame to the model input size (the project's one resize)."""
        return resize_to_model(rgb, self.contract.width, self.contract.height)

    def infer(self, model_input: np.ndarray) -> EngineOutput:
        """Run the engine (plus the debug latency, if configured)."""
        out = self.engine.run(model_input)
        if self._extra_s > 0:
            time.sleep(self._extra_s)
        return out

    def postprocess(self, model_input: np.ndarray, out: EngineOutput) -> FrameResult:
        """Apply the confidence threshold: pixels below it become the ignore value."""
        labels = out.labels
        if self._threshold > 0 and out.confidence is not None:
            labels = np.where(out.confidence < self._threshold,
                              np.uint8(self.contract.ignore_index), labels)
        return FrameResult(model_input=model_input, labels=labels, confidence=out.confidence)
