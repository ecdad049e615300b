"""Atomic checkpoint files, the RNG state they carry, and which config changes a resume allows.

``last.pth``: ``model``, ``ema``, ``optimizer`` (both parameter groups), ``scheduler``,
``scaler``, ``step``, ``epoch``, ``batch_in_epoch`` (the data order is a pure function of seed
and epoch, so these two numbers restore it), ``best_miou``, ``rng`` (python, numpy, torch,
cuda), ``world_size``, ``config``, ``provenance``. ``best_model.pth``: ``model`` = EMA
weights, ``config``, ``metrics``, ``provenance``. Both are written through
:func:`offroad_core.atomic.atomic_path` (a crash leaves the previous file intact) and read back
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from offroad_core.atomic import atomic_path
from offroad_core.exit_codes import CommandError
from offroad_training.model.checkpoint import WeightsReadError, read_weights
from offroad_training.train.config import TrainConfig

RUNTIME_KEYS = ("num_workers", "pin_memory", "persistent_workers", "prefetch_factor",
                "torch_threads", "tensorboard", "max_steps", "device", "eval_limit",
                "deterministic", "dist_backend", "out_dir")
"""Config keys a resumed run may change (they do not alter the numbers being computed;
``out_dir``: a run directory may be moved or copied)."""


class ResumeError(CommandError, RuntimeError):
    """A checkpoint cannot be used to resume training."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` with ``torch.save`` atomically; return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint_dict(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint dict with ``weights_only=True``; clear error if absent or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise ResumeError(f"no checkpoint at {path}: nothing to resume (start without "
                          "--resume, or point out_dir at the run to continue)")
    try:
        data = read_weights(path)
    except WeightsReadError as exc:
        raise ResumeError(str(exc)) from None
    if not isinstance(data, dict):
        raise ResumeError(f"{path} is not a training checkpoint")
    return data


def rng_state() -> dict[str, Any]:
    """Capture python, numpy and torch (CPU and CUDA) global RNG states (weights_only-safe)."""
    np_state = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"name": np_state[0], "key": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["key"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def resume_config(saved: dict[str, Any], cfg: TrainConfig) -> TrainConfig:
    """The checkpoint's config with ``cfg``'s runtime keys; refuse any other difference."""
    current = cfg.to_dict()
    differ = sorted(k for k in saved if k not in RUNTIME_KEYS and saved.get(k) != current.get(k))
    if differ:
        raise ResumeError(
            "the config differs from the checkpoint's in " + ", ".join(
                f"{k} ({saved.get(k)!r} -> {current.get(k)!r})" for k in differ)
            + ": resume with the same config, or start a new out_dir")
    merged = dict(saved)
    merged.update({k: current[k] for k in RUNTIME_KEYS})
    return TrainConfig.from_dict(merged, "resumed config")
