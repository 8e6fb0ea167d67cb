"""Learning rate as a function of the optimizer step t (0-based).

constant: lr;  step: lr * gamma^floor(t / step_size);  cosine: from lr to min_lr over
the run's total steps;  warmup: constant after the warm-up. With warmup_steps = w > 0,
every schedule first ramps linearly: lr * (t + 1) / w for t < w, then runs on t - w.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    name: str
    lr: float
    total_steps: int
    warmup_steps: int = 0
    step_size: int = 1000
    gamma: float = 0.5
    min_lr: float = 0.0

    def __call__(self, t: int) -> float:
        w = self.warmup_steps
        if t < w:
            return self.lr * (t + 1) / w
        t -= w
        if self.name in ("constant", "warmup"):
            return self.lr
        if self.name == "step":
            return self.lr * self.gamma ** (t // self.step_size)
        if self.name == "cosine":
            span = max(self.total_steps - w, 1)
            progress = min(t / span, 1.0)
            return self.min_lr + 0.5 * (self.lr - self.min_lr) * (
                1.0 + math.cos(math.pi * progress)
            )
        raise ValueError(f"unknown schedule {self.name!r}; allowed: constant, step, cosine, warmup")
