"""Datasets for training: Fashion-MNIST from its original IDX files (or any directory of IDX files in its layout),
scikit-learn's bundled 8x8 digits, and the user's own data as a .npz file.

Fashion-MNIST and digits are held in memory as float tensors (Fashion-MNIST is 55 MB as uint8). A .npz file holds
x_train, y_train, x_test, y_test and optionally x_val, y_val; saved uncompressed (np.savez) its inputs are
memory-mapped straight out of the archive, so a set of a few GB is read minibatch by minibatch and never held
twice (np.savez_compressed files must be decompressed into memory). uint8 inputs are scaled to [0, 1], other
inputs are used as they are. Splits are deterministic: they depend on a fixed split seed, never on the training
seed, so every run of an experiment sees the same train/validation/test samples.
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikepipe.ir import SpikePipeError

log = logging.getLogger(__name__)

DEFAULT_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
DATASETS = ("digits", "fashion-mnist")
SPLIT_SEED = 20240601  # fixed: the split must not move with the training seed

_IDX_TYPES = {0x08: (np.uint8, 1), 0x09: (np.int8, 1), 0x0B: (">i2", 2), 0x0C: (">i4", 4),
              0x0D: (">f4", 4), 0x0E: (">f8", 8)}


class DatasetError(SpikePipeError):
    """A dataset is missing, unknown or malformed."""


class DatasetNotFoundError(DatasetError):
    """The dataset files are not where we looked."""


class DatasetFormatError(DatasetError):
    """A dataset file is truncated or not in the expected format."""


@dataclass(frozen=True)
class Split:
    """Samples with shape [N, *sample_shape], labels as int64 [N]. `x` is a float32 tensor, or a numpy array
    (possibly memory-mapped) read on demand: sample i is x[rows[i]] (x[i] without rows) divided by `divisor`."""

    x: Any
    y: torch.Tensor
    rows: np.ndarray | None = None
    divisor: float = 1.0

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def take(self, idx: torch.Tensor | slice) -> torch.Tensor:
        """The samples idx (indices into this split) as a float32 tensor."""
        if isinstance(self.x, torch.Tensor) and self.rows is None:
            return self.x[idx]
        i = np.arange(len(self))[idx] if isinstance(idx, slice) else np.asarray(idx)
        if self.rows is not None:
            i = self.rows[i]
        a = np.asarray(self.x[i], dtype=np.float32)
        return torch.from_numpy(a / np.float32(self.divisor) if self.divisor != 1.0 else a)

    def head(self, n: int | None) -> Split:
        """The first n samples (all if n is None)."""
        if n is None:
            return self
        if isinstance(self.x, torch.Tensor) and self.rows is None:
            return Split(self.x[:n], self.y[:n])
        rows = self.rows if self.rows is not None else np.arange(len(self))
        return Split(self.x, self.y[:n], rows[:n], self.divisor)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x.shape[1:])


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    sample_shape: tuple[int, ...]

    def reshaped(self, shape: tuple[int, ...]) -> Dataset:
        """The same data with every sample reshaped to `shape` (e.g. (64,) for an MLP, (1, 8, 8) for a CNN)."""
        n = int(np.prod(shape))
        if n != int(np.prod(self.sample_shape)):
            raise DatasetError(f"{self.name} samples have shape {self.sample_shape} ({int(np.prod(self.sample_shape))} "
                               f"values) but the network expects {shape} ({n}); pick a network built for {self.name}")

        def r(s: Split) -> Split:
            return Split(s.x.reshape(s.x.shape[0], *shape), s.y, s.rows, s.divisor)

        return Dataset(self.name, r(self.train), r(self.val), r(self.test), self.num_classes, tuple(shape))


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into a numpy array; clear errors on truncation."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DatasetNotFoundError(f"IDX file {path} not found") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetFormatError(f"{path}: cannot decompress ({exc}); the file is truncated or corrupt, "
                                 f"re-download it") from None
    if len(raw) < 4:
        raise DatasetFormatError(f"{path}: {len(raw)} bytes, too short for an IDX header; the file is truncated")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code not in _IDX_TYPES or ndim == 0:
        raise DatasetFormatError(f"{path}: not an IDX file (bad magic {raw[:4].hex()})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetFormatError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype, size = _IDX_TYPES[dtype_code]
    expected = header + int(np.prod(dims)) * size
    if len(raw) != expected:
        raise DatasetFormatError(f"{path}: IDX header says {dims} ({expected} bytes) but the file has {len(raw)} "
                                 f"bytes; the file is truncated or corrupt, re-download it")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _find(directory: Path, stem: str) -> Path:
    for cand in (directory / stem, directory / f"{stem}.gz"):
        if cand.is_file():
            return cand
    raise DatasetNotFoundError(
        f"Fashion-MNIST file {stem}[.gz] not found in {directory}; install it with "
        f"`apt-get install dataset-fashion-mnist` (files go to {DEFAULT_FASHION_DIR}) or pass --data-dir DIR "
        f"holding the original IDX files")


def _split_train_val(x: torch.Tensor, y: torch.Tensor, val: int) -> tuple[Split, Split]:
    perm = torch.from_numpy(np.random.default_rng(SPLIT_SEED).permutation(len(y)))
    return Split(x[perm[val:]], y[perm[val:]]), Split(x[perm[:val]], y[perm[:val]])


def load_fashion_mnist(data_dir: str | Path | None = None, *, val_size: int = 5000,
                       limit_train: int | None = None) -> Dataset:
    """Fashion-MNIST: 60000 training images split into train and a held-out validation set, 10000 test images."""
    directory = Path(data_dir) if data_dir is not None else DEFAULT_FASHION_DIR
    if not directory.is_dir():
        raise DatasetNotFoundError(
            f"Fashion-MNIST directory {directory} does not exist; install the data with "
            f"`apt-get install dataset-fashion-mnist` or pass --data-dir DIR holding the original IDX files")
    arrays = {}
    for key, stem in (("xtr", "train-images-idx3-ubyte"), ("ytr", "train-labels-idx1-ubyte"),
                      ("xte", "t10k-images-idx3-ubyte"), ("yte", "t10k-labels-idx1-ubyte")):
        arrays[key] = read_idx(_find(directory, stem))
    for xs, ys in (("xtr", "ytr"), ("xte", "yte")):
        if arrays[xs].ndim != 3 or arrays[ys].ndim != 1 or arrays[xs].shape[0] != arrays[ys].shape[0]:
            raise DatasetFormatError(f"Fashion-MNIST in {directory}: images {arrays[xs].shape} and labels "
                                     f"{arrays[ys].shape} do not match")
        if arrays[ys].size and int(arrays[ys].max()) > 9:
            raise DatasetFormatError(f"Fashion-MNIST in {directory}: label {int(arrays[ys].max())} out of range 0..9")

    def as_x(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.float32) / 255.0).unsqueeze(1)  # [N, 1, 28, 28]

    x, y = as_x(arrays["xtr"]), torch.from_numpy(arrays["ytr"].astype(np.int64))
    if not 0 < val_size < len(y):
        raise DatasetError(f"validation size {val_size} must be between 1 and {len(y) - 1}")
    train, val = _split_train_val(x, y, val_size)
    if limit_train is not None:
        train = Split(train.x[:limit_train], train.y[:limit_train])
    test = Split(as_x(arrays["xte"]), torch.from_numpy(arrays["yte"].astype(np.int64)))
    log.info("fashion-mnist from %s: %d train, %d val, %d test", directory, len(train), len(val), len(test))
    return Dataset("fashion-mnist", train, val, test, 10, (1, 28, 28))


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits' images [N, 8, 8] (0 to 16) and labels, read from the CSV scikit-learn ships: importing
    sklearn (scipy.stats) takes 2.5 to 4 s of every training run on the digits; find_spec locates the
    package without running it. Through sklearn.datasets.load_digits when the file is not where it used to be."""
    spec = importlib.util.find_spec("sklearn")
    files = [Path(r) / "datasets" / "data" / "digits.csv.gz" for r in (spec and spec.submodule_search_locations or ())]
    csv = next((p for p in files if p.is_file()), None)
    if csv is None:
        from sklearn.datasets import load_digits as sk_digits

        d = sk_digits()
        return d.images, d.target
    data = np.loadtxt(csv, delimiter=",")  # 64 pixels then the label per row, as sklearn reads it
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)


def load_digits(*, val_fraction: float = 0.1, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 samples), split deterministically into train/val/test."""
    images, target = _sklearn_digits()
    x = torch.from_numpy((images / 16.0).astype(np.float32)).unsqueeze(1)  # [N, 1, 8, 8]
    y = torch.from_numpy(target.astype(np.int64))
    n = len(y)
    perm = torch.from_numpy(np.random.default_rng(SPLIT_SEED).permutation(n))
    n_test, n_val = int(round(n * test_fraction)), int(round(n * val_fraction))
    te, va, tr = perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]
    return Dataset("digits", Split(x[tr], y[tr]), Split(x[va], y[va]), Split(x[te], y[te]), 10, (1, 8, 8))


_NPZ_REQUIRED = ("x_train", "y_train", "x_test", "y_test")


def _npz_member(path: Path, zf: zipfile.ZipFile, key: str) -> np.ndarray:
    """One array of a .npz: memory-mapped where it is stored uncompressed, else read into memory."""
    info = zf.getinfo(f"{key}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        log.info("%s: %s is compressed; reading it into memory", path, key)
        with zf.open(info) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    with path.open("rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if local[:4] != b"PK\x03\x04":
            raise DatasetFormatError(f"{path}: damaged zip entry {key}")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        shape, fortran, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                 else np.lib.format.read_array_header_2_0(f))
        offset = f.tell()
    if dtype.hasobject:
        raise DatasetFormatError(f"{path}: {key} holds Python objects; save plain numeric arrays")
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, order="F" if fortran else "C", offset=offset)


def load_npz(path: str | Path, *, val_size: int = 5000) -> Dataset:
    """The user's data set: x_train, y_train, x_test, y_test (and optionally x_val, y_val) in one .npz file.
    Without x_val, a deterministic 10% of the training samples (at most val_size) is held out for validation."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"data set file {path} not found")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetFormatError(f"{path}: not a .npz archive ({exc}); save it with numpy.savez") from None
    with zf:
        keys = {n[:-4] for n in zf.namelist() if n.endswith(".npy")}
        missing = [k for k in _NPZ_REQUIRED if k not in keys]
        if missing:
            raise DatasetFormatError(f"{path} has no array {', '.join(missing)}; a data set .npz needs "
                                     f"{', '.join(_NPZ_REQUIRED)} (and optionally x_val, y_val); it has "
                                     f"{', '.join(sorted(keys)) or 'no arrays'}")
        if ("x_val" in keys) != ("y_val" in keys):
            raise DatasetFormatError(f"{path} has only one of x_val and y_val; give both or neither")
        names = ["train", "test"] + (["val"] if "x_val" in keys else [])
        try:
            arrays = {k: _npz_member(path, zf, k) for n in names for k in (f"x_{n}", f"y_{n}")}
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise DatasetFormatError(f"{path}: cannot read its arrays ({exc})") from None
    shape = arrays["x_train"].shape[1:]
    splits: dict[str, tuple[np.ndarray, torch.Tensor]] = {}
    for n in names:
        x, y = arrays[f"x_{n}"], arrays[f"y_{n}"]
        if x.ndim < 2 or x.dtype.kind not in "biuf":
            raise DatasetFormatError(f"{path}: x_{n} has shape {x.shape} and dtype {x.dtype}; inputs must be "
                                     f"numeric [N, ...] arrays")
        if x.shape[1:] != shape:
            raise DatasetFormatError(f"{path}: x_{n} samples have shape {x.shape[1:]}, x_train's have {shape}")
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise DatasetFormatError(f"{path}: y_{n} has shape {y.shape} and dtype {y.dtype}; labels must be a "
                                     f"1-D integer array")
        if len(y) != len(x):
            raise DatasetFormatError(f"{path}: x_{n} has {len(x)} samples but y_{n} has {len(y)} labels")
        if len(y) == 0:
            raise DatasetFormatError(f"{path}: the {n} split is empty")
        labels = torch.from_numpy(np.array(y, dtype=np.int64))  # a copy: labels are small, and writable
        if int(labels.min()) < 0:
            raise DatasetFormatError(f"{path}: y_{n} has the negative label {int(labels.min())}")
        splits[n] = (x, labels)
    divisor = 255.0 if arrays["x_train"].dtype == np.uint8 else 1.0
    x, y = splits["train"]
    if "val" in splits:
        train = Split(x, y, None, divisor)
        val = Split(splits["val"][0], splits["val"][1], None, divisor)
    else:
        n_val = min(val_size, len(y) // 10)
        if n_val < 1:
            raise DatasetFormatError(f"{path}: {len(y)} training samples are too few to hold out a validation "
                                     f"set; add x_val and y_val")
        perm = np.random.default_rng(SPLIT_SEED).permutation(len(y))
        tr, va = np.sort(perm[n_val:]), np.sort(perm[:n_val])
        train, val = Split(x, y[tr], tr, divisor), Split(x, y[va], va, divisor)
    test = Split(splits["test"][0], splits["test"][1], None, divisor)
    classes = 1 + max(int(s.y.max()) for s in (train, val, test))
    log.info("%s: %d train, %d val, %d test samples of shape %s", path, len(train), len(val), len(test), shape)
    return Dataset(path.stem, train, val, test, classes, tuple(int(d) for d in shape))


def load_dataset(name: str, data_dir: str | Path | None = None, **options: object) -> Dataset:
    """A named data set (digits, fashion-mnist), a .npz file, or a directory of IDX files in Fashion-MNIST's
    layout (train-images-idx3-ubyte[.gz], ...)."""
    if name == "digits":
        return load_digits()
    if name == "fashion-mnist":
        return load_fashion_mnist(data_dir, **options)  # type: ignore[arg-type]
    if name.endswith(".npz"):
        return load_npz(name)
    if Path(name).is_dir():
        return load_fashion_mnist(name, **options)  # type: ignore[arg-type]
    raise DatasetError(f"unknown dataset {name!r}; give {', '.join(DATASETS)}, a FILE.npz or a directory of IDX "
                       f"files")


def batch_order(n: int, batch: int, *, seed: int, epoch: int, drop_last: bool = True) -> list[torch.Tensor]:
    """Shuffled minibatch indices of one epoch, a pure function of (seed, epoch): resuming reproduces them."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    stop = (n // batch) * batch if drop_last else n
    if stop == 0:
        raise DatasetError(f"batch size {batch} is larger than the {n} training samples; use a smaller --batch")
    return [perm[i:i + batch] for i in range(0, stop, batch)]
