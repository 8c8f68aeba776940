"""`spikepipe train` on users' own models and users' own data: .npz sets (memory-mapped, held-out validation,
binned events), SpikingJelly and snnTorch models through the CLI with pipedream and spikepipe schedules, and the
outputs (result.json, metrics, checkpoint, model.pt that loads into the user's module)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from spikepipe.cli import main
from spikepipe.train.data import load_npz
from spikepipe.training import TrainConfig, run

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "experiments" / "train_user_models" / "models.py"
FASHION = Path("/usr/share/datasets/fashion-mnist")


def quadrants(n: int, seed: int, events: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """28x28 images whose class (0..3) is the bright quadrant: learnable in a few steps. With events=T, samples
    are [T, 1, 28, 28] with the bright quadrant flickering (binned event data)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    shape = (n, events, 1, 28, 28) if events else (n, 1, 28, 28)
    x = (rng.random(shape) * 60).astype(np.uint8)
    for i, c in enumerate(y):
        r, col = divmod(int(c), 2)
        x[i, ..., 14 * r:14 * r + 14, 14 * col:14 * col + 14] += 180
    return x, y


def write_set(path: Path, n_train: int = 256, n_test: int = 64, events: int = 0, val: bool = False,
              compressed: bool = False) -> Path:
    xtr, ytr = quadrants(n_train, 1, events)
    xte, yte = quadrants(n_test, 2, events)
    arrays = dict(x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    if val:
        arrays.update(zip(("x_val", "y_val"), quadrants(32, 3, events), strict=True))
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_is_memory_mapped_and_read_exactly(tmp_path, compressed):
    path = write_set(tmp_path / "set.npz", compressed=compressed, val=True)
    ds = load_npz(path)
    assert isinstance(ds.train.x, np.memmap) != compressed  # stored arrays are mapped, compressed ones read
    with np.load(path) as f:
        want = torch.from_numpy(f["x_train"][[3, 0, 7]].astype(np.float32) / 255.0)
        assert ds.num_classes == 4 and ds.sample_shape == (1, 28, 28)
        assert torch.equal(ds.train.y, torch.from_numpy(f["y_train"].astype(np.int64)))
        assert len(ds.val) == 32
    assert torch.equal(ds.train.take(torch.tensor([3, 0, 7])), want)


def test_npz_without_val_holds_out_a_fixed_disjoint_part(tmp_path):
    path = write_set(tmp_path / "set.npz", n_train=300)
    a, b = load_npz(path), load_npz(path)
    assert len(a.val) == 30 and len(a.train) == 270
    assert np.array_equal(a.val.rows, b.val.rows)
    assert not set(a.val.rows) & set(a.train.rows)
    with np.load(path) as f:
        assert torch.equal(a.val.take(slice(0, 5)), torch.from_numpy(f["x_train"][a.val.rows[:5]] / np.float32(255)))


def _cli(argv: list[str], capsys) -> dict:
    assert main([*argv, "--no-progress", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("model,schedule,processors", [("spikingjelly_cnn", "pipedream", 3),
                                                       ("snntorch_cnn", "spikepipe", 3)])
def test_user_model_learns_on_user_npz_with_the_schedules_delays(tmp_path, capsys, model, schedule, processors):
    pytest.importorskip("spikingjelly" if model.startswith("spikingjelly") else "snntorch")
    data = write_set(tmp_path / "quadrants.npz")
    out = tmp_path / "run"
    res = _cli(["train", "--network", f"{MODELS}:{model}", "--dataset", str(data), "--schedule", schedule,
                "--processors", str(processors), "--epochs", "2", "--batch", "16", "--lr", "3e-3",
                "--out", str(out)], capsys)
    assert res["measured_delays"] == res["gradient_delays"] and max(res["gradient_delays"]) > 0
    assert res["test_accuracy"] > 0.6  # chance is 0.25
    for name in ("result.json", "metrics.json", "metrics.csv", "checkpoint.pt", "model.pt"):
        assert (out / name).is_file(), name
    # by path, under its own name: another helper module called `models` (frontend_bench) may be imported already
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_user_models", MODELS)
    user_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(user_models)
    net, _ = getattr(user_models, model)()
    state = torch.load(out / "model.pt", weights_only=True)
    net.load_state_dict(state)  # the user's own module takes the trained weights as they are
    assert not torch.equal(state[next(iter(state))], getattr(user_models, model)()[0].state_dict()[next(iter(state))])


def test_binned_event_data_sets_the_timesteps(tmp_path):
    pytest.importorskip("spikingjelly")
    data = write_set(tmp_path / "events.npz", n_train=64, n_test=32, events=3)
    res = run(TrainConfig(network=f"{MODELS}:spikingjelly_cnn", dataset=str(data), schedule="pipedream",
                          processors=2, epochs=1, batch=16))
    assert res["timesteps"] == 3
    assert res["measured_delays"] == res["gradient_delays"]


def test_method_on_a_loop_in_forward_module_is_one_clear_error(tmp_path, capsys):
    """The snnTorch tutorial model runs its time loop inside forward: a method cannot step it (the SpikingJelly
    Sequential it mirrors can: tests/test_methods_user.py)."""
    pytest.importorskip("snntorch")
    data = write_set(tmp_path / "q.npz", n_train=32, n_test=16)
    rc = main(["train", "--network", f"{MODELS}:snntorch_cnn", "--method", "ttl", "--no-progress", "--batch", "8",
               "--dataset", str(data)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "own time loop inside forward" in err[0]


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
@pytest.mark.parametrize("model", ["spikingjelly_cnn", "snntorch_cnn"])
@pytest.mark.parametrize("schedule", ["pipedream", "spikepipe"])
def test_user_models_learn_fashion_mnist(capsys, model, schedule):
    pytest.importorskip("spikingjelly" if model.startswith("spikingjelly") else "snntorch")
    res = _cli(["train", "--network", f"{MODELS}:{model}", "--dataset", "fashion-mnist", "--schedule", schedule,
                "--processors", "3", "--epochs", "1", "--batch", "32", "--lr", "2e-3", "--limit-train", "1600",
                "--limit-val", "500", "--limit-test", "2000"], capsys)
    assert res["measured_delays"] == res["gradient_delays"] and max(res["gradient_delays"]) > 0
    assert res["test_accuracy"] > 0.4  # chance 0.1; 50 steps of 32 images


@pytest.mark.parametrize("schedule,stash", [("none", True), ("pipedream", True), ("spikepipe", False)])
def test_resume_of_a_user_model_is_bit_identical(tmp_path, schedule, stash):
    """SpikingJelly with BatchNorm: weights, optimiser state and running statistics all survive a resume."""
    pytest.importorskip("spikingjelly")
    data = write_set(tmp_path / "q.npz", n_train=96, n_test=32)
    common = dict(network=f"{MODELS}:spikingjelly_cnn", dataset=str(data), schedule=schedule, processors=2,
                  batch=16, stash=stash)
    whole = run(TrainConfig(**common, epochs=2, out=str(tmp_path / "whole")))
    with pytest.raises(_Interrupted):
        run(TrainConfig(**common, epochs=2, out=str(tmp_path / "cut")), progress=_StopAfter(1))
    resumed = run(TrainConfig(**common, epochs=2, out=str(tmp_path / "cut"), resume=True))
    def timeless(h: list[dict]) -> list[dict]:
        return [{k: v for k, v in row.items() if "seconds" not in k} for row in h]

    assert resumed["test_loss"] == whole["test_loss"]
    assert timeless(resumed["history"]) == timeless(whole["history"])
    a = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class _Interrupted(Exception):
    pass


class _StopAfter:
    """A progress hook that interrupts the run after `epochs` epochs (their checkpoint is written first)."""

    def __init__(self, epochs: int) -> None:
        self.epochs, self.done = epochs, 0

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        if epoch >= self.epochs:
            raise _Interrupted

    def batch_done(self) -> None:
        pass

    def epoch_end(self, row: dict) -> None:
        pass
