"""Tests for `bpstudy.data`: loaders, the split, standardisation and every DataError."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from bpstudy.config.schema import (
    CsvData,
    DigitsData,
    MnistData,
    NpzData,
    SpiralsData,
    TeacherData,
)
from bpstudy.data import Dataset, load_dataset
from bpstudy.data.mnist import read_idx, read_mnist
from bpstudy.data.spirals import make_spirals
from bpstudy.data.split import split_and_standardise, split_val_and_standardise
from bpstudy.data.teacher import make_teacher
from bpstudy.errors import DataError


def rngs(split_seed: int = 0, data_seed: int = 1) -> tuple[np.random.Generator, ...]:
    return np.random.default_rng(split_seed), np.random.default_rng(data_seed)


def load(cfg, dtype: str = "float64", split_seed: int = 0, data_seed: int = 1) -> Dataset:
    return load_dataset(cfg, dtype, *rngs(split_seed, data_seed))


def check_layout(ds: Dataset, dtype: str) -> None:
    """The Dataset invariants every loader must establish."""
    for X in (ds.X_train, ds.X_val, ds.X_test):
        assert X.ndim == 2 and X.dtype == np.dtype(dtype) and X.flags.c_contiguous
        assert X.shape[1] == ds.in_dim and len(X) > 0
    for X, y in ((ds.X_train, ds.y_train), (ds.X_val, ds.y_val), (ds.X_test, ds.y_test)):
        assert len(X) == len(y)
        if ds.task == "classification":
            assert y.dtype == np.int64 and y.ndim == 1
            assert y.min() >= 0 and y.max() < ds.n_classes
        else:
            assert y.dtype == np.dtype(dtype) and y.ndim == 2 and y.shape[1] == ds.out_dim


# ---------------------------------------------------------------- split


def split(X, y, task="classification", n_classes=None, val=0.15, test=0.15, seed=0, dtype="f8"):
    rng = np.random.default_rng(seed)
    return split_and_standardise(X, y, task, n_classes, val, test, rng, dtype)


def test_split_sizes_are_disjoint_and_cover_everything():
    X = np.arange(100.0)[:, None] * np.ones((1, 3))
    ds = split(X, np.arange(100), n_classes=100)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (70, 15, 15)
    everything = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    assert np.array_equal(np.sort(everything), np.arange(100))


def test_same_seed_same_split_other_seed_other_split():
    X = np.random.default_rng(5).normal(size=(60, 4))
    y = np.arange(60)
    a, b, c = (
        split(X, y, n_classes=60),
        split(X, y, n_classes=60),
        split(X, y, n_classes=60, seed=1),
    )
    assert np.array_equal(a.y_train, b.y_train) and np.array_equal(a.X_val, b.X_val)
    assert not np.array_equal(a.y_train, c.y_train)


def test_standardisation_uses_training_statistics_only():
    raw = np.random.default_rng(3).normal(
        loc=[5.0, -2.0, 0.0], scale=[3.0, 0.5, 10.0], size=(200, 3)
    )
    raw[:, 2] = 7.0  # a constant column
    ds = split(raw, np.arange(200), n_classes=200)  # labels = row ids, so rows can be traced
    train = raw[ds.y_train]
    mean, std = train.mean(axis=0), train.std(axis=0)
    std[2] = 1.0  # zero variance: divided by 1
    np.testing.assert_allclose(ds.X_train[:, :2].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(ds.X_train[:, :2].std(axis=0), 1.0, atol=1e-12)
    np.testing.assert_array_equal(ds.X_train[:, 2], 0.0)
    for X, ids in ((ds.X_val, ds.y_val), (ds.X_test, ds.y_test)):
        np.testing.assert_allclose(X, (raw[ids] - mean) / std, atol=1e-12)
    assert abs(ds.X_val[:, 0].mean()) > 1e-6  # not re-centred on its own statistics


def test_regression_targets_are_standardised_with_training_statistics():
    X = np.random.default_rng(4).normal(loc=3.0, scale=2.0, size=(80, 2))
    ds = split(X, X[:, :1].copy(), task="regression")  # y = first feature, transformed alike
    assert ds.n_classes is None and ds.out_dim == 1
    np.testing.assert_allclose(ds.y_train.mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(ds.y_train.std(), 1.0, atol=1e-12)
    for X_part, y_part in ((ds.X_train, ds.y_train), (ds.X_val, ds.y_val), (ds.X_test, ds.y_test)):
        np.testing.assert_allclose(y_part, X_part[:, :1], atol=1e-12)


def test_split_casts_to_float32():
    ds = split(
        np.random.default_rng(0).normal(size=(30, 2)),
        np.arange(30) % 2,
        n_classes=2,
        dtype="float32",
    )
    check_layout(ds, "float32")


@pytest.mark.parametrize(
    ("val", "test", "fragment"),
    [
        (0.01, 0.15, "data.val_fraction=0.01 leaves no validation examples out of 20"),
        (0.15, 0.0, "data.test_fraction=0.0 leaves no test examples out of 20"),
        (0.5, 0.5, "leave no training examples out of 20"),
    ],
)
def test_empty_splits_are_errors_naming_the_key(val, test, fragment):
    with pytest.raises(DataError, match=fragment):
        split(np.ones((20, 2)), np.arange(20) % 2, n_classes=2, val=val, test=test)


def test_fixed_test_set_split():
    rng = np.random.default_rng(1)
    X, X_test = rng.normal(2.0, 3.0, size=(50, 3)), rng.normal(size=(7, 3))
    ds = split_val_and_standardise(
        X, np.arange(50), X_test, np.zeros(7, int), "classification", 50, 0.2, rng, "float64"
    )
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (40, 10, 7)
    train = X[ds.y_train]
    np.testing.assert_allclose(ds.X_test, (X_test - train.mean(0)) / train.std(0), atol=1e-12)
    with pytest.raises(DataError, match=r"data.val_fraction=0.01 .* out of 50"):
        split_val_and_standardise(
            X, np.arange(50), X_test, np.zeros(7, int), "classification", 50, 0.01, rng, "f8"
        )


# ---------------------------------------------------------------- digits, spirals, teacher


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_digits(dtype):
    ds = load(DigitsData(), dtype)
    check_layout(ds, dtype)
    assert ds.in_dim == 64 and ds.out_dim == 10 and ds.task == "classification"
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 1797
    assert len(ds.y_test) == round(0.15 * 1797)
    assert set(np.unique(ds.y_train)) == set(range(10))
    varying = ds.X_train.std(axis=0) > 0  # some border pixels are always 0
    np.testing.assert_allclose(ds.X_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.X_train.std(axis=0)[varying], 1.0, rtol=1e-4)


def test_digits_read_from_the_bundled_file_equal_scikit_learns():
    from sklearn.datasets import load_digits as sklearn_digits

    from bpstudy.data.digits import digits_arrays

    X, y = digits_arrays()
    X_ref, y_ref = sklearn_digits(return_X_y=True)
    assert X.dtype == np.float64 and y.dtype == np.int64
    assert np.array_equal(X, X_ref) and np.array_equal(y, y_ref)


def test_spirals_geometry():
    X, y = make_spirals(50, 4, 1.5, 0.0, np.random.default_rng(0))
    assert X.shape == (200, 2) and y.shape == (200,)
    assert np.array_equal(np.bincount(y), [50] * 4)
    radius = np.linalg.norm(X, axis=1)
    assert radius.max() <= 1.0 + 1e-12
    assert np.all(np.diff(radius[y == 2]) > 0)  # each arm runs outwards
    angle = np.arctan2(X[:, 1], X[:, 0]).reshape(4, 50)
    for k in range(4):  # arm k is arm 0 turned by 2*pi*k/4
        np.testing.assert_allclose(np.cos(angle[k] - angle[0] - np.pi * k / 2), 1.0)


def test_spirals_dataset_uses_the_data_generator():
    cfg = SpiralsData(n_per_class=40, n_classes=3, noise=0.3)
    a, b, c = load(cfg, data_seed=1), load(cfg, data_seed=1), load(cfg, data_seed=2)
    check_layout(a, "float64")
    assert (
        a.n_classes == 3 and a.in_dim == 2 and len(a.y_train) + len(a.y_val) + len(a.y_test) == 120
    )
    assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.y_train, c.y_train)
    assert not np.allclose(a.X_train, c.X_train)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu", "softsign"])
def test_teacher_outputs_are_order_one(activation):
    X, y = make_teacher(400, 5, 3, 4, 16, activation, 0.0, np.random.default_rng(0))
    assert X.shape == (400, 5) and y.shape == (400, 3) and np.all(np.isfinite(y))
    np.testing.assert_allclose(y.std(axis=0), 1.0)
    residual = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
    assert residual.std() > 1e-3  # genuinely nonlinear


def test_linear_teacher_is_linear_and_noise_is_added():
    X, y = make_teacher(300, 4, 2, 3, 8, "linear", 0.0, np.random.default_rng(0))
    design = np.column_stack([X, np.ones(len(X))])
    residual = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    assert residual.std() < 1e-10
    _, noisy = make_teacher(300, 4, 2, 3, 8, "linear", 0.5, np.random.default_rng(0))
    np.testing.assert_allclose((noisy - y).std(), 0.5, rtol=0.1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_teacher_dataset(dtype):
    cfg = TeacherData(n_samples=200, in_dim=6, out_dim=2, depth=2, width=8)
    ds = load(cfg, dtype)
    check_layout(ds, dtype)
    assert ds.task == "regression" and ds.n_classes is None and (ds.in_dim, ds.out_dim) == (6, 2)
    assert np.array_equal(ds.y_test, load(cfg, dtype).y_test)
    assert not np.allclose(ds.y_test, load(cfg, dtype, data_seed=9).y_test)


# ---------------------------------------------------------------- csv


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def numeric_csv(tmp_path: Path, n: int = 40) -> Path:
    rows = [f"{i},{i % 7 * 1.5},{i % 3}" for i in range(n)]
    return write(tmp_path / "d.csv", "a,b,label\n" + "\n".join(rows) + "\n")


def test_csv_default_target_is_last_column_and_labels_classify(tmp_path):
    ds = load(CsvData(path=str(numeric_csv(tmp_path))), "float32")
    check_layout(ds, "float32")
    assert ds.task == "classification" and ds.n_classes == 3 and ds.in_dim == 2
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 40


@pytest.mark.parametrize("target", ["b", "1", "-2"])
def test_csv_target_by_name_or_index(tmp_path, target):
    ds = load(CsvData(path=str(numeric_csv(tmp_path)), target=target))
    assert ds.task == "regression"  # column b = (i % 7) * 1.5 is not integer-valued
    assert ds.in_dim == 2 and ds.out_dim == 1
    assert len(np.unique(np.concatenate([ds.y_train, ds.y_val, ds.y_test]).round(9))) == 7


def test_csv_auto_task_detection(tmp_path):
    many = write(tmp_path / "m.csv", "x,y\n" + "".join(f"{i * 0.1},{i}\n" for i in range(60)))
    floats = write(tmp_path / "f.csv", "x,y\n" + "".join(f"{i},{i * 0.5}\n" for i in range(30)))
    ints = write(tmp_path / "i.csv", "x,y\n" + "".join(f"{i},{i % 4 * 2.0}\n" for i in range(30)))
    assert load(CsvData(path=str(many))).task == "regression"  # 60 distinct integers > 50
    assert load(CsvData(path=str(floats))).task == "regression"
    assert load(CsvData(path=str(ints))).task == "classification"
    assert load(CsvData(path=str(ints), task="regression")).task == "regression"
    assert load(CsvData(path=str(floats), task="classification")).n_classes == 30


def test_csv_string_labels_map_to_sorted_indices(tmp_path):
    rows = [(i, ["pear", "apple", "fig"][i % 3]) for i in range(30)]
    path = write(tmp_path / "s.csv", "name,v\n" + "".join(f"{s},{i}\n" for i, s in rows))
    ds = load(CsvData(path=str(path), target="name"), split_seed=2)
    assert ds.task == "classification" and ds.n_classes == 3 and ds.in_dim == 1
    # the single feature v = i is standardised monotonically, so its order gives back i
    order = np.argsort(np.concatenate([ds.X_train, ds.X_val, ds.X_test])[:, 0])
    labels = np.concatenate([ds.y_train, ds.y_val, ds.y_test])[order]
    assert np.array_equal(labels, [{"apple": 0, "fig": 1, "pear": 2}[s] for _, s in rows])


def test_csv_boolean_columns_are_numbers(tmp_path):
    rows = "".join(f"{i},{i % 3 == 0},{i % 2 == 1}\n" for i in range(30))
    ds = load(CsvData(path=str(write(tmp_path / "b.csv", "x,flag,y\n" + rows))))
    assert ds.task == "classification" and ds.n_classes == 2 and ds.in_dim == 2


def test_csv_without_header_and_other_delimiter(tmp_path):
    path = write(tmp_path / "n.csv", "".join(f"{i % 2};{i};{i * 2.5}\n" for i in range(20)))
    ds = load(CsvData(path=str(path), header=False, delimiter=";", target="0"))
    assert ds.task == "classification" and ds.n_classes == 2 and ds.in_dim == 2


def csv_error(path: Path | str, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        load(CsvData(path=str(path), **kwargs))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_csv_errors(tmp_path):
    assert "data.path is required for data=csv" in csv_error("")
    missing = tmp_path / "nope.csv"
    assert csv_error(missing) == f"data.path={missing}: no such file"
    assert "is a folder" in csv_error(tmp_path)
    assert "empty file" in csv_error(write(tmp_path / "e.csv", ""))
    assert "no data rows" in csv_error(write(tmp_path / "h.csv", "a,b\n"))
    one = csv_error(write(tmp_path / "one.csv", "a;b\n1;2\n"))
    assert "one.csv" in one and "at least 2" in one and "data.delimiter=','" in one
    text = write(tmp_path / "t.csv", "a,foo,y\n1,2,0\n2,x,1\n3,4,0\n")
    message = csv_error(text)
    assert f"{text}: column 'foo' is not numeric (feature columns must be numbers)" in message
    assert "'x' in data row 2" in message
    nan = csv_error(write(tmp_path / "nan.csv", "a,b,y\n1,2,0\n2,,1\n3,4,0\n"))
    assert "nan.csv: column 'b' has a missing or infinite value in data row 2" in nan
    good = numeric_csv(tmp_path)
    assert (
        csv_error(good, target="zz")
        == f"data.target='zz' is not a column of {good}; columns: a, b, label"
    )
    assert "data.target=7 is out of range" in csv_error(good, target="7")
    single = csv_error(write(tmp_path / "s.csv", "a,y\n1,3\n2,3\n3,3\n"))
    assert "s.csv: target column 'y' has a single class (3.0);" in single  # not np.float64(3.0)
    words = write(tmp_path / "w.csv", "a,y\n1,cat\n2,dog\n3,cat\n")
    assert "data.task=regression but" in csv_error(words, task="regression")
    missing_target = csv_error(write(tmp_path / "mt.csv", "a,y\n1,1\n2,\n3,0\n"))
    assert (
        "mt.csv: target column 'y' has a missing or infinite value in data row 2" in missing_target
    )
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81\x00" * 20)
    assert csv_error(binary) == f"{binary}: not a UTF-8 text file, so not a CSV file"
    ragged = csv_error(write(tmp_path / "r.csv", "a,b,y\n1,2,3\n4,5,6,7,8\n"))
    assert "r.csv: cannot parse as CSV with data.delimiter=','" in ragged
    assert "data.delimiter='ab' must be a single character" in csv_error(good, delimiter="ab")


def test_csv_too_many_text_labels_for_auto(tmp_path):
    path = write(tmp_path / "t.csv", "x,y\n" + "".join(f"{i},c{i}\n" for i in range(60)))
    message = csv_error(path)
    assert "60 distinct values" in message and "data.task=classification" in message
    assert load(CsvData(path=str(path), task="classification")).n_classes == 60


# ---------------------------------------------------------------- npz


def npz_error(path: Path | str, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        load(NpzData(path=str(path), **kwargs))
    assert "\n" not in str(info.value)
    return str(info.value)


def test_npz_classification_and_regression(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(
        path,
        X=rng.normal(size=(50, 2, 3)),
        y=rng.integers(3, 8, size=50),
        t=rng.normal(size=(50, 2)),
    )
    ds = load(NpzData(path=str(path)), "float32")
    check_layout(ds, "float32")
    assert ds.task == "classification" and ds.n_classes == 5 and ds.in_dim == 6
    reg = load(NpzData(path=str(path), y_key="t"))
    check_layout(reg, "float64")
    assert reg.task == "regression" and reg.out_dim == 2


def test_npz_text_labels(tmp_path):
    path = tmp_path / "s.npz"
    np.savez(path, X=np.arange(30.0)[:, None], y=np.array(["b", "a"] * 15))
    ds = load(NpzData(path=str(path)))
    assert ds.n_classes == 2 and ds.task == "classification"


def test_npz_errors(tmp_path):
    assert "data.path is required for data=npz" in npz_error("")
    assert "no such file" in npz_error(tmp_path / "x.npz")
    path = tmp_path / "d.npz"
    np.savez(path, a=np.ones((5, 2)), b=np.ones(5))
    assert npz_error(path) == f"{path} has no array 'X' (data.x_key); arrays: a, b"
    assert "has no array 'y' (data.y_key)" in npz_error(path, x_key="a")
    np.savez(path, X=np.ones((100, 2)), y=np.arange(99))
    assert npz_error(path) == f"{path}: X has 100 rows but y has 99"
    bad = np.ones((10, 2))
    bad[4, 1] = np.nan
    np.savez(path, X=bad, y=np.arange(10) % 2)
    assert "'X' has NaN or inf (first in row 4)" in npz_error(path)
    np.savez(path, X=np.array(["a"] * 10), y=np.arange(10) % 2)
    assert "features must be numbers" in npz_error(path)
    np.savez(path, X=np.ones((10, 2)), y=np.ones(10))
    assert "single class" in npz_error(path)
    np.savez(path, X=np.ones((10, 2)), y=np.array([{"a": 1}] * 10, dtype=object))
    assert "cannot read array 'y'" in npz_error(path)
    garbage = write(tmp_path / "g.npz", "hello, not a zip")
    assert npz_error(garbage) == f"{garbage}: not a NumPy .npz archive (expected one from np.savez)"
    assert "empty file" in npz_error(write(tmp_path / "e.npz", ""))
    np.savez_compressed(path, X=np.ones((50, 2)), y=np.arange(50) % 2)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[:-40])
    assert "cut.npz: cannot read as an .npz archive" in npz_error(cut)
    single = tmp_path / "s.npy"
    np.save(single, np.ones(3))
    assert "single array (.npy)" in npz_error(single)


# ---------------------------------------------------------------- mnist


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = struct.pack(">I", (type_code << 8) | array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return header + array.astype(">u1").tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    data = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def make_mnist(folder: Path, n_train: int = 40, n_test: int = 12, gz_train: bool = True):
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, size=(n_train + n_test, 28, 28), dtype=np.uint8)
    labels = (np.arange(n_train + n_test) % 10).astype(np.uint8)
    write_idx(folder / "train-images-idx3-ubyte", images[:n_train], gz_train)
    write_idx(folder / "train-labels-idx1-ubyte", labels[:n_train], gz_train)
    write_idx(folder / "t10k-images-idx3-ubyte", images[n_train:], not gz_train)
    write_idx(folder / "t10k-labels-idx1-ubyte", labels[n_train:], False)
    return images, labels


def test_idx_reader_round_trips(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
    for gz in (False, True):
        write_idx(tmp_path / "a", array, gz)
        path = tmp_path / ("a.gz" if gz else "a")
        read = read_idx(path)
        assert read.dtype == np.uint8 and np.array_equal(read, array)


def test_idx_reader_big_endian_types(tmp_path):
    array = np.array([[1.5, -2.0], [3.25, 1e6]])
    path = tmp_path / "f"
    path.write_bytes(struct.pack(">III", 0x0E02, 2, 2) + array.astype(">f8").tobytes())
    np.testing.assert_array_equal(read_idx(path), array)


def test_mnist_reader_reads_back_pixels_and_labels(tmp_path):
    images, labels = make_mnist(tmp_path)
    X_train, y_train, X_test, y_test = read_mnist(tmp_path, None, "float64")
    assert X_train.shape == (40, 784) and X_test.shape == (12, 784)
    np.testing.assert_array_equal(X_train, images[:40].reshape(40, 784) / 255.0)
    np.testing.assert_array_equal(X_test, images[40:].reshape(12, 784) / 255.0)
    assert np.array_equal(y_train, labels[:40]) and np.array_equal(y_test, labels[40:])
    assert y_train.dtype == np.int64 and X_train.min() >= 0.0 and X_train.max() <= 1.0
    X_few, y_few, _, _ = read_mnist(tmp_path, 25, "float32")
    assert X_few.dtype == np.float32 and len(X_few) == 25 and np.array_equal(y_few, labels[:25])


def test_mnist_dataset_with_limit(tmp_path):
    make_mnist(tmp_path, gz_train=False)
    ds = load(MnistData(path=str(tmp_path), limit=30, val_fraction=0.2), "float32")
    check_layout(ds, "float32")
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (24, 6, 12)
    assert ds.in_dim == 784 and ds.n_classes == 10


def mnist_error(folder: Path | str) -> str:
    with pytest.raises(DataError) as info:
        load(MnistData(path=str(folder)))
    assert "\n" not in str(info.value)
    return str(info.value)


def test_mnist_errors(tmp_path):
    assert "data.path is required for data=mnist" in mnist_error("")
    assert "no such folder" in mnist_error(tmp_path / "absent")
    make_mnist(tmp_path)
    images = tmp_path / "train-images-idx3-ubyte.gz"
    saved = images.read_bytes()
    images.unlink()
    assert mnist_error(tmp_path) == (
        f"data.path={tmp_path}: missing MNIST file train-images-idx3-ubyte (or .gz)"
    )
    images.write_bytes(gzip.compress(b"\x12\x34\x08\x03" + bytes(20)))
    assert mnist_error(tmp_path) == f"{images}: not an IDX file (bad magic number 0x12340803)"
    images.write_bytes(saved[: len(saved) // 2])
    assert f"{images}: corrupt gzip file" in mnist_error(tmp_path)
    images.write_bytes(gzip.compress(gzip.decompress(saved)[:-10]))
    assert "the IDX header says 40 x 28 x 28" in mnist_error(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((39, 28, 28), np.uint8), gz=True)
    message = mnist_error(tmp_path)
    assert "train-labels-idx1-ubyte.gz has 40 labels but" in message and "39 images" in message
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((40, 0, 0), np.uint8), gz=True)
    assert mnist_error(tmp_path).endswith("train-images-idx3-ubyte.gz: its images are 0 x 0 pixels")


# ---------------------------------------------------------------- dispatch


def test_load_dataset_rejects_non_float_dtype():
    with pytest.raises(ValueError, match="float"):
        load(SpiralsData(n_per_class=10), "int32")


def test_paths_that_are_not_plain_files_are_one_line(tmp_path):
    """A FIFO blocked the read for ever; a name too long was an OSError traceback."""
    import os

    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    assert (
        csv_error(fifo)
        == f"data.path={fifo}: not a regular file (expected a CSV file with a header row)"
    )
    long = tmp_path / ("x" * 300 + ".csv")
    assert "cannot read (File name too long)" in csv_error(long)
