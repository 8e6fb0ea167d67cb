"""The predicted per-layer gradient-norm profile of a freshly initialised MLP under
backprop, relative to the last hidden layer: log10 ‖dW_l‖ − log10 ‖dW_L‖, l = 1 (the
input's layer) .. L (the top hidden layer), as bpstudy's `grad_norm/Lii` counts them.

With h_0 = x, u_l = h_{l-1} W_l + b_l, h_l = φ(u_l) and δ_l = dLoss/du_l, the weight
gradient of layer l is dW_l = Σ_n h_{l-1,n}ᵀ δ_{l,n}. Assumed (as in Schoenholz et al.
2017, §4, whose eq. 10 this extends to the first layer):

1. gradient independence: the backward weights are independent of the forward ones, so
   ‖δ_l‖² = χ(q_l) ‖δ_{l+1}‖² with χ(q) = σw² E[φ'(√q z)²] (width x width layers);
2. wide layers: per-unit averages are their Gaussian expectations, so
   ‖h_l‖² = width · E[φ(√q_l z)²] for l >= 1, and ‖h_0‖² = ‖x‖², the data's own;
3. ‖dW_l‖² ≈ Σ_n ‖h_{l-1,n}‖² ‖δ_{l,n}‖²: the cross-example terms (h_n·h_m)(δ_n·δ_m)
   are dropped; at initialisation the output errors of different examples are
   uncorrelated on average (balanced classes), so these terms have mean near zero;
4. the layers' variances q_l follow the length map from the data's first-layer variance
   q_1 = σw²(in) · E‖x‖² / in_dim + σb², not q* at once: near the input the profile
   follows q_l; once q_l = q* it falls by ½ log10 χ1 per layer toward the input.

So 2 (log10 ‖dW_l‖ − log10 ‖dW_{l+1}‖) = log10 χ(q_l) + log10(‖h_{l-1}‖² / ‖h_l‖²),
and the first/last ratio log10(‖dW_1‖ / ‖dW_L‖) is the profile's first entry, with
the sign of bpstudy's `grad_norm/ratio_log10` (log10 first − log10 last; negative when
gradients vanish toward the input). L1/L2 penalties, which bpstudy's grad norms include,
are left out (they add λW, not a backprop term).
"""

from __future__ import annotations

import math

from bpstudy.theory.mean_field import chi, length_map
from bpstudy.theory.moments import Moments


def layer_variances(
    m: Moments,
    sw2: float,
    sb2: float,
    first_sw2: float,
    mean_sq_input: float,
    in_dim: int,
    depth: int,
) -> list[float]:
    """q_1 .. q_L: the first layer's from the data, then the length map (assumption 4)."""
    qs = [first_sw2 * mean_sq_input / in_dim + sb2]
    for _ in range(depth - 1):
        qs.append(length_map(m, sw2, sb2, qs[-1]))
    return qs


def log10_or_neg_inf(x: float) -> float:
    return math.log10(x) if x > 0.0 else -math.inf


def grad_profile(
    m: Moments, sw2: float, qs: list[float], width: int, mean_sq_input: float
) -> tuple[float, ...]:
    """log10 ‖dW_l‖ − log10 ‖dW_L‖ for l = 1 .. L, from the layers' variances qs."""
    depth = len(qs)
    # log10 ‖h_{l-1}‖², for l = 1 .. L: the data's, then width E[φ²] of each hidden layer
    act = [log10_or_neg_inf(mean_sq_input)]
    act += [log10_or_neg_inf(width * m.second(q)) for q in qs[:-1]]
    twice = [0.0] * depth  # 2 log10 ‖dW_l‖, relative to the top
    for i in range(depth - 2, -1, -1):  # i + 1 counts layers from 1
        step = log10_or_neg_inf(chi(m, sw2, qs[i])) + act[i] - act[i + 1]
        twice[i] = twice[i + 1] + step if math.isfinite(step) else -math.inf
    return tuple(t / 2.0 for t in twice)
