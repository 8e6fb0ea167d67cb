"""Gradient clipping, the standard remedy for exploding gradients (Pascanu et al. 2013).

Works in place on the flat gradient, before the optimizer step, so the raw gradient
norm can be logged first.
"""

from __future__ import annotations

import math

import numpy as np


def clip_by_norm(grad: np.ndarray, threshold: float, sq_norm: float) -> float:
    """Scale grad so its global L2 norm is at most threshold; return the scale used."""
    norm = math.sqrt(sq_norm)
    if norm <= threshold:
        return 1.0
    scale = threshold / norm
    grad *= scale
    return scale


def clip_by_value(grad: np.ndarray, threshold: float) -> None:
    """Clamp every gradient entry into [-threshold, threshold]."""
    np.clip(grad, -threshold, threshold, out=grad)
