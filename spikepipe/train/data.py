"""Datasets for training: Fashion-MNIST from its original IDX files and scikit-learn's bundled 8x8 digits.

Everything is held in memory as uint8/float tensors (Fashion-MNIST is 55 MB as uint8). Splits are deterministic:
they depend on a fixed split seed, never on the training seed, so every run of an experiment sees the same
train/validation/test samples.
"""

from __future__ import annotations

import gzip
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

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
    """Samples as float32 in [0, 1] with shape [N, *sample_shape], labels as int64 [N]."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


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
            return Split(s.x.reshape(len(s), *shape), s.y)

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


def load_digits(*, val_fraction: float = 0.1, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 samples), split deterministically into train/val/test."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.from_numpy((d.images / 16.0).astype(np.float32)).unsqueeze(1)  # [N, 1, 8, 8]
    y = torch.from_numpy(d.target.astype(np.int64))
    n = len(y)
    perm = torch.from_numpy(np.random.default_rng(SPLIT_SEED).permutation(n))
    n_test, n_val = int(round(n * test_fraction)), int(round(n * val_fraction))
    te, va, tr = perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]
    return Dataset("digits", Split(x[tr], y[tr]), Split(x[va], y[va]), Split(x[te], y[te]), 10, (1, 8, 8))


def load_dataset(name: str, data_dir: str | Path | None = None, **options: object) -> Dataset:
    if name == "digits":
        return load_digits()
    if name == "fashion-mnist":
        return load_fashion_mnist(data_dir, **options)  # type: ignore[arg-type]
    raise DatasetError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")


def batch_order(n: int, batch: int, *, seed: int, epoch: int, drop_last: bool = True) -> list[torch.Tensor]:
    """Shuffled minibatch indices of one epoch, a pure function of (seed, epoch): resuming reproduces them."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    stop = (n // batch) * batch if drop_last else n
    if stop == 0:
        raise DatasetError(f"batch size {batch} is larger than the {n} training samples; use a smaller --batch")
    return [perm[i:i + batch] for i in range(0, stop, batch)]
