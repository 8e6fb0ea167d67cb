"""The Gaussian moments of an activation φ that the mean-field maps need, for
pre-activations of variance q (and, in pairs, correlation c):

    second(q)          = E[φ(√q z)²]
    slope2(q)          = E[φ'(√q z)²]
    length_slope(q)    = d/dq E[φ(√q z)²] = E[z φ(√q z) φ'(√q z)] / √q   (Stein's lemma)
    pair(q, c)         = E[φ(u1) φ(u2)]
    slope_pair(q, c)   = E[φ'(u1) φ'(u2)]

with u1 = √q z1, u2 = √q (c z1 + √(1 − c²) z2) (Poole et al. 2016, eq. 4). Smooth φ
(sigmoid, tanh, softsign) go through Gauss–Hermite quadrature of bpstudy.model's own
activations; the piecewise-linear ones (relu, leaky_relu, linear) have exact closed forms
(Cho & Saul 2009's arc-cosine kernel), which tests/test_theory.py checks against the
quadrature.
"""

from __future__ import annotations

import math

import numpy as np

from bpstudy.model.activations import make_activation
from bpstudy.theory.quadrature import expect, expect_pair


class Moments:
    """The moments of one activation; see the module docstring for each formula."""

    bounded: bool = True  # |φ| <= 1 everywhere (what the q* bracket uses)

    def second(self, q: float) -> float:
        raise NotImplementedError

    def slope2(self, q: float) -> float:
        raise NotImplementedError

    def length_slope(self, q: float) -> float:
        raise NotImplementedError

    def pair(self, q: float, c: float) -> float:
        raise NotImplementedError

    def slope_pair(self, q: float, c: float) -> float:
        raise NotImplementedError


class QuadratureMoments(Moments):
    """φ and φ' from bpstudy.model.activations, integrated by Gauss–Hermite."""

    def __init__(self, name: str) -> None:
        self.activation = make_activation(name)

    def phi(self, x: np.ndarray) -> np.ndarray:
        return self.activation.forward(np.array(x, dtype=np.float64))  # forward works in place

    def dphi(self, x: np.ndarray) -> np.ndarray:
        a = self.phi(x)
        return self.activation.derivative(a, np.empty_like(a))

    def second(self, q):
        s = math.sqrt(q)
        return expect(lambda z: self.phi(s * z) ** 2)

    def slope2(self, q):
        s = math.sqrt(q)
        return expect(lambda z: self.dphi(s * z) ** 2)

    def length_slope(self, q):
        if q == 0.0:  # the limit ½ (φ²)''(0) = φ'(0)² + φ(0) φ''(0); φ''(0) = 0 for all three
            return float(self.dphi(np.zeros(1))[0] ** 2)
        s = math.sqrt(q)
        return expect(lambda z: z * self.phi(s * z) * self.dphi(s * z)) / s

    def pair(self, q, c):
        s = math.sqrt(q)
        return expect_pair(lambda z: self.phi(s * z), lambda z: self.phi(s * z), c)

    def slope_pair(self, q, c):
        s = math.sqrt(q)
        return expect_pair(lambda z: self.dphi(s * z), lambda z: self.dphi(s * z), c)


class PiecewiseLinearMoments(Moments):
    """φ(x) = x for x > 0 and α x below: relu (α = 0), leaky_relu (α = slope), linear
    (α = 1). Degree-1 homogeneous, so every moment is q times (or independent of q) a
    function of c alone. With θ = arccos c, for relu (Cho & Saul 2009, n = 1 and n = 0):

        E[relu(z1) relu(w)] = (sin θ + (π − θ) c) / (2π),   P(z1 > 0, w > 0) = (π − θ) / (2π),

    and φ = α x + (1 − α) relu(x) with E[z1 relu(w)] = c / 2 gives the rest."""

    bounded = False

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.m2 = (1.0 + alpha * alpha) / 2.0  # E[φ(z)²] = E[φ'(z)²]

    def second(self, q):
        return self.m2 * q

    def slope2(self, q):
        return self.m2

    def length_slope(self, q):
        return self.m2

    def pair(self, q, c):
        a, theta = self.alpha, math.acos(min(1.0, max(-1.0, c)))
        relu_relu = (math.sin(theta) + (math.pi - theta) * c) / (2.0 * math.pi)
        return q * (a * c + (1.0 - a) ** 2 * relu_relu)

    def slope_pair(self, q, c):
        a, theta = self.alpha, math.acos(min(1.0, max(-1.0, c)))
        return a + (1.0 - a) ** 2 * (math.pi - theta) / (2.0 * math.pi)


def moments(activation: str, leaky_slope: float = 0.01) -> Moments:
    """The moments of bpstudy's activation called `activation`."""
    slopes = {"relu": 0.0, "leaky_relu": leaky_slope, "linear": 1.0}
    if activation in slopes:
        return PiecewiseLinearMoments(slopes[activation])
    return QuadratureMoments(activation)
