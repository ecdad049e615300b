"""Where and how a training run executes: device, AMP, reproducibility, signals.

Reproducibility (config ``seed``, ``torch_threads``, ``deterministic``): the python, numpy and
torch generators are seeded with ``seed``; DataLoader workers get seeded generators (the data
order and every augmentation are pure functions of ``(seed, epoch, index)`` anyway);
``torch.set_num_threads`` is fixed (``torch_threads``, or the cores divided among the processes
of one machine), because the summation order of CPU kernels depends on it; ``deterministic``
``on`` / ``warn`` calls ``torch.use_deterministic_algorithms(True, warn_only=...)`` and pins
cuDNN to deterministic algorithms (on CUDA it also sets ``CUBLAS_WORKSPACE_CONFIG``). Every one
of these process-wide settings is restored when the run ends.
"""

from __future__ import annotations

import logging
import os
import random
import signal
from typing import Any

import numpy as np
import torch

LOG = logging.getLogger(__name__)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA (``cuda:local_rank``) when available, else CPU; clear error otherwise."""
    if name == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() \
            else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    return device


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: fp16 on CUDA and bf16 on request; ``auto`` is off on CPU."""
    mode = "fp16" if amp == "auto" and device.type == "cuda" else amp
    if mode == "auto":
        mode = "off"
    if mode == "fp16" and device.type != "cuda":
        raise RuntimeError("amp=fp16 needs CUDA; use amp=bf16 or amp=off on CPU")
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mode)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed python/numpy from the worker's torch seed (itself
    derived from the loader's seeded generator). OpenCV is left alone: ``cv2.setNumThreads``
    in a worker forked after OpenCV's thread pool ran deadlocks (seen here)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


class Reproducibility:
    """Seeds, thread count and deterministic algorithms for the duration of a run."""

    def __init__(self, seed: int, threads: int, deterministic: str, fast: bool,
                 device: torch.device) -> None:
        self.seed, self.threads, self.mode = seed, threads, deterministic
        self.fast, self.device = fast, device
        self._saved: dict[str, Any] = {}

    def __enter__(self) -> Reproducibility:
        cudnn = torch.backends.cudnn
        self._saved = {
            "threads": torch.get_num_threads(),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "cudnn": (cudnn.deterministic, cudnn.benchmark),
            "tf32": (torch.backends.cuda.matmul.allow_tf32, cudnn.allow_tf32),
        }
        torch.set_num_threads(self.threads)
        random.seed(self.seed)
        np.random.seed(self.seed)
        torch.manual_seed(self.seed)
        if self.mode != "off":
            if self.device.type == "cuda":
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=self.mode == "warn")
            cudnn.deterministic, cudnn.benchmark = True, False
        elif self.fast and self.device.type == "cuda":
            cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = cudnn.allow_tf32 = True
        return self

    def __exit__(self, *exc: Any) -> None:
        s = self._saved
        torch.set_num_threads(s["threads"])
        torch.use_deterministic_algorithms(s["deterministic"], warn_only=s["warn_only"])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = s["cudnn"]
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = s["tf32"]


class StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked between steps (handlers restored on exit)."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no signal handling
                pass
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.signal = signal.Signals(signum).name
        LOG.warning("%s received: finishing this step and saving a resumable checkpoint",
                    self.signal)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
