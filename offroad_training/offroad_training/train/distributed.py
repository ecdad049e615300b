"""Multi-process training with ``torch.distributed`` (launched by ``torchrun``).

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address; without
them :meth:`Distributed.from_env` is a single process and every method here is a no-op. The
backend is NCCL on CUDA and gloo on the CPU (``dist_backend``); each process drives the device
``cuda:LOCAL_RANK``.

Decisions (docs/training.md has the user's view):

* ``batch_size`` is the *global* batch. The data order stays the one of a single process: the
  seeded per-epoch permutation is cut into global batches and every rank takes its contiguous
  share of each (:class:`~offroad_training.train.data.EpochBatchSampler` with rank and world
  size, in the role of ``DistributedSampler``). torch's ``DistributedSampler`` is not used: it
  permutes per world size and cannot restart mid-epoch, which would break exact resume and
  resuming with another number of GPUs.
* The loss is the mean over the global batch's scored pixels: each rank contributes its sum
  divided by the all-reduced pixel count (x world size, because DDP averages gradients), so
  the gradient is that of one process seeing the whole batch; only batch-norm statistics (per
  GPU unless ``sync_batchnorm``) and floating-point summation order differ.
* Stopping is agreed: a signal on any rank stops every rank after the same step (the flags
  travel with the pixel count, one all-reduce per step). Rank 0 writes the logs and the
  (atomic) checkpoints; every rank reads ``last.pth`` on resume.
* A rank that dies makes the others fail in their next collective; ``torchrun`` then stops the
  job and exits non-zero. ``last.pth`` is the last complete checkpoint; ``--resume`` continues.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch

from offroad_core.exit_codes import CommandError

LOG = logging.getLogger(__name__)


class RankLostError(CommandError, RuntimeError):
    """Another process of the job died (its collective failed here); resume from last.pth."""


def is_peer_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective failing because another rank went away."""
    dist_error = getattr(torch.distributed, "DistError", ())
    text = str(exc)
    return isinstance(exc, dist_error) or any(
        s in text for s in ("closed by peer", "Connection reset", "NCCL", "Broken pipe"))


@dataclass
class Distributed:
    """This process's place in the job (``world_size == 1``: a plain single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str = ""

    @property
    def enabled(self) -> bool:
        """Whether a process group is (to be) in use."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes files."""
        return self.rank == 0

    @classmethod
    def from_env(cls, backend: str = "auto", timeout_minutes: float = 30.0) -> Distributed:
        """Read torchrun's environment and join the process group when the world is > 1."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        dist = cls(rank=int(os.environ["RANK"]), world_size=world,
                   local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                   local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(world))))
        if backend == "auto":
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(dist.local_rank)
        dist.backend = backend
        torch.distributed.init_process_group(
            backend, timeout=datetime.timedelta(minutes=timeout_minutes))
        if not dist.is_main:
            logging.getLogger("offroad_training").setLevel(logging.WARNING)
        LOG.info("distributed: %d processes (%s), this is rank %d", world, backend, dist.rank)
        return dist

    @property
    def device(self) -> torch.device:
        """Where collective tensors live (NCCL needs CUDA tensors)."""
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" \
            else torch.device("cpu")

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over every rank in place (a no-op in a single process)."""
        if self.enabled:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.enabled:
            torch.distributed.barrier()

    def close(self, clean: bool) -> None:
        """Leave the process group (after a barrier when every rank ended normally)."""
        if not self.enabled or not torch.distributed.is_initialized():
            return
        if clean:
            self.barrier()
        torch.distributed.destroy_process_group()

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``DistributedDataParallel`` around ``model`` (returned unchanged in one process)."""
        if not self.enabled:
            return model
        ids: Any = [device.index] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
