"""The names the config schema and the model share: one enumeration each.

The schema's `Literal` types are built from these tuples and the model dispatches on
them, so a new activation or init scheme is named here once. Nothing is imported here:
the lowest layer (beside errors.py), readable by config, data and model alike.
"""

from __future__ import annotations

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "softsign", "linear")
# what the energy-based rules settle with: bounded and strictly increasing, so the
# Hopfield energy exists and is bounded below (bpstudy/learning_rule/energy.py says why)
ENERGY_ACTIVATIONS = ("sigmoid", "tanh", "softsign")
INIT_SCHEMES = (
    "standard",
    "xavier_uniform",
    "xavier_normal",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "orthogonal",
    "normal",
)
