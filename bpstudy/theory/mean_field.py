"""The mean-field maps of a deep random network and their fixed points (Poole et al. 2016,
"Exponential expressivity in deep neural networks through transient chaos"; Schoenholz
et al. 2017, "Deep information propagation", cited below as P and S).

Layer l's pre-activations u_l = h_{l-1} W_l + b_l, with Var(W_ij) = σw² / fan_in and
Var(b_i) = σb², have, at large width, variance q_l and correlation c_l between two inputs:

    length map       q_l = σw² E[φ(√q_{l-1} z)²] + σb²                         (P eq. 3, S eq. 1)
    correlation map  c_l = (σw² E[φ(u1) φ(u2)] + σb²) / q*                      (P eq. 5, S eq. 2)
    χ1               = σw² E[φ'(√q* z)²]                                         (P eq. 7, S eq. 3)
    χ_c              = ∂c_l/∂c_{l-1} at c* = σw² E[φ'(u1) φ'(u2)]                (S eq. 6)
    ξ_q              = −1 / ln(σw² E[φ'(√q* z)² + φ(√q* z) φ''(√q* z)])  (S eq. 5)
    ξ_c              = −1 / ln χ_c                                               (S eq. 7)

ξ_q's argument is the length map's slope at q*.

χ1 is the factor by which the mean squared error signal ‖δ_l‖² grows from layer l+1 to
layer l in backprop (S eq. 10): χ1 < 1 ordered (vanishing), χ1 > 1 chaotic (exploding).
"""

from __future__ import annotations

import math

from bpstudy.theory.moments import Moments, PiecewiseLinearMoments

CRITICAL_TOL = 1e-3  # |χ1 − 1| <= this is "critical": over 100 layers, 1.001^100 = 1.105
BISECTIONS = 200  # enough to shrink any bracket below one ulp; the loops stop there


def length_map(m: Moments, sw2: float, sb2: float, q: float) -> float:
    """q_l from q_{l-1}: σw² E[φ(√q z)²] + σb² (P eq. 3)."""
    return sw2 * m.second(q) + sb2


def chi(m: Moments, sw2: float, q: float) -> float:
    """σw² E[φ'(√q z)²]: ‖δ_l‖² / ‖δ_{l+1}‖² for pre-activations of variance q (S eq. 3)."""
    return sw2 * m.slope2(q)


def q_star(m: Moments, sw2: float, sb2: float, q0: float = 1.0) -> float:
    """The fixed point of the length map that the layers reach from q0 > 0.

    Piecewise-linear φ: the map is q -> χ1 q + σb², so q* = σb² / (1 − χ1) for χ1 < 1,
    q0 itself for χ1 = 1 at σb = 0 (every q is fixed), and inf otherwise (q grows).
    Bounded φ: 0 when φ(0) = 0, σb = 0 and σw² φ'(0)² <= 1 (tanh, softsign: |φ(x)| <
    φ'(0)|x| makes the map fall below q for every q > 0); else the one positive root
    of length_map(q) − q, found by bisection on a bracket where it changes sign (the
    iteration from q0 converges to the same root, more slowly near criticality).
    """
    if isinstance(m, PiecewiseLinearMoments):
        rate = sw2 * m.m2
        if rate < 1.0:
            return sb2 / (1.0 - rate)
        return q0 if rate == 1.0 and sb2 == 0.0 else math.inf
    if sb2 == 0.0 and m.second(0.0) == 0.0 and chi(m, sw2, 0.0) <= 1.0:
        return 0.0

    def gap(q: float) -> float:
        return length_map(m, sw2, sb2, q) - q

    hi = sw2 + sb2 + 1.0  # |φ| <= 1: the map stays below sw2 + sb2
    lo = 0.0 if sb2 > 0.0 or gap(0.0) > 0.0 else hi
    while lo > 0.0 and gap(lo) <= 0.0:  # σb = 0, φ(0) = 0, χ(0) > 1: q* > 0 is below
        lo /= 2.0
    return bisect(gap, lo, hi)


def bisect(f, lo: float, hi: float) -> float:
    """A root of f in [lo, hi], where f(lo) >= 0 > f(hi) (or the reverse order)."""
    f_lo = f(lo)
    for _ in range(BISECTIONS):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if (f(mid) >= 0.0) == (f_lo >= 0.0):
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def length_slope(m: Moments, sw2: float, q: float) -> float:
    """d q_l / d q_{l-1} at q: σw² E[φ'² + φ φ''] (S eq. 5's argument of the log)."""
    return sw2 * m.length_slope(q)


def correlation_map(m: Moments, sw2: float, sb2: float, qs: float, c: float) -> float:
    """c_l from c_{l-1} at the length's fixed point qs (P eq. 5)."""
    return (sw2 * m.pair(qs, c) + sb2) / qs


def c_star(m: Moments, sw2: float, sb2: float, qs: float, chi1: float) -> float:
    """The stable fixed point of the correlation map: 1 when χ1 <= 1 (P, S: inputs become
    perfectly correlated); below 1 when χ1 > 1 (chaotic). Piecewise-linear φ with χ1 > 1
    has q* = inf, where the map of the normalised correlation is σ-free, with fixed point
    1 and slope 1 (arc-cosine kernel): 1 again.

    For c in [0, 1] the map is convex (a power series in c with non-negative coefficients,
    the squared Hermite coefficients of φ), equal to c at c = 1 with slope χ1 > 1 there,
    and >= 0 at c = 0, so it crosses c once in [0, 1). Newton's method from c = 0, with
    the map's slope σw² E[φ'(u1) φ'(u2)] (S eq. 6), climbs to that crossing without
    overshooting it: on a convex curve each tangent meets zero below the root."""
    if chi1 <= 1.0 or not math.isfinite(qs) or qs == 0.0:
        return 1.0
    c = 0.0
    for _ in range(BISECTIONS):
        gap = correlation_map(m, sw2, sb2, qs, c) - c
        if gap <= 0.0:
            break
        step = gap / (1.0 - sw2 * m.slope_pair(qs, c))
        c = min(c + step, 1.0)
        if step <= 1e-15:
            break
    return c


def chi_c(m: Moments, sw2: float, qs: float, cs: float, chi1: float) -> float:
    """The correlation map's slope at c*: σw² E[φ'(u1) φ'(u2)] (S eq. 6); χ1 at c* = 1,
    and 1 for the piecewise-linear φ at q* = inf (see c_star)."""
    if cs == 1.0:
        return 1.0 if not math.isfinite(qs) else chi1
    return sw2 * m.slope_pair(qs, cs)


def depth_scale(slope: float) -> float:
    """−1/ln(slope) (S eqs. 5, 7): layers over which a deviation shrinks by e; inf when
    the slope is >= 1 (no geometric convergence), 0 when it is 0."""
    if slope >= 1.0:
        return math.inf
    if slope <= 0.0:
        return 0.0
    return -1.0 / math.log(slope)


def phase(chi1: float, tol: float = CRITICAL_TOL) -> str:
    """ordered (χ1 < 1 − tol), critical (|χ1 − 1| <= tol) or chaotic (χ1 > 1 + tol)."""
    if chi1 < 1.0 - tol:
        return "ordered"
    if chi1 > 1.0 + tol:
        return "chaotic"
    return "critical"
