"""Scoring a torch model with the evaluator (:mod:`offroad_core.evaluation`), in one process or
sharded over the ranks of a torchrun job (each rank scores every ``world_size``-th image, the
confusion matrices are summed: the same result as one process)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (conventional name)

from offroad_core.evaluation import ConfusionMatrix, EvalResult, EvaluationError, evaluate
from offroad_training.train.data import normalise
from offroad_training.train.distributed import Distributed


def torch_predictor(model: torch.nn.Module, mean: list[float], std: list[float],
                    device: torch.device | str = "cpu",
                    dtype: torch.dtype | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """``predict(rgb uint8 (H, W, 3)) -> labels uint8 (H, W)`` for :func:`evaluate`.

    Logits (1/8 resolution) are upsampled bilinearly (``align_corners=False``) to the input
    size and arg-maxed, as the exported labels graph does.
    """
    device = torch.device(device)

    @torch.no_grad()
    def predict(rgb: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(device)
        x = normalise(x, mean, std)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model(x)
        logits = F.interpolate(logits.float(), size=rgb.shape[:2], mode="bilinear",
                               align_corners=False)
        return logits.argmax(1)[0].to(torch.uint8).cpu().numpy()

    return predict


class _Shard:
    """The ``ids`` subset of a dataset (same ``load``)."""

    def __init__(self, dataset: Any, ids: list[str]) -> None:
        self.dataset, self.ids = dataset, ids

    def load(self, item: str) -> tuple[np.ndarray, np.ndarray]:
        return self.dataset.load(item)


def evaluate_distributed(predict: Callable[[np.ndarray], np.ndarray], dataset: Any,
                         dist: Distributed, *, limit: int | None, height: int, width: int,
                         num_classes: int) -> EvalResult:
    """:func:`evaluate` over ``dataset``'s first ``limit`` ids, shared among the ranks."""
    ids = list(dataset.ids)[:limit] if limit is not None else list(dataset.ids)
    if not dist.enabled:
        return evaluate(predict, dataset, limit=limit, height=height, width=width,
                        num_classes=num_classes)
    if not ids:
        raise EvaluationError("the dataset split has no images to evaluate")
    mine = ids[dist.rank::dist.world_size]
    matrix = ConfusionMatrix(num_classes).matrix
    if mine:
        matrix = evaluate(predict, _Shard(dataset, mine), height=height, width=width,
                          num_classes=num_classes).confusion
    total = dist.all_reduce_sum(torch.from_numpy(matrix).to(dist.device))
    return EvalResult(confusion=total.cpu().numpy(), images=len(ids),
                      class_names=ConfusionMatrix(num_classes).result().class_names)
