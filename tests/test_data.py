"""Data loading: the IDX reader against hand-written files, errors for missing or damaged data, splits, encoders."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from spikepipe.train.data import (
    DEFAULT_FASHION_DIR,
    DatasetFormatError,
    DatasetNotFoundError,
    batch_order,
    load_digits,
    load_fashion_mnist,
    read_idx,
)
from spikepipe.train.encoders import EncoderError, encode


def idx_bytes(arr: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}[arr.dtype]
    return struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_fake_fashion(d, n_train=40, n_test=10, gz=False, truncate=None):
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, arr in files.items():
        raw = idx_bytes(arr)
        if truncate == name:
            raw = raw[:-7]
        (d / (name + (".gz" if gz else ""))).write_bytes(gzip.compress(raw) if gz else raw)
    return files


@pytest.mark.parametrize("shape,dtype", [((5,), np.uint8), ((3, 4, 2), np.uint8), ((2, 3), ">i4")])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip(tmp_path, shape, dtype, gz):
    arr = np.arange(int(np.prod(shape))).astype(dtype).reshape(shape)
    p = tmp_path / ("a.idx.gz" if gz else "a.idx")
    p.write_bytes(gzip.compress(idx_bytes(arr)) if gz else idx_bytes(arr))
    np.testing.assert_array_equal(read_idx(p), arr)


@pytest.mark.parametrize("damage", ["truncated", "bad-magic", "short", "bad-gzip"])
def test_idx_damage_is_a_clear_error(tmp_path, damage):
    raw = idx_bytes(np.zeros((4, 3), np.uint8))
    p = tmp_path / ("x.gz" if damage == "bad-gzip" else "x")
    p.write_bytes({"truncated": raw[:-1], "bad-magic": b"\x01\x02" + raw[2:], "short": raw[:2],
                   "bad-gzip": gzip.compress(raw)[:-5]}[damage])
    with pytest.raises(DatasetFormatError, match=r"truncated|not an IDX|corrupt"):
        read_idx(p)


@pytest.mark.parametrize("gz", [False, True])
def test_fashion_from_a_data_dir(tmp_path, gz):
    files = write_fake_fashion(tmp_path, gz=gz)
    ds = load_fashion_mnist(tmp_path, val_size=8)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (32, 8, 10)
    assert ds.train.x.shape[1:] == (1, 28, 28) and ds.train.x.dtype == torch.float32
    assert float(ds.test.x.max()) <= 1.0
    np.testing.assert_array_equal(ds.test.y.numpy(), files["t10k-labels-idx1-ubyte"])
    # train + val is a permutation of the original training set (same multiset of labels)
    both = np.sort(np.concatenate([ds.train.y.numpy(), ds.val.y.numpy()]))
    np.testing.assert_array_equal(both, np.sort(files["train-labels-idx1-ubyte"]))


def test_missing_fashion_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist.*--data-dir"):
        load_fashion_mnist(tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)  # exists but empty


def test_truncated_fashion_file_is_reported(tmp_path):
    write_fake_fashion(tmp_path, truncate="t10k-images-idx3-ubyte")
    with pytest.raises(DatasetFormatError, match="t10k-images.*truncated"):
        load_fashion_mnist(tmp_path, val_size=8)


@pytest.mark.skipif(not DEFAULT_FASHION_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist():
    ds = load_fashion_mnist()
    assert (len(ds.train), len(ds.val), len(ds.test)) == (55000, 5000, 10000)
    assert sorted(torch.bincount(ds.test.y).tolist()) == [1000] * 10  # the official test set is balanced


def test_digits_split_is_deterministic_and_disjoint():
    a, b = load_digits(), load_digits()
    for s in ("train", "val", "test"):
        assert torch.equal(getattr(a, s).x, getattr(b, s).x)
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    rows = {tuple(r.flatten().tolist()) for r in a.test.x}
    # the digits data has a few exact duplicate images; disjointness is checked on indices via counts instead
    assert len(a.test) == 359 and len(a.val) == 180 and len(rows) > 300
    assert float(a.train.x.max()) == 1.0


def test_batch_order_depends_on_seed_and_epoch_only():
    a = batch_order(100, 16, seed=3, epoch=2)
    assert [t.tolist() for t in a] == [t.tolist() for t in batch_order(100, 16, seed=3, epoch=2)]
    assert [t.tolist() for t in a] != [t.tolist() for t in batch_order(100, 16, seed=3, epoch=3)]
    assert len(a) == 6 and len(set(torch.cat(a).tolist())) == 96


def test_encoders():
    x = torch.rand(5, 1, 4, 4)
    d = encode("direct", x, 6)
    assert d.shape == (6, 5, 1, 4, 4) and torch.equal(d[3], x)
    r1, r2, r3 = (encode("rate", x, 200, seed=s) for s in (1, 1, 2))
    assert torch.equal(r1, r2) and not torch.equal(r1, r3)
    assert set(r1.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(r1.mean(0), x, atol=0.15, rtol=0)  # spike rate ~ intensity
    with pytest.raises(EncoderError, match="unknown encoder"):
        encode("latency", x, 2)


def test_digits_are_sklearns_without_importing_sklearn():
    """Oracle: sklearn.datasets.load_digits. The loader reads sklearn's CSV without importing the package (3 to 4 s
    of scipy), checked in a fresh interpreter."""
    import subprocess
    import sys

    from sklearn.datasets import load_digits as sk_digits

    from spikepipe.train.data import _sklearn_digits

    images, target = _sklearn_digits()
    ref = sk_digits()
    assert np.array_equal(images, ref.images) and np.array_equal(target, ref.target)
    code = ("import sys; from spikepipe.train.data import load_digits; d = load_digits(); "
            "print(len(d.train.y) + len(d.val.y) + len(d.test.y), 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(len(ref.target)), "False"]
