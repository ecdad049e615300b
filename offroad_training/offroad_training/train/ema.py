"""Exponential moving average of the model weights (evaluated and exported as best_model)."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


class ModelEma:
    """EMA of every parameter and floating buffer; integer buffers are copied.

    ``decay_t = decay * (1 - exp(-t / ramp_steps))`` (``ramp_steps = 0``: constant ``decay``).
    Decision: the ramp lets the seed's 0.9999 stay the asymptote while short runs (a few hundred
    steps) still get useful EMA weights; the ramp is in optimizer steps.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, ramp_steps: int = 2000) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.ramp_steps = ramp_steps
        self.updates = 0

    def current_decay(self) -> float:
        """The decay used by the next update."""
        if self.ramp_steps <= 0:
            return self.decay
        return self.decay * (1.0 - math.exp(-(self.updates + 1) / self.ramp_steps))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend ``model``'s current weights into the average."""
        d = self.current_decay()
        src = model.state_dict()
        for name, value in self.module.state_dict().items():
            new = src[name].detach()
            if value.dtype.is_floating_point:
                value.mul_(d).add_(new.to(value.dtype), alpha=1.0 - d)
            else:
                value.copy_(new)
        self.updates += 1

    def state_dict(self) -> dict:
        """Weights and update count (for last.pth)."""
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict`."""
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
