"""Training robustness: SIGKILL mid-epoch then --resume equals an uninterrupted run; atomic checkpoint and result
files. (That a NaN loss stops and keeps the last good checkpoint is tests/test_train_runner.py.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from spikepipe import io as sp_io
from spikepipe.train import checkpoint

TINY = ["train", "--network", "snn-mlp", "--dataset", "digits", "--epochs", "3", "--limit-train", "800",
        "--batch", "16", "--timesteps", "2", "--seed", "3", "--threads", "1", "--no-progress", "--json"]


def _spikepipe(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "spikepipe", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _assert_same(a, b, where="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _untimed(obj):
    if isinstance(obj, dict):
        return {k: _untimed(v) for k, v in obj.items() if not k.endswith(("_s", "seconds", "wall", "time"))}
    if isinstance(obj, list):
        return [_untimed(v) for v in obj]
    return obj


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    ref = _spikepipe([*TINY, "--out", str(clean)], tmp_path)
    proc = _spikepipe([*TINY, "--out", str(killed)], tmp_path)
    ck = killed / "checkpoint.pt"
    deadline = time.monotonic() + 300
    while not ck.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    first_epoch = torch.load(ck, weights_only=True)["epoch"] if ck.exists() else None
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed: make TINY bigger"
    assert first_epoch == 1
    assert not (killed / "result.json").exists()
    # SIGKILL can land inside write_atomic: a stray .*.tmp may remain, but every named file is whole
    for f in killed.glob("*.json"):
        json.loads(f.read_text())
    resumed = subprocess.run([sys.executable, "-m", "spikepipe", *TINY, "--out", str(killed), "--resume"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    out, err = ref.communicate(timeout=600)
    assert ref.returncode == 0, err
    _assert_same(torch.load(killed / "checkpoint.pt", weights_only=True)["trainer"],
                 torch.load(clean / "checkpoint.pt", weights_only=True)["trainer"])
    assert _untimed(json.loads(resumed.stdout)) == _untimed(json.loads(out))


# ---------------------------------------------------------------- atomic writes


def _save(path: Path, epoch: int) -> None:
    checkpoint.save(path, config={"x": 1}, epoch=epoch, trainer_state={"w": torch.full((4,), float(epoch))},
                    history=[{"epoch": epoch}])


@pytest.mark.parametrize("crash_in", ["write", "fsync", "replace"])
def test_crash_while_writing_keeps_the_previous_good_file(tmp_path, monkeypatch, crash_in):
    ck = tmp_path / "checkpoint.pt"
    res = tmp_path / "result.json"
    _save(ck, 1)
    sp_io.write_json(res, {"epoch": 1})
    good_ck, good_res = ck.read_bytes(), res.read_bytes()

    class Crash(RuntimeError):
        pass

    def boom(*a, **k):
        raise Crash("simulated crash")

    if crash_in == "write":
        real_fdopen = os.fdopen

        def fdopen(fd, mode="r", *a, **k):
            fh = real_fdopen(fd, mode, *a, **k)
            if "w" in mode:  # write half the payload, then die
                real_write = fh.write

                def write(data):
                    real_write(data[: len(data) // 2])
                    raise Crash("simulated crash mid-write")
                fh.write = write
            return fh

        monkeypatch.setattr(sp_io.os, "fdopen", fdopen)
    else:
        monkeypatch.setattr(sp_io.os, crash_in, boom)
    with pytest.raises(Crash):
        _save(ck, 2)
    with pytest.raises(Crash):
        sp_io.write_json(res, {"epoch": 2})
    monkeypatch.undo()
    assert ck.read_bytes() == good_ck and res.read_bytes() == good_res
    assert torch.load(ck, weights_only=True)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "result.json"]  # no temp files left


def test_crash_while_writing_the_first_file_leaves_none(tmp_path, monkeypatch):
    monkeypatch.setattr(sp_io.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(OSError):
        sp_io.write_json(tmp_path / "result.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []
