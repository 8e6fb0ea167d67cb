"""The `Dataset` record every loader returns: three splits, ready for training.

Invariants (established by `bpstudy.data.split`, relied on by the training code):
X arrays are 2-D `(N, D)`, C-contiguous, of the requested float dtype and standardised
with training-split statistics. Classification targets are int64 labels `0..K-1` of
shape `(N,)`; regression targets are float arrays of shape `(N, out_dim)`, also
standardised with training-split statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

TaskKind = Literal["classification", "regression"]


@dataclass(frozen=True)
class Dataset:
    X_train: np.ndarray  # (N_train, D)
    y_train: np.ndarray  # (N_train,) int64 labels, or (N_train, out_dim) floats
    X_val: np.ndarray  # (N_val, D)
    y_val: np.ndarray
    X_test: np.ndarray  # (N_test, D)
    y_test: np.ndarray
    task: TaskKind
    n_classes: int | None  # classification only; None for regression

    @property
    def in_dim(self) -> int:
        """Number of input features D."""
        return int(self.X_train.shape[1])

    @property
    def out_dim(self) -> int:
        """Width of the network's output: K classes, or the regression target's columns."""
        if self.task == "classification":
            assert self.n_classes is not None
            return self.n_classes
        return int(self.y_train.shape[1])
