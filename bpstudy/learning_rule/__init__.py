"""Learning rules: how the output error is carried to the hidden layers."""

from __future__ import annotations

from bpstudy.learning_rule.backprop import Backprop
from bpstudy.learning_rule.base import LearningRule

__all__ = ["Backprop", "LearningRule", "make_learning_rule"]


def make_learning_rule(name: str) -> LearningRule:
    rules = {"backprop": Backprop}
    if name not in rules:
        raise ValueError(f"unknown learning rule {name!r}; allowed: {', '.join(rules)}")
    return rules[name]()
