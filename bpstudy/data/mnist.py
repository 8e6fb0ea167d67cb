"""The `mnist` data set, read from the four standard IDX files in a folder the user gives.

The folder holds `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
`t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each optionally gzipped (`.gz`;
gzip is recognised by content, and a plain file is preferred when both exist). An IDX file
is a big-endian header -- magic number `0x0000TTNN` (T = element type, N = number of
dimensions), then N uint32 sizes -- followed by the raw elements.

Pixels are scaled to [0, 1] and each image flattened to a row (28 x 28 -> 784). `limit`
keeps the first `limit` training examples; the validation split is drawn from those, and
the t10k files are the test split.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from bpstudy.config.schema import MnistData
from bpstudy.data.dataset import Dataset
from bpstudy.data.files import one_line, require_path
from bpstudy.data.split import split_val_and_standardise
from bpstudy.errors import DataError, os_reason

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
MNIST_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def load_mnist(cfg: MnistData, dtype: np.dtype | str, split_rng: np.random.Generator) -> Dataset:
    """Read the IDX files in `cfg.path`; split validation from training with `split_rng`."""
    folder = require_path(cfg.path, "mnist", "a folder with the four MNIST IDX files", True)
    X_train, y_train, X_test, y_test = read_mnist(folder, cfg.limit, dtype)
    classes, labels = np.unique(np.concatenate([y_train, y_test]), return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"data.path={folder}: the MNIST labels hold a single class")
    labels = labels.reshape(-1).astype(np.int64)
    return split_val_and_standardise(
        X_train,
        labels[: len(y_train)],
        X_test,
        labels[len(y_train) :],
        "classification",
        len(classes),
        cfg.val_fraction,
        split_rng,
        dtype,
    )


def read_mnist(
    folder: Path, limit: int | None, dtype: np.dtype | str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """X_train (N, 784) in [0, 1], y_train (N,) int64, X_test, y_test: pixels scaled by 1/255."""
    paths = {name: _find(folder, name) for name in MNIST_FILES}
    X_train, y_train = _images_and_labels(paths[TRAIN_IMAGES], paths[TRAIN_LABELS], limit, dtype)
    X_test, y_test = _images_and_labels(paths[TEST_IMAGES], paths[TEST_LABELS], None, dtype)
    if X_train.shape[1] != X_test.shape[1]:
        raise DataError(
            f"{paths[TEST_IMAGES]}: images have {X_test.shape[1]} pixels but the training "
            f"images in {paths[TRAIN_IMAGES]} have {X_train.shape[1]}"
        )
    return X_train, y_train, X_test, y_test


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"data.path={folder}: missing MNIST file {name} (or .gz)")


def _images_and_labels(
    images_path: Path, labels_path: Path, limit: int | None, dtype: np.dtype | str
) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{images_path}: expected unsigned-byte images (N x rows x cols), "
            f"found {images.dtype} of shape {_dims(images.shape)}"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(
            f"{labels_path}: expected integer labels (N), "
            f"found {labels.dtype} of shape {_dims(labels.shape)}"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{labels_path} has {len(labels)} labels but {images_path} has {len(images)} images"
        )
    if len(images) == 0:
        raise DataError(f"{images_path}: holds no images")
    if images.shape[1] * images.shape[2] == 0:
        raise DataError(f"{images_path}: its images are {_dims(images.shape[1:])} pixels")
    images, labels = images[:limit], labels[:limit]
    X = images.reshape(len(images), -1).astype(dtype)  # (N, rows * cols)
    X /= 255
    return X, labels.astype(np.int64)


def read_idx(path: Path) -> np.ndarray:
    """The array stored in an IDX file, gzipped or not, in native byte order."""
    raw = _read_bytes(path)
    dtype, shape, offset = _idx_header(raw, path)
    n_bytes = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - offset != n_bytes:
        raise DataError(
            f"{path}: the IDX header says {_dims(shape)} ({n_bytes} bytes of data) "
            f"but the file holds {len(raw) - offset} bytes of data"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({os_reason(exc)})") from None
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip file ({one_line(exc)})") from None


def _idx_header(raw: bytes, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """Element dtype (big-endian), shape and data offset from an IDX header."""
    if len(raw) < 4:
        raise DataError(f"{path}: not an IDX file (only {len(raw)} bytes)")
    magic = int(np.frombuffer(raw, dtype=">u4", count=1)[0])
    type_code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    if magic >> 16 or type_code not in _IDX_TYPES or ndim == 0:
        raise DataError(f"{path}: not an IDX file (bad magic number 0x{magic:08x})")
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise DataError(f"{path}: truncated IDX header ({ndim} dimensions, {len(raw)} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    return np.dtype(_IDX_TYPES[type_code]), shape, offset


def _dims(shape: tuple[int, ...]) -> str:
    return " x ".join(str(d) for d in shape)
