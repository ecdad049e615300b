"""DDRNet23-slim and its pretrained-weight loading."""

from offroad_training.model.ddrnet import DDRNet23Slim, DualResNet, build_model, replace_head

__all__ = ["DDRNet23Slim", "DualResNet", "build_model", "replace_head"]
