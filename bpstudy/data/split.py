"""Train/validation/test splitting and standardisation: the one path into a `Dataset`.

A split is one permutation drawn from the `split` generator, so the same seed always gives
the same split and nothing else in the run can shift it. Standardisation (zero mean, unit
variance per column) is fitted on the training split only and then applied to all three,
so no statistic of the validation or test examples leaks into training. Columns that are
constant on the training split are centred and divided by 1. For regression the target
columns are standardised the same way.

Every split must be non-empty; a fraction that rounds to zero examples, or fractions that
leave no training examples, raise `DataError` naming the key.
"""

from __future__ import annotations

import numpy as np

from bpstudy.data.dataset import Dataset, TaskKind
from bpstudy.errors import DataError

_CHUNK_ROWS = 8192  # standardise in row blocks: float64 temporaries stay small for MNIST


def split_and_standardise(
    X: np.ndarray,
    y: np.ndarray,
    task: TaskKind,
    n_classes: int | None,
    val_fraction: float,
    test_fraction: float,
    rng: np.random.Generator,
    dtype: np.dtype | str,
) -> Dataset:
    """Split `X: (N, D)`, `y: (N,)` or `(N, k)` into train/val/test and standardise.

    The first `round(test_fraction * N)` examples of one permutation form the test split,
    the next `round(val_fraction * N)` the validation split, the rest the training split.
    """
    n = len(X)
    n_test = _split_size(test_fraction, n, "data.test_fraction", "test")
    n_val = _split_size(val_fraction, n, "data.val_fraction", "validation")
    if n_test + n_val >= n:
        raise DataError(
            f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} leave "
            f"no training examples out of {n} (their sum must stay well below 1)"
        )
    perm = rng.permutation(n)
    test, val, train = perm[:n_test], perm[n_test : n_test + n_val], perm[n_test + n_val :]
    return _standardised(
        (X[train], y[train]), (X[val], y[val]), (X[test], y[test]), task, n_classes, dtype
    )


def split_val_and_standardise(
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    task: TaskKind,
    n_classes: int | None,
    val_fraction: float,
    rng: np.random.Generator,
    dtype: np.dtype | str,
) -> Dataset:
    """Like `split_and_standardise`, for data that comes with a fixed test set.

    The validation split is the first `round(val_fraction * N)` examples of one
    permutation of `X: (N, D)`; the rest is the training split.
    """
    n = len(X)
    n_val = _split_size(val_fraction, n, "data.val_fraction", "validation")
    if n_val >= n:
        raise DataError(f"data.val_fraction={val_fraction} leaves no training examples out of {n}")
    if len(X_test) == 0:
        raise DataError("the test set holds no examples")
    perm = rng.permutation(n)
    val, train = perm[:n_val], perm[n_val:]
    return _standardised(
        (X[train], y[train]), (X[val], y[val]), (X_test, y_test), task, n_classes, dtype
    )


def _split_size(fraction: float, n: int, key: str, what: str) -> int:
    size = round(fraction * n)
    if size < 1:
        raise DataError(f"{key}={fraction} leaves no {what} examples out of {n}")
    return size


def _standardised(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    task: TaskKind,
    n_classes: int | None,
    dtype: np.dtype | str,
) -> Dataset:
    dtype = float_dtype(dtype)
    X_mean, X_scale = fit_standardiser(train[0])
    Xs = [standardise(X, X_mean, X_scale, dtype) for X, _ in (train, val, test)]
    if task == "classification":
        ys = [np.ascontiguousarray(y, dtype=np.int64) for _, y in (train, val, test)]
    else:
        y2 = [y.reshape(len(y), -1) for _, y in (train, val, test)]  # (N, out_dim)
        y_mean, y_scale = fit_standardiser(y2[0])
        ys = [standardise(y, y_mean, y_scale, dtype) for y in y2]
    return Dataset(
        X_train=Xs[0],
        y_train=ys[0],
        X_val=Xs[1],
        y_val=ys[1],
        X_test=Xs[2],
        y_test=ys[2],
        task=task,
        n_classes=n_classes if task == "classification" else None,
    )


def fit_standardiser(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and scale of `A: (N, D)`, in float64; scale is 1 for constant columns."""
    mean = A.mean(axis=0, dtype=np.float64)  # (D,)
    sq = np.zeros_like(mean)
    for start in range(0, len(A), _CHUNK_ROWS):
        sq += ((A[start : start + _CHUNK_ROWS] - mean) ** 2).sum(axis=0)
    std = np.sqrt(sq / len(A))
    constant = np.ptp(A, axis=0) == 0  # exact test; a tiny float std would blow values up
    return mean, np.where(constant, 1.0, std)


def standardise(A: np.ndarray, mean: np.ndarray, scale: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """`(A - mean) / scale` as a fresh C-contiguous `(N, D)` array of `dtype`."""
    out = np.empty(A.shape, dtype=dtype)
    for start in range(0, len(A), _CHUNK_ROWS):
        block = A[start : start + _CHUNK_ROWS]
        out[start : start + _CHUNK_ROWS] = (block - mean) / scale
    return out


def float_dtype(dtype: np.dtype | str) -> np.dtype:
    """`dtype` as a NumPy float dtype; anything else is a programming error."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a float type, but got {dtype}")
    return dtype
