"""DDRNet23-slim (``ddrnet``: architecture only), pretrained weights (``pretrained``: third-party
files, ``build_model``) and our own training checkpoints (``checkpoint``)."""

from offroad_training.model.checkpoint import CheckpointError, load_checkpoint
from offroad_training.model.ddrnet import DDRNet23Slim, DualResNet, replace_head
from offroad_training.model.pretrained import build_model

__all__ = ["CheckpointError", "DDRNet23Slim", "DualResNet", "build_model", "load_checkpoint",
           "replace_head"]
