"""Mean-field theory of signal and gradient propagation at initialisation (Poole et al.
2016; Schoenholz et al. 2017): for a config, q*, χ1, c*, χ_c, the depth scales, the phase
and the predicted per-layer gradient profile. Pure NumPy; docs/theory.md has the formulas.

    import bpstudy
    p = bpstudy.theory.predict(bpstudy.compose(["model.activation=tanh"]))
    p.chi1, p.phase, p.ratio_log10
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bpstudy.config.schema import Config
from bpstudy.theory.prediction import InputStats, Prediction, predict_config

if TYPE_CHECKING:
    from bpstudy.data import Dataset


def predict(cfg: Config | Mapping[str, Any], data: Dataset | None = None) -> Prediction:
    """The mean-field Prediction for a composed config (a DictConfig or dict, validated
    here once, as bpstudy.api does) or a typed Config. `data` (bpstudy.load_data(cfg))
    gives the first layer its exact input size and mean squared norm; without it they
    come from the config (see prediction.input_stats)."""
    if not isinstance(cfg, Config):
        # the edge's validation loads OmegaConf; a typed Config never gets here
        from bpstudy.config.validate import validate

        cfg = validate(cfg)
    inputs = None
    if data is not None:
        X = data.X_train
        sq = (X.astype("float64") ** 2).sum(axis=1).mean()
        inputs = InputStats(int(X.shape[1]), float(sq))
    return predict_config(cfg, inputs)


__all__ = ["InputStats", "Prediction", "predict", "predict_config"]
