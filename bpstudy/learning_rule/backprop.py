"""Backpropagation: the error travels down through the transposed forward weights
(`Network.backward` with no feedback path)."""

from __future__ import annotations

from bpstudy.learning_rule.base import LearningRule


class Backprop(LearningRule):
    name = "backprop"
