"""The `teacher` data set: regression onto a fixed random deep MLP ("teacher").

Inputs are standard Gaussian `(n_samples, in_dim)`. The teacher has `depth` hidden layers
of `width` units with the given activation and a linear output layer; weights are drawn
N(0, 1/fan_in) without biases. Its outputs are then centred and scaled to unit standard
deviation per column over the drawn sample, so targets are O(1) whatever the depth or
activation, and `noise` times standard Gaussian noise is added.

The `data` generator is spawned into three independent streams (inputs, teacher weights,
output noise), so changing e.g. `depth` does not change the inputs.
"""

from __future__ import annotations

import numpy as np

from bpstudy.config.schema import Activation, TeacherData
from bpstudy.data.dataset import Dataset
from bpstudy.data.split import split_and_standardise
from bpstudy.model.activations import make_activation


def make_teacher(
    n_samples: int,
    in_dim: int,
    out_dim: int,
    depth: int,
    width: int,
    activation: Activation,
    noise: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw inputs X (n_samples, in_dim) and noisy teacher targets y (n_samples, out_dim)."""
    inputs_rng, weights_rng, noise_rng = rng.spawn(3)
    X = inputs_rng.standard_normal((n_samples, in_dim))
    h = X
    for _ in range(depth):
        h = _activate(activation, h @ _weights(h.shape[1], width, weights_rng))  # (N, width)
    out = h @ _weights(h.shape[1], out_dim, weights_rng)  # (N, out_dim)
    spread = out.std(axis=0)
    out = (out - out.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    return X, out + noise * noise_rng.standard_normal(out.shape)


def _weights(fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)  # N(0, 1/fan_in)


def _activate(name: Activation, z: np.ndarray) -> np.ndarray:
    """The model's activation `name` (leaky_relu: its default slope), applied to z in place."""
    return make_activation(name).forward(z)


def load_teacher(
    cfg: TeacherData,
    dtype: np.dtype | str,
    split_rng: np.random.Generator,
    data_rng: np.random.Generator,
) -> Dataset:
    """Draw the teacher data with `data_rng`, then split and standardise with `split_rng`."""
    X, y = make_teacher(
        cfg.n_samples,
        cfg.in_dim,
        cfg.out_dim,
        cfg.depth,
        cfg.width,
        cfg.activation,
        cfg.noise,
        data_rng,
    )
    return split_and_standardise(
        X, y, "regression", None, cfg.val_fraction, cfg.test_fraction, split_rng, dtype
    )
