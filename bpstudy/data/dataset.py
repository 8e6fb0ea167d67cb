"""The `Dataset` record every loader returns: three splits, ready for training.

Invariants (established by `bpstudy.data.split`, relied on by the training code):
X arrays are 2-D `(N, D)`, C-contiguous, of the requested float dtype and standardised
with training-split statistics. Classification targets are int64 labels `0..K-1` of
shape `(N,)`; regression targets are float arrays of shape `(N, out_dim)`, also
standardised with training-split statistics.
"""

from __future__ import annotations

import hashlib
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

    def fingerprint(self) -> str:
        """A hash of every split's arrays, as the network sees them: two runs with the same
        fingerprint trained and were measured on the same numbers (a rerun on an edited
        file, or another split, says so)."""
        h = hashlib.blake2b(digest_size=16)
        for a in (self.X_train, self.y_train, self.X_val, self.y_val, self.X_test, self.y_test):
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(np.ascontiguousarray(a).data)
        return h.hexdigest()
