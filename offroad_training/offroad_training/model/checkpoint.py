"""Reading weight files safely, and our own training checkpoints back into a DDRNet23-slim.

Every file is read with ``torch.load(weights_only=True)``: tensors and plain containers only, no
pickled code runs. When that fails, :func:`read_weights` gives one line saying why, without
torch's advice to retry with ``weights_only=False`` (which would run whatever code an untrusted
file carries; this project never suggests it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from offroad_core.exit_codes import CommandError
from offroad_training.model.ddrnet import DDRNet23Slim


class CheckpointError(CommandError, RuntimeError):
    """A training checkpoint is missing, unreadable or does not describe a DDRNet23-slim."""


class WeightsReadError(CommandError, ValueError):
    """A weight file is missing or cannot be read with ``weights_only=True``."""


def describe_load_error(exc: BaseException) -> str:
    """One line saying why ``torch.load(weights_only=True)`` failed (no ``weights_only`` advice)."""
    text = str(exc)
    unpickler = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\. |\n|$)", text, re.S)
    if unpickler:
        detail = " ".join(unpickler.group(1).split())
        return (f"it is not a plain file of tensors ({detail}); only weights are read, "
                "never pickled code")
    if isinstance(exc, EOFError) or not text.strip():
        return "the file is empty or truncated"
    first = text.strip().splitlines()[0].split(". ")[0].rstrip(".")
    if "weights_only" in first:
        first = type(exc).__name__
    if "zip archive" in first or "central directory" in first:
        return f"the file is corrupt or truncated ({first})"
    return f"it is not a PyTorch weight file ({first})"


def read_weights(path: str | Path, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; :class:`WeightsReadError` on failure."""
    path = Path(path)
    if not path.is_file():
        kind = "is a directory" if path.is_dir() else "does not exist"
        raise WeightsReadError(f"{what} {path} {kind}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsReadError(f"cannot read {what} {path}: {describe_load_error(exc)}") from None


def load_checkpoint(path: str | Path) -> tuple[DDRNet23Slim, dict[str, Any]]:
    """Load a checkpoint written by ``offroad train`` and return ``(model in eval mode, config)``.

    Accepts ``best_model.pth`` (``"model"`` holds the EMA weights) and ``last.pth`` (``"model"``
    holds the raw weights; the EMA copy is under ``"ema"``). The weights must match the
    architecture strictly. The class count comes from the classifier's shape; the auxiliary head
    is kept if present.
    """
    path = Path(path)
    try:
        ckpt = read_weights(path)
    except WeightsReadError as exc:
        raise CheckpointError(str(exc)) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise CheckpointError(f"{path} is not an offroad training checkpoint (no 'model' "
                              "state dict); for third-party weights use model.pretrained")
    state = ckpt["model"]
    if "final_layer.conv2.weight" not in state:
        raise CheckpointError(f"{path}: 'model' has no final_layer.conv2.weight; not DDRNet")
    num_classes = int(state["final_layer.conv2.weight"].shape[0])
    model = DDRNet23Slim(num_classes=num_classes,
                         aux=any(k.startswith("seghead_extra.") for k in state))
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        reason = " ".join(str(exc).split("\n\t")[1:2]) or "tensor shapes differ"
        raise CheckpointError(f"{path}: weights do not match DDRNet23-slim: {reason}") from None
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(f"{path}: weights do not match DDRNet23-slim: missing "
                              f"{result.missing_keys[:5]}, unexpected "
                              f"{result.unexpected_keys[:5]}")
    model.eval()
    return model, dict(ckpt.get("config") or {})
