"""Weight initialisation schemes for a dense layer's W: (fan_in, fan_out) and b: (fan_out,).

Draws happen in float64 from the `init` generator and are then cast, so a float32 and a
float64 run of the same seed start from the same (rounded) weights.
"""

from __future__ import annotations

import math

import numpy as np

from bpstudy.vocabulary import INIT_SCHEMES

SCHEMES = INIT_SCHEMES  # the one enumeration, read by the config schema too


def init_weights(
    scheme: str,
    fan_in: int,
    fan_out: int,
    rng: np.random.Generator,
    sigma_w: float = 1.0,
    sigma_b: float = 0.0,
    gain: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (W, b) in float64. Biases are zero except for scheme=normal with sigma_b > 0."""
    shape = (fan_in, fan_out)
    b = np.zeros(fan_out)
    if scheme == "standard":  # Glorot & Bengio's "commonly used heuristic"
        limit = 1.0 / math.sqrt(fan_in)
        W = rng.uniform(-limit, limit, shape)
    elif scheme == "xavier_uniform":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        W = rng.uniform(-limit, limit, shape)
    elif scheme == "xavier_normal":
        W = rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), shape)
    elif scheme == "he_normal":
        W = rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)
    elif scheme == "he_uniform":
        limit = math.sqrt(6.0 / fan_in)
        W = rng.uniform(-limit, limit, shape)
    elif scheme == "lecun_normal":
        W = rng.normal(0.0, math.sqrt(1.0 / fan_in), shape)
    elif scheme == "orthogonal":
        W = gain * _orthogonal(fan_in, fan_out, rng)
    elif scheme == "normal":  # mean-field parametrisation (Poole et al. 2016)
        W = rng.normal(0.0, sigma_w / math.sqrt(fan_in), shape)
        if sigma_b > 0:
            b = rng.normal(0.0, sigma_b, fan_out)
    else:
        raise ValueError(f"unknown init scheme {scheme!r}; allowed: {', '.join(SCHEMES)}")
    return W, b


def _orthogonal(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal rows or columns (Saxe et al. 2014)."""
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # makes the distribution uniform (Haar)
    return q if rows >= cols else q.T
