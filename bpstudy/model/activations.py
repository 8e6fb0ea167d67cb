"""Elementwise activations, each with its derivative written in terms of its output.

Keeping only the output `a = f(z)` lets the forward pass overwrite `z` in place; every
activation here has f'(z) expressible through a (for relu and leaky_relu, by sign).
`max_slope` is the derivative's maximum, used by the dead and saturation diagnostics,
which ask `saturated` for the entries whose slope is below `SATURATED_BELOW` of it: a test
of a itself where one exists (tanh: a^2 > 0.99), a pass or two fewer than computing f' first.
"""

from __future__ import annotations

import numpy as np

from bpstudy.vocabulary import ACTIVATIONS

SATURATED_BELOW = 0.01  # a unit is saturated where f'(z) < 1% of max f'


class Activation:
    """f applied in place, and f'(z) recovered from a = f(z)."""

    name: str = ""
    max_slope: float = 1.0

    def forward(self, z: np.ndarray) -> np.ndarray:
        """Overwrite z: (N, H) with f(z) and return it."""
        raise NotImplementedError

    def derivative(self, a: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write f'(z) into out, given a = f(z)."""
        raise NotImplementedError

    def backward(self, dout: np.ndarray, a: np.ndarray, out: np.ndarray) -> np.ndarray:
        """out = dout * f'(z): the error signal at the pre-activation."""
        self.derivative(a, out)
        np.multiply(out, dout, out=out)
        return out

    def saturated(self, a: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write 1.0 into out where f'(z) < SATURATED_BELOW * max_slope, else 0.0."""
        self.derivative(a, out)
        return np.less(out, SATURATED_BELOW * self.max_slope, out=out)


class Sigmoid(Activation):
    name, max_slope = "sigmoid", 0.25

    def forward(self, z):
        # 1 / (1 + exp(-z)), in place; exp overflow to inf gives exactly 0, as it should
        np.negative(z, out=z)
        with np.errstate(over="ignore"):
            np.exp(z, out=z)
        z += 1.0
        np.reciprocal(z, out=z)
        return z

    def derivative(self, a, out):
        np.subtract(1.0, a, out=out)
        np.multiply(out, a, out=out)  # a (1 - a)
        return out


class Tanh(Activation):
    name, max_slope = "tanh", 1.0

    def forward(self, z):
        return np.tanh(z, out=z)

    def derivative(self, a, out):
        np.multiply(a, a, out=out)
        np.subtract(1.0, out, out=out)  # 1 - a^2
        return out

    def saturated(self, a, out):
        np.multiply(a, a, out=out)  # 1 - a^2 < 0.01  <=>  a^2 > 0.99
        return np.greater(out, 1.0 - SATURATED_BELOW, out=out)


class ReLU(Activation):
    name, max_slope = "relu", 1.0

    def forward(self, z):
        return np.maximum(z, 0.0, out=z)

    def derivative(self, a, out):
        return np.greater(a, 0.0, out=out)  # writes 1.0 / 0.0 into a float buffer

    def backward(self, dout, a, out):
        # one pass instead of two: keep dout where the unit was active
        np.multiply(dout, np.greater(a, 0.0), out=out)
        return out

    def saturated(self, a, out):
        return np.less_equal(a, 0.0, out=out)  # dead: f' = 0


class LeakyReLU(Activation):
    name, max_slope = "leaky_relu", 1.0

    def __init__(self, slope: float = 0.01) -> None:
        self.slope = slope

    def forward(self, z):
        # max(z, slope z) for 0 <= slope < 1
        return np.maximum(z, z * self.slope, out=z)

    def derivative(self, a, out):
        out[...] = np.where(a > 0.0, 1.0, self.slope)
        return out


class Softsign(Activation):
    name, max_slope = "softsign", 1.0

    def forward(self, z):
        denom = np.abs(z)
        denom += 1.0
        return np.divide(z, denom, out=z)  # z / (1 + |z|)

    def derivative(self, a, out):
        # f'(z) = 1 / (1 + |z|)^2 = (1 - |a|)^2
        np.abs(a, out=out)
        np.subtract(1.0, out, out=out)
        np.multiply(out, out, out=out)
        return out

    def saturated(self, a, out):
        np.abs(a, out=out)  # (1 - |a|)^2 < 0.01  <=>  |a| > 0.9
        return np.greater(out, 1.0 - SATURATED_BELOW**0.5, out=out)


class Linear(Activation):
    name, max_slope = "linear", 1.0

    def forward(self, z):
        return z

    def derivative(self, a, out):
        out.fill(1.0)
        return out

    def backward(self, dout, a, out):
        out[...] = dout
        return out

    def saturated(self, a, out):
        out.fill(0.0)  # f' = 1 everywhere
        return out


def make_activation(name: str, leaky_slope: float = 0.01) -> Activation:
    """The activation called `name` (sigmoid, tanh, relu, leaky_relu, softsign, linear)."""
    if name == "leaky_relu":
        return LeakyReLU(leaky_slope)
    kinds = {cls.name: cls for cls in (Sigmoid, Tanh, ReLU, Softsign, Linear)}
    if name not in kinds:
        raise ValueError(f"unknown activation {name!r}; allowed: {', '.join(ACTIVATIONS)}")
    return kinds[name]()
