"""The `spirals` data set: interleaved 2-D spiral arms, one per class.

Class k's arm runs from near the centre out to radius 1, winding `turns` revolutions, and
is rotated by `2*pi*k/K` so the arms interleave. As in CS231n's spiral example, `noise` is
the standard deviation of Gaussian jitter added to each point's angle (in radians), which
blurs the arms without letting them cross at the default settings.
"""

from __future__ import annotations

import numpy as np

from bpstudy.config.schema import SpiralsData
from bpstudy.data.dataset import Dataset
from bpstudy.data.split import split_and_standardise

_INNER_RADIUS = 0.1  # arms start off the centre, where they would otherwise coincide


def make_spirals(
    n_per_class: int, n_classes: int, turns: float, noise: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the spirals: X (K * n_per_class, 2) float64, y (K * n_per_class,) int64."""
    t = np.linspace(0.0, 1.0, n_per_class)  # (n,) position along an arm
    radius = _INNER_RADIUS + (1.0 - _INNER_RADIUS) * t  # (n,)
    k = np.arange(n_classes)[:, None]  # (K, 1)
    jitter = noise * rng.standard_normal((n_classes, n_per_class))  # (K, n)
    angle = 2.0 * np.pi * (turns * t + k / n_classes) + jitter  # (K, n)
    X = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=-1)  # (K, n, 2)
    y = np.repeat(np.arange(n_classes, dtype=np.int64), n_per_class)
    return X.reshape(-1, 2), y


def load_spirals(
    cfg: SpiralsData,
    dtype: np.dtype | str,
    split_rng: np.random.Generator,
    data_rng: np.random.Generator,
) -> Dataset:
    """Draw the spirals with `data_rng`, then split and standardise with `split_rng`."""
    X, y = make_spirals(cfg.n_per_class, cfg.n_classes, cfg.turns, cfg.noise, data_rng)
    return split_and_standardise(
        X, y, "classification", cfg.n_classes, cfg.val_fraction, cfg.test_fraction, split_rng, dtype
    )
