"""The `digits` data set: scikit-learn's bundled 8x8 handwritten digits (the default).

1797 images of 64 pixels (values 0..16), ten classes. Bundled with scikit-learn, so it
needs no download; only the split generator is used.
"""

from __future__ import annotations

import numpy as np

from bpstudy.config.schema import DigitsData
from bpstudy.data.dataset import Dataset
from bpstudy.data.split import split_and_standardise

N_CLASSES = 10


def load_digits(cfg: DigitsData, dtype: np.dtype | str, split_rng: np.random.Generator) -> Dataset:
    """Split and standardise the digits: X (1797, 64), labels 0..9."""
    from sklearn.datasets import load_digits as sklearn_digits  # slow import: only when used

    X, y = sklearn_digits(return_X_y=True)
    return split_and_standardise(
        np.asarray(X, dtype=np.float64),
        np.asarray(y, dtype=np.int64),
        "classification",
        N_CLASSES,
        cfg.val_fraction,
        cfg.test_fraction,
        split_rng,
        dtype,
    )
