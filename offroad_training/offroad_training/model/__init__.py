"""DDRNet23-slim and its pretrained-weight loading."""

from offroad_training.model.ddrnet import (
    CheckpointError,
    DDRNet23Slim,
    DualResNet,
    build_model,
    load_checkpoint,
    replace_head,
)

__all__ = ["CheckpointError", "DDRNet23Slim", "DualResNet", "build_model", "load_checkpoint",
           "replace_head"]
