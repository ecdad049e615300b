"""Focal loss with per-class weights and an ignore index (the seed's loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (conventional name)
from torch import nn


class FocalLoss(nn.Module):
    """``mean over scored pixels of  -w[y] * (1 - p_y)^gamma * log p_y``.

    Logits of any resolution are bilinearly upsampled (``align_corners=False``) to the label
    size first. Pixels equal to ``ignore_index`` are not scored; the mean is over the scored
    pixels (a batch without any returns 0 with a gradient). Computed in float32 under AMP.
    """

    def __init__(self, gamma: float = 2.0, weight: list[float] | torch.Tensor | None = None,
                 ignore_index: int = 255) -> None:
        super().__init__()
        self.gamma = gamma
        self.ignore_index = ignore_index
        w = None if weight is None else torch.as_tensor(weight, dtype=torch.float32)
        self.register_buffer("weight", w, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss for logits (N, C, h, w) and targets (N, H, W) int64."""
        total, count = self.sum_and_count(logits, target)
        return total / count.clamp(min=1)

    def sum_and_count(self, logits: torch.Tensor,
                      target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss summed over the scored pixels, and their number (for a mean over the
        global batch of a multi-process run)."""
        if logits.shape[-2:] != target.shape[-2:]:
            logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear",
                                   align_corners=False)
        logp = F.log_softmax(logits.float(), dim=1)
        valid = target != self.ignore_index
        t = torch.where(valid, target, torch.zeros_like(target))
        logpt = logp.gather(1, t.unsqueeze(1)).squeeze(1)
        loss = -((1.0 - logpt.exp()).clamp(min=0.0) ** self.gamma) * logpt
        if self.weight is not None:
            loss = loss * self.weight[t]
        loss = loss * valid
        return loss.sum(), valid.sum()
