"""From an init scheme to the mean-field variances (σw², σb²) of one dense layer.

σw² is fan_in times the variance of one weight, Var(W_ij) = σw² / fan_in, as in Poole et
al. (2016): what bpstudy.model.init draws, scheme by scheme (the code, not the docs, is
the reference). For a width x width hidden layer:

| scheme | Var(W_ij) | σw² |
| --- | --- | --- |
| he_normal, he_uniform | 2 / fan_in | 2 |
| lecun_normal | 1 / fan_in | 1 |
| xavier_normal, xavier_uniform | 2 / (fan_in + fan_out) | 2 fan_in / (fan_in + fan_out) (1 when square) |
| standard | (1/√fan_in)² / 3 | 1/3 |
| normal | sigma_w² / fan_in | sigma_w² |
| orthogonal | gain² / max(fan_in, fan_out) | gain² fan_in / max(fan_in, fan_out) (gain² when fan_in ≥ fan_out) |

An orthogonal W is not Gaussian, but at large width its forward length and correlation
maps are the Gaussian ones with σw² = gain² (Pennington et al. 2017, "Resurrecting the
sigmoid"); its backward spectrum differs, which the mean-field χ1 does not see.

Biases: init_weights leaves them zero for every scheme except `normal`, which draws
b ~ N(0, sigma_b²) when sigma_b > 0; so σb² = sigma_b² for `normal`, else 0.
"""

from __future__ import annotations

from bpstudy.config.schema import InitConfig


def sigma_w2(init: InitConfig, fan_in: int, fan_out: int) -> float:
    """fan_in * Var(W_ij) for a (fan_in, fan_out) layer initialised by `init`."""
    scheme = init.scheme
    if scheme in ("he_normal", "he_uniform"):
        return 2.0
    if scheme == "lecun_normal":
        return 1.0
    if scheme in ("xavier_normal", "xavier_uniform"):
        return 2.0 * fan_in / (fan_in + fan_out)
    if scheme == "standard":
        return 1.0 / 3.0
    if scheme == "normal":
        return init.sigma_w**2
    if scheme == "orthogonal":
        return init.gain**2 * fan_in / max(fan_in, fan_out)
    raise ValueError(f"no mean-field variance for init scheme {scheme!r}")


def sigma_b2(init: InitConfig) -> float:
    """Var(b_i): sigma_b² for scheme=normal, 0 for every other scheme (zero biases)."""
    return init.sigma_b**2 if init.scheme == "normal" else 0.0
