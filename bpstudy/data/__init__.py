"""Data: from a typed data config to a split, standardised `Dataset`.

`load_dataset` dispatches on `cfg.name` to one module per source (digits, spirals,
teacher, csv/npz files, mnist). Two generators come in, one per purpose: `split_rng`
draws the train/validation/test permutation, `data_rng` draws synthetic data (spirals,
teacher), so that resizing a synthetic data set never reshuffles how another is split.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bpstudy.config.schema import DataConfig
from bpstudy.data.dataset import Dataset
from bpstudy.data.digits import load_digits
from bpstudy.data.files import load_csv, load_npz
from bpstudy.data.mnist import load_mnist
from bpstudy.data.spirals import load_spirals
from bpstudy.data.split import float_dtype
from bpstudy.data.teacher import load_teacher

__all__ = ["Dataset", "load_dataset"]

_Loader = Callable[[DataConfig, np.dtype, np.random.Generator, np.random.Generator], Dataset]

_LOADERS: dict[str, _Loader] = {
    "digits": lambda cfg, dtype, split_rng, data_rng: load_digits(cfg, dtype, split_rng),
    "spirals": load_spirals,
    "teacher": load_teacher,
    "csv": lambda cfg, dtype, split_rng, data_rng: load_csv(cfg, dtype, split_rng),
    "npz": lambda cfg, dtype, split_rng, data_rng: load_npz(cfg, dtype, split_rng),
    "mnist": lambda cfg, dtype, split_rng, data_rng: load_mnist(cfg, dtype, split_rng),
}


def load_dataset(
    cfg: DataConfig,
    dtype: np.dtype | str,
    split_rng: np.random.Generator,
    data_rng: np.random.Generator,
) -> Dataset:
    """Load, split and standardise the data set `cfg` describes, as float arrays of `dtype`."""
    loader = _LOADERS.get(cfg.name)
    if loader is None:
        raise ValueError(f"unknown data config {cfg.name!r}; known: {', '.join(_LOADERS)}")
    return loader(cfg, float_dtype(dtype), split_rng, data_rng)
