"""AdamW with two parameter groups (backbone, head) and the per-step warm-up + cosine schedule.

Groups: ``backbone`` = every parameter outside DAPPM and the two segment heads (what the ImageNet
classifier shares, :func:`offroad_training.model.ddrnet.is_backbone`), at
``lr x backbone_lr_factor``; ``head`` = ``spp``, ``final_layer``, ``seghead_extra`` at ``lr``.
One schedule factor multiplies both groups' base rates, so the ratio holds through warm-up and
cosine. Decision (a careful user's default): fine-tuning from pretrained weights uses 0.1
(the public peer system measured a uniform 1e-3 destroying the Cityscapes backbone within two
epochs); from scratch 1.0 (nothing to preserve). DAPPM is in the head group although Cityscapes
weights initialise it: the same split then serves ImageNet weights, where DAPPM starts fresh.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from offroad_training.model.ddrnet import is_backbone

GROUPS = ("backbone", "head")


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Linear warm-up from ~0 to 1 over ``warmup_steps``, then cosine to ``min_ratio``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class LrLambda:
    """Picklable step -> lr factor (its numbers are stored in the scheduler state)."""

    def __init__(self, warmup_steps: int, total_steps: int, min_ratio: float) -> None:
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.min_ratio = min_ratio

    def __call__(self, step: int) -> float:
        """The factor at ``step``."""
        return lr_factor(step, self.warmup_steps, self.total_steps, self.min_ratio)


def param_groups(model: torch.nn.Module, lr: float,
                 backbone_lr_factor: float) -> list[dict[str, Any]]:
    """The two named parameter groups (see the module docstring)."""
    members: dict[str, list[torch.nn.Parameter]] = {name: [] for name in GROUPS}
    for name, param in model.named_parameters():
        members["backbone" if is_backbone(name) else "head"].append(param)
    return [{"name": "backbone", "params": members["backbone"], "lr": lr * backbone_lr_factor},
            {"name": "head", "params": members["head"], "lr": lr}]


def build_optimizer(model: torch.nn.Module, cfg: Any, warmup_steps: int, total_steps: int,
                    ) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over :func:`param_groups` and its per-step :class:`LrLambda` scheduler."""
    optimizer = torch.optim.AdamW(param_groups(model, cfg.lr, cfg.backbone_lr_factor),
                                  lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  betas=tuple(cfg.betas))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, LrLambda(warmup_steps, total_steps, cfg.min_lr_ratio))
    return optimizer, scheduler


def group_lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """Current learning rate of each named group."""
    return {g.get("name", str(i)): float(g["lr"]) for i, g in enumerate(optimizer.param_groups)}


def describe_groups(optimizer: torch.optim.Optimizer) -> str:
    """One line per group: tensors, parameters and base learning rate (for the log)."""
    return "; ".join(
        f"{g.get('name', i)}: {len(g['params'])} tensors, "
        f"{sum(p.numel() for p in g['params']) / 1e6:.2f} M parameters, "
        f"base lr {g.get('initial_lr', g['lr']):.3g}"
        for i, g in enumerate(optimizer.param_groups))
