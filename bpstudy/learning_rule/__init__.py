"""Learning rules: the update each proposes for a batch (base.py: the interface)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bpstudy.learning_rule.backprop import Backprop
from bpstudy.learning_rule.base import BatchResult, LearningRule, Settle, angles_deg
from bpstudy.learning_rule.contrastive_hebbian import ContrastiveHebbian
from bpstudy.learning_rule.direct_feedback_alignment import DirectFeedbackAlignment
from bpstudy.learning_rule.energy import ENERGY_ACTIVATIONS, EnergyRule, SettleSettings
from bpstudy.learning_rule.equilibrium_propagation import EquilibriumPropagation
from bpstudy.learning_rule.feedback_alignment import FeedbackAlignment

__all__ = [
    "ENERGY_ACTIVATIONS",
    "RULES",
    "Backprop",
    "BatchResult",
    "ContrastiveHebbian",
    "DirectFeedbackAlignment",
    "EnergyRule",
    "EquilibriumPropagation",
    "FeedbackAlignment",
    "LearningRule",
    "Settle",
    "SettleSettings",
    "angles_deg",
    "make_learning_rule",
]

RULES = (
    "backprop",
    "feedback_alignment",
    "direct_feedback_alignment",
    "contrastive_hebbian",
    "equilibrium_propagation",
)


def make_learning_rule(
    name: str,
    weight_shapes: Sequence[tuple[int, int]] = (),
    rng: np.random.Generator | None = None,
    scale: float = 1.0,
    dtype: np.dtype | str = np.float32,
) -> LearningRule:
    """The rule `name` for a network whose weights (hidden.0.W, ..., output.W) have
    `weight_shapes`; feedback matrices are drawn from `rng` (Seeds(seed).rng("feedback")).
    The energy-based rules come with their default settings here; construct
    ContrastiveHebbian or EquilibriumPropagation for others (training/run.py does)."""
    if name not in RULES:
        raise ValueError(f"unknown learning rule {name!r}; allowed: {', '.join(RULES)}")
    if name == "backprop":
        return Backprop()
    if name in ("contrastive_hebbian", "equilibrium_propagation"):
        rule = ContrastiveHebbian if name == "contrastive_hebbian" else EquilibriumPropagation
        return rule(SettleSettings())
    if rng is None:
        raise ValueError(f"learning rule {name!r} needs a random generator for its feedback")
    if not weight_shapes:
        raise ValueError(f"learning rule {name!r} needs the network's weight shapes")
    if name == "feedback_alignment":
        return FeedbackAlignment(weight_shapes, rng, scale, dtype)
    widths = {fan_out for _, fan_out in weight_shapes[:-1]}
    if len(widths) > 1:
        raise ValueError(f"direct_feedback_alignment needs equal hidden widths, but got {widths}")
    out_dim, depth = weight_shapes[-1][1], len(weight_shapes) - 1
    if depth < 1:
        raise ValueError("direct_feedback_alignment needs at least one hidden layer")
    return DirectFeedbackAlignment(out_dim, depth, widths.pop(), rng, scale, dtype)
