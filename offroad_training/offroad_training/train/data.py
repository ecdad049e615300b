"""Torch datasets over :class:`offroad_training.data.unified.UnifiedDataset`.

The data order is deterministic: :class:`EpochBatchSampler` permutes the indices with a
generator seeded by ``(seed, epoch)`` and hands every sample its own augmentation seed, so the
batches of an epoch (and their augmentations) are the same for any number of workers and can be
resumed mid-epoch by skipping the batches already consumed. In a torchrun job every rank takes
its contiguous share of each *global* batch, so the samples and their order do not depend on
the number of processes either.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from offroad_training.train.augment import AugmentParams, TrainAugment, sample_seed


class SegmentationTrainSet(Dataset):
    """Items are keyed by ``(index, seed)``; returns ``(uint8 CHW image, int64 HW labels)``.

    Images stay uint8 until they reach the device (4x less to copy and pin); normalisation
    happens there (:func:`normalise`).
    """

    def __init__(self, dataset: Any, params: AugmentParams, height: int, width: int) -> None:
        self.dataset = dataset
        self.ids = list(dataset.ids)
        self.params = params
        self.size = (height, width)
        self.augment: TrainAugment | None = None  # built lazily in each worker

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Load and augment sample ``key[0]`` with seed ``key[1]``."""
        index, seed = key
        if self.augment is None:
            self.augment = TrainAugment(self.params, *self.size)
        item = self.ids[index]
        rgb, labels = self.augment(Path(self.dataset.image_path(item)),
                                   Path(self.dataset.label_path(item)), seed)
        image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
        return image, torch.from_numpy(labels.astype(np.int64))


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``(index, augmentation seed)`` in a seeded per-epoch order (drop_last).

    ``batch_size`` is the global batch; with ``world_size > 1`` each yielded batch is rank
    ``rank``'s contiguous ``batch_size / world_size`` share of it.
    """

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0,
                 world_size: int = 1) -> None:
        if size < batch_size:
            raise ValueError(f"the training split has {size} images, fewer than one batch "
                             f"({batch_size}); lower batch_size or add data")
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} (the global batch) is not divisible by "
                             f"the {world_size} processes")
        self.size = size
        self.batch_size = batch_size
        self.seed = seed
        self.share = batch_size // world_size
        self.offset = rank * self.share
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch to iterate and how many of its batches to skip (resume)."""
        self.epoch = epoch
        self.start_batch = start_batch

    def batches_per_epoch(self) -> int:
        """Full batches per epoch."""
        return self.size // self.batch_size

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start_batch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        for b in range(self.start_batch, self.batches_per_epoch()):
            start = b * self.batch_size + self.offset
            idx = order[start:start + self.share]
            yield [(int(i), sample_seed(self.seed, self.epoch, int(i))) for i in idx]


def normalise(images: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 NCHW RGB -> float32 ``(x / 255 - mean) / std`` on the images' device."""
    m = torch.tensor(mean, device=images.device).view(1, 3, 1, 1) * 255.0
    s = torch.tensor(std, device=images.device).view(1, 3, 1, 1) * 255.0
    return (images.float() - m) / s
