"""The `digits` data set: scikit-learn's bundled 8x8 handwritten digits (the default).

1797 images of 64 pixels (values 0..16), ten classes. Bundled with scikit-learn, so it
needs no download; only the split generator is used.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from bpstudy.config.schema import DigitsData
from bpstudy.data.dataset import Dataset
from bpstudy.data.split import split_and_standardise

N_CLASSES = 10
DIGITS_FILE = "digits.csv.gz"  # in sklearn/datasets/data/


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """X (1797, 64) float64 and y (1797,) int64, read straight from scikit-learn's bundled
    file: importing sklearn.datasets takes about 2 s, reading the file 30 ms (and a
    sweep worker or a `bpstudy train` pays the import once per process)."""
    spec = importlib.util.find_spec("sklearn")
    path = (
        Path(spec.origin).parent / "datasets" / "data" / DIGITS_FILE
        if spec and spec.origin
        else None
    )
    if path is None or not path.is_file():  # another layout: ask scikit-learn itself
        from sklearn.datasets import load_digits as sklearn_digits

        X, y = sklearn_digits(return_X_y=True)
        return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)
    table = np.loadtxt(path, delimiter=",")  # 64 pixel columns, then the label
    return table[:, :-1], table[:, -1].astype(np.int64)


def load_digits(cfg: DigitsData, dtype: np.dtype | str, split_rng: np.random.Generator) -> Dataset:
    """Split and standardise the digits: X (1797, 64), labels 0..9."""
    X, y = digits_arrays()
    return split_and_standardise(
        X,
        y,
        "classification",
        N_CLASSES,
        cfg.val_fraction,
        cfg.test_fraction,
        split_rng,
        dtype,
    )
