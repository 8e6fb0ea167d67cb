"""The user's own data files: `csv` (read with pandas) and `npz` (NumPy archives).

This module owns everything between a path the user typed and clean arrays: checking that
the file exists and parses, picking the target column, rejecting non-numeric or non-finite
features, and deciding the task. Every problem becomes one `DataError` line naming the
file or key; no pandas, NumPy, zip or OS traceback escapes.

Task detection (`task=auto`): a target is a classification label if it is text, boolean,
or integer-valued with at most `MAX_AUTO_CLASSES` distinct values; otherwise it is a
regression target. Class labels map to `0..K-1` in sorted order of their distinct values.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from bpstudy.config.schema import CsvData, NpzData, Task
from bpstudy.data.dataset import Dataset, TaskKind
from bpstudy.data.split import split_and_standardise
from bpstudy.errors import DataError, os_reason, shown

MAX_AUTO_CLASSES = 50
_MAX_LISTED = 20  # columns or arrays named in an error message


# ---------------------------------------------------------------- paths


def require_path(path: str, data_name: str, what: str, folder: bool = False) -> Path:
    """The existing file (or folder) behind `data.path`, or a `DataError` saying what to give."""
    if not path:
        raise DataError(f"data.path is required for data={data_name} ({what})")
    resolved = Path(path).expanduser()
    try:
        if not resolved.exists():
            raise DataError(f"data.path={path}: no such {'folder' if folder else 'file'}")
        if folder and not resolved.is_dir():
            raise DataError(f"data.path={path}: not a folder (expected {what})")
        if not folder and resolved.is_dir():
            raise DataError(f"data.path={path}: is a folder (expected {what})")
        if not folder and not resolved.is_file():  # a FIFO or a device: reading would block
            raise DataError(f"data.path={path}: not a regular file (expected {what})")
    except OSError as exc:  # a folder on the way that cannot be searched, a name too long
        raise DataError(f"data.path={path}: cannot read ({os_reason(exc)})") from None
    return resolved


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, for embedding in a `DataError`."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# ---------------------------------------------------------------- csv


def load_csv(cfg: CsvData, dtype: np.dtype | str, split_rng: np.random.Generator) -> Dataset:
    """Read `cfg.path`, then split and standardise with `split_rng`."""
    header = "with" if cfg.header else "without"
    path = require_path(cfg.path, "csv", f"a CSV file {header} a header row")
    X, y, task, n_classes = read_csv(path, cfg.target, cfg.task, cfg.delimiter, cfg.header)
    return split_and_standardise(
        X, y, task, n_classes, cfg.val_fraction, cfg.test_fraction, split_rng, dtype
    )


def read_csv(
    path: Path, target: str | None, task: Task, delimiter: str, header: bool
) -> tuple[np.ndarray, np.ndarray, TaskKind, int | None]:
    """Features X (N, D) float64 and the encoded target of a CSV file, with its task.

    `target` is a column name, or an integer index given as text ("0", "-1"); a name is
    tried first. None means the last column.
    """
    frame = _read_frame(path, delimiter, header)
    target_pos = _target_position(frame, target, path)
    feature_pos = [pos for pos in range(frame.shape[1]) if pos != target_pos]
    X = np.column_stack([_feature_column(frame, pos, path, header) for pos in feature_pos])
    where = f"{path}: target column {_column_name(frame, target_pos, header)}"
    y, kind, n_classes = resolve_target(_target_values(frame, target_pos, where), task, where)
    return X, y, kind, n_classes


def _read_frame(path: Path, delimiter: str, header: bool) -> pd.DataFrame:
    delimiter = "\t" if delimiter == "\\t" else delimiter  # a tab typed as backslash-t
    if len(delimiter) != 1:
        raise DataError(
            f"data.delimiter={delimiter!r} must be a single character (e.g. ',', ';' or '\\t')"
        )
    try:
        frame = pd.read_csv(path, sep=delimiter, header=0 if header else None, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file (expected a CSV file)") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file, so not a CSV file") from None
    except (ValueError, pd.errors.ParserError) as exc:
        msg = f"{path}: cannot parse as CSV with data.delimiter={delimiter!r} ({one_line(exc)})"
        raise DataError(msg) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({os_reason(exc)})") from None
    if frame.shape[1] < 2:
        raise DataError(
            f"{path}: found {frame.shape[1]} column with data.delimiter={delimiter!r}; "
            "need at least 2 (feature columns and a target column)"
        )
    if frame.shape[0] == 0:
        raise DataError(f"{path}: no data rows")
    return frame


def _target_position(frame: pd.DataFrame, target: str | None, path: Path) -> int:
    names = [str(label) for label in frame.columns]
    n = len(names)
    if target is None:
        return n - 1
    target = str(target)
    if target in names:
        return names.index(target)
    try:
        index = int(target)
    except ValueError:
        raise DataError(
            f"data.target={target!r} is not a column of {path}; columns: {_listing(names)}"
        ) from None
    if not -n <= index < n:
        raise DataError(
            f"data.target={target} is out of range for {path}, which has {n} columns "
            f"(use a column name, 0..{n - 1} or -{n}..-1)"
        )
    return index % n


def _column_name(frame: pd.DataFrame, pos: int, header: bool) -> str:
    return repr(str(frame.columns[pos])) if header else str(pos)


def _feature_column(frame: pd.DataFrame, pos: int, path: Path, header: bool) -> np.ndarray:
    column = frame.iloc[:, pos]
    name = _column_name(frame, pos, header)
    if not pd.api.types.is_numeric_dtype(column):
        value, row = _first_non_number(column)
        raise DataError(
            f"{path}: column {name} is not numeric (feature columns must be numbers); "
            f"e.g. {value!r} in data row {row + 1}"
        )
    values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(
            f"{path}: column {name} has a missing or infinite value in data row {bad[0] + 1} "
            "(features must be finite numbers)"
        )
    return values


def _first_non_number(column: pd.Series) -> tuple[object, int]:
    parsed = pd.to_numeric(column, errors="coerce")
    bad = np.flatnonzero((parsed.isna() & column.notna()).to_numpy())
    row = int(bad[0]) if bad.size else 0
    return column.iloc[row], row


def _target_values(frame: pd.DataFrame, pos: int, where: str) -> np.ndarray:
    column = frame.iloc[:, pos]
    missing = column.isna().to_numpy().copy()
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        missing |= ~np.isfinite(column.to_numpy(dtype=np.float64, na_value=np.nan))
    bad = np.flatnonzero(missing)
    if bad.size:
        raise DataError(f"{where} has a missing or infinite value in data row {bad[0] + 1}")
    if pd.api.types.is_bool_dtype(column):
        return column.to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(column):
        return column.to_numpy(dtype=np.float64)
    return column.astype(str).to_numpy(dtype=str)


# ---------------------------------------------------------------- npz


def load_npz(cfg: NpzData, dtype: np.dtype | str, split_rng: np.random.Generator) -> Dataset:
    """Read `cfg.path`, then split and standardise with `split_rng`."""
    what = f"an .npz archive with arrays {cfg.x_key!r} and {cfg.y_key!r}"
    path = require_path(cfg.path, "npz", what)
    X, y, task, n_classes = read_npz(path, cfg.x_key, cfg.y_key, cfg.task)
    return split_and_standardise(
        X, y, task, n_classes, cfg.val_fraction, cfg.test_fraction, split_rng, dtype
    )


def read_npz(
    path: Path, x_key: str, y_key: str, task: Task
) -> tuple[np.ndarray, np.ndarray, TaskKind, int | None]:
    """Features X (N, D) float64 and the encoded target of an .npz archive, with its task.

    X may have any shape (N, ...); it is flattened to (N, D). y is (N,) or (N, k).
    """
    X_raw, y_raw = _npz_arrays(path, x_key, y_key)
    X = _npz_features(X_raw, path, x_key)
    if y_raw.ndim == 0 or len(y_raw) != len(X):
        n_y = "a scalar" if y_raw.ndim == 0 else len(y_raw)
        raise DataError(f"{path}: {x_key} has {len(X)} rows but {y_key} has {n_y}")
    y, kind, n_classes = resolve_target(y_raw, task, f"{path}: array {y_key!r}")
    return X, y, kind, n_classes


def _npz_arrays(path: Path, x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as handle:  # ours to close, even when np.load fails
            archive = _open_npz(handle, path, x_key, y_key)
            X = _npz_member(archive, x_key, "data.x_key", path)
            return X, _npz_member(archive, y_key, "data.y_key", path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({os_reason(exc)})") from None


def _open_npz(handle: BinaryIO, path: Path, x_key: str, y_key: str) -> np.lib.npyio.NpzFile:
    try:
        archive = np.load(handle, allow_pickle=False)
    except EOFError:
        raise DataError(f"{path}: empty file (expected an .npz archive from np.savez)") from None
    except ValueError:  # neither zip nor .npy; NumPy's message would suggest unpickling it
        raise DataError(f"{path}: not a NumPy .npz archive (expected one from np.savez)") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot read as an .npz archive ({one_line(exc)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(
            f"{path}: holds a single array (.npy); expected an .npz archive with arrays "
            f"{x_key!r} and {y_key!r} (np.savez)"
        )
    return archive


def _npz_member(archive: np.lib.npyio.NpzFile, key: str, cfg_key: str, path: Path) -> np.ndarray:
    if key not in archive.files:
        arrays = _listing(archive.files) if archive.files else "(none)"
        raise DataError(f"{path} has no array {key!r} ({cfg_key}); arrays: {arrays}")
    try:
        return archive[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(
            f"{path}: cannot read array {key!r} ({one_line(exc)}); "
            "arrays must hold numbers or text, saved without pickling"
        ) from None


def _npz_features(X: np.ndarray, path: Path, key: str) -> np.ndarray:
    if X.ndim == 0:
        raise DataError(f"{path}: array {key!r} is a scalar; expected features of shape (N, D)")
    if X.dtype.kind not in "biuf":
        raise DataError(f"{path}: array {key!r} has dtype {X.dtype}; features must be numbers")
    if len(X) == 0:
        raise DataError(f"{path}: array {key!r} holds no examples")
    X = X.reshape(len(X), -1).astype(np.float64)
    if X.shape[1] == 0:
        raise DataError(f"{path}: array {key!r} has shape {X.shape}; it has no feature columns")
    bad_rows = np.flatnonzero(~np.isfinite(X).all(axis=1))
    if bad_rows.size:
        raise DataError(
            f"{path}: array {key!r} has NaN or inf (first in row {bad_rows[0]}); "
            "features must be finite numbers"
        )
    return X


# ---------------------------------------------------------------- targets


def resolve_target(
    y: np.ndarray, task: Task, where: str
) -> tuple[np.ndarray, TaskKind, int | None]:
    """Decide the task and encode `y`: int64 labels (N,) or float64 targets (N, k).

    `where` names the target in messages, e.g. "/x/y.csv: target column 'label'".
    """
    if y.ndim not in (1, 2):
        raise DataError(f"{where} has shape {y.shape}; expected (N,) or (N, k)")
    if y.dtype.kind not in "biufUSO":
        raise DataError(f"{where} has dtype {y.dtype}; targets must be numbers or text labels")
    kind: TaskKind = _detect_task(y, where) if task == "auto" else task
    if kind == "classification":
        labels, n_classes = encode_labels(y, where)
        return labels, kind, n_classes
    return _regression_target(y, where), kind, None


def _detect_task(y: np.ndarray, where: str) -> TaskKind:
    if y.ndim == 2 and y.shape[1] > 1:
        return "regression"
    flat = y.reshape(-1)
    if flat.dtype.kind == "b":
        return "classification"
    if flat.dtype.kind == "f":
        _require_finite(flat, where)
    n_distinct = len(np.unique(flat))
    if flat.dtype.kind in "USO":
        if n_distinct > MAX_AUTO_CLASSES:
            raise DataError(
                f"{where} holds text with {n_distinct} distinct values; data.task=auto takes "
                f"text as class labels only up to {MAX_AUTO_CLASSES} classes "
                "(set data.task=classification to use them all)"
            )
        return "classification"
    integer_valued = flat.dtype.kind in "iu" or bool(np.all(flat == np.round(flat)))
    return "classification" if integer_valued and n_distinct <= MAX_AUTO_CLASSES else "regression"


def encode_labels(y: np.ndarray, where: str) -> tuple[np.ndarray, int]:
    """Map the distinct values of `y` (N,) or (N, 1), in sorted order, to labels 0..K-1."""
    if y.ndim == 2 and y.shape[1] != 1:
        raise DataError(
            f"{where} has shape {y.shape}; classification needs one label per row, shape (N,)"
        )
    flat = y.reshape(-1)
    if flat.dtype.kind == "f":
        _require_finite(flat, where)
    classes, labels = np.unique(flat, return_inverse=True)
    if len(classes) < 2:
        raise DataError(
            f"{where} has a single class ({shown(classes[0])}); classification needs at least 2"
        )
    return labels.reshape(-1).astype(np.int64), len(classes)


def _regression_target(y: np.ndarray, where: str) -> np.ndarray:
    if y.dtype.kind not in "biuf":
        raise DataError(
            f"data.task=regression but {where} is not numeric (e.g. {shown(y.reshape(-1)[0])})"
        )
    values = y.astype(np.float64).reshape(len(y), -1)  # (N, k)
    _require_finite(values, where)
    return values


def _require_finite(values: np.ndarray, where: str) -> None:
    bad = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
    if bad.size:
        raise DataError(f"{where} has NaN or inf (first in row {bad[0]}); targets must be finite")


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown if len(names) <= _MAX_LISTED else f"{shown}, ... ({len(names)} in all)"
