"""From a typed Config to the mean-field Prediction: the network's (σw², σb²), the
maps' fixed points and slopes, its phase, and its predicted gradient profile.

The prediction is for backprop at initialisation in a plain MLP; batch norm, residual
blocks, dropout and the other learning rules change the backward pass it describes, so
for them it returns applicable=False with the reason instead of numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bpstudy.config.schema import Config
from bpstudy.errors import ConfigError
from bpstudy.theory import mean_field as mf
from bpstudy.theory.moments import moments
from bpstudy.theory.profile import grad_profile, layer_variances
from bpstudy.theory.schemes import sigma_b2, sigma_w2

# input sizes the config alone fixes (digits: 8x8 pixels; mnist: 28x28)
IN_DIMS = {"digits": 64, "mnist": 784, "spirals": 2}
NAN = math.nan


@dataclass(frozen=True)
class InputStats:
    """The data's side of the first layer: its width and its mean squared norm E‖x‖²."""

    in_dim: int
    mean_sq_norm: float


@dataclass(frozen=True)
class Prediction:
    """Mean-field quantities of one config; see bpstudy.theory.mean_field for each."""

    applicable: bool
    reason: str = ""  # why not, when applicable is False
    sigma_w2: float = NAN  # of the width x width hidden layers
    sigma_b2: float = NAN
    q_star: float = NAN
    chi1: float = NAN
    c_star: float = NAN
    chi_c: float = NAN
    xi_q: float = NAN
    xi_c: float = NAN
    phase: str = ""  # ordered | critical | chaotic
    ratio_log10: float = NAN  # log10(‖dW_1‖ / ‖dW_L‖), as grad_norm/ratio_log10
    profile: tuple[float, ...] = ()  # log10 ‖dW_l‖ − log10 ‖dW_L‖, l = 1 .. L
    q_layers: tuple[float, ...] = ()  # q_1 .. q_L, from the data's q_1 by the length map


def not_applicable(config: Config) -> str:
    """Why the mean-field prediction does not describe this config ('' when it does)."""
    model, reasons = config.model, []
    if model.batch_norm:
        reasons.append("model.batch_norm=true (batch norm re-normalises each layer)")
    if model.residual.enabled:
        reasons.append("model.residual.enabled=true (residual blocks add a skip path)")
    if model.dropout > 0:
        reasons.append(f"model.dropout={model.dropout} (dropout rescales the signal)")
    if config.learning_rule.name != "backprop":
        reasons.append(f"learning_rule={config.learning_rule.name}")
    if not reasons:
        return ""
    return "the mean-field prediction is for a plain MLP under backprop; not for " + "; ".join(
        reasons
    )


def input_stats(config: Config) -> InputStats:
    """The data's first-layer statistics from the config alone: in_dim from the data set,
    E‖x‖² = in_dim (bpstudy standardises every feature to unit variance on the training
    split; a constant feature stays 0, so pass the data to count it exactly)."""
    data = config.data
    in_dim = IN_DIMS.get(data.name) or getattr(data, "in_dim", None)
    if in_dim is None:
        raise ConfigError(
            f"data={data.name}: the input size is in the file; pass the data: "
            "bpstudy.theory.predict(cfg, data=bpstudy.load_data(cfg))"
        )
    return InputStats(in_dim, float(in_dim))


def predict_config(config: Config, inputs: InputStats | None = None) -> Prediction:
    """The Prediction for a typed config (no validation here)."""
    reason = not_applicable(config)
    if reason:
        return Prediction(applicable=False, reason=reason)
    inputs = inputs or input_stats(config)
    model = config.model
    m = moments(model.activation, model.leaky_slope)
    sw2 = sigma_w2(model.init, model.width, model.width)
    sb2 = sigma_b2(model.init)
    qs = layer_variances(
        m, sw2, sb2, sigma_w2(model.init, inputs.in_dim, model.width),
        inputs.mean_sq_norm, inputs.in_dim, model.depth,
    )  # fmt: skip
    q = mf.q_star(m, sw2, sb2, q0=qs[0])
    chi1 = mf.chi(m, sw2, q) if math.isfinite(q) else sw2 * m.slope2(1.0)  # q-free there
    c = mf.c_star(m, sw2, sb2, q, chi1)
    slope_c = mf.chi_c(m, sw2, q, c, chi1)
    slope_q = mf.length_slope(m, sw2, q) if math.isfinite(q) else chi1
    profile = grad_profile(m, sw2, qs, model.width, inputs.mean_sq_norm)
    return Prediction(
        applicable=True,
        sigma_w2=sw2,
        sigma_b2=sb2,
        q_star=q,
        chi1=chi1,
        c_star=c,
        chi_c=slope_c,
        xi_q=mf.depth_scale(slope_q),
        xi_c=mf.depth_scale(slope_c),
        phase=mf.phase(chi1),
        ratio_log10=profile[0],
        profile=profile,
        q_layers=tuple(qs),
    )
