"""Whole runs: resume is bit-identical, the same seed gives the same result, a diverging run stops cleanly."""

from __future__ import annotations

import json

import pytest
import torch
from test_train_pipeline import layerpipe_hand
from train_nets import TinySNN

from spikepipe.train.bptt import NonFiniteLossError
from spikepipe.train.checkpoint import CheckpointError
from spikepipe.training import TrainConfig, run


def model(seed=0):
    return TinySNN(seed=seed, timesteps=3, inputs=64, hidden=24, classes=10), torch.zeros(3, 1, 64)


def cfg(**kw):
    base = dict(network="tiny", dataset="digits", epochs=3, batch=32, limit_train=320, lr=0.01,
                encoder="rate", eval_batch=128)
    base.update(kw)
    return TrainConfig(**base)


class Stop(Exception):
    pass


class Hook:
    def __init__(self, stop_at=None, on_start=None):
        self.stop_at, self.on_start, self.batches = stop_at, on_start, 0

    def epoch_start(self, epoch, epochs, batches):
        if self.on_start:
            self.on_start(epoch)
        self.epoch = epoch

    def batch_done(self):
        self.batches += 1
        if self.stop_at is not None and self.epoch == self.stop_at and self.batches % 10 == 3:
            raise Stop

    def epoch_end(self, row):
        pass


def strip(res):
    res = dict(res)
    res["history"] = [{k: v for k, v in r.items() if k not in ("seconds", "step_seconds")} for r in res["history"]]
    res.pop("step_seconds")
    return res


@pytest.mark.parametrize("pipelined", [False, True])
def test_resume_is_bit_identical(tmp_path, pipelined):
    sched = layerpipe_hand(3) if pipelined else None
    full = run(cfg(out=str(tmp_path / "a")), model=model(), schedule=sched)
    with pytest.raises(Stop):
        run(cfg(out=str(tmp_path / "b")), model=model(), schedule=sched, progress=Hook(stop_at=1))
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["epochs"][-1]["epoch"] == 1
    net, ex = model()
    resumed = run(cfg(out=str(tmp_path / "b"), resume=True), model=(net, ex), schedule=sched)
    assert strip(resumed) == strip(full)
    ref_net, _ = model()
    run(cfg(out=str(tmp_path / "c")), model=(ref_net, ex), schedule=sched)
    for p, q in zip(net.parameters(), ref_net.parameters(), strict=True):
        assert torch.equal(p, q)
    for name in ("metrics.csv", "curves.png", "checkpoint.pt", "result.json"):
        assert (tmp_path / "b" / name).is_file()
    if pipelined:
        assert full["gradient_delays"] == full["measured_delays"] == [4, 2, 0]


def test_resume_with_other_settings_is_refused(tmp_path):
    run(cfg(out=str(tmp_path), epochs=1), model=model())
    with pytest.raises(CheckpointError, match="lr=0.01.*lr=0.02"):
        run(cfg(out=str(tmp_path), epochs=1, lr=0.02, resume=True), model=model())
    with pytest.raises(CheckpointError, match="no checkpoint"):
        run(cfg(out=str(tmp_path / "empty"), resume=True), model=model())


def test_same_seed_same_accuracy_other_seed_differs():
    a = run(cfg(epochs=2, seed=5), model=model(5))
    b = run(cfg(epochs=2, seed=5), model=model(5))
    c = run(cfg(epochs=2, seed=6), model=model(6))
    assert strip(a) == strip(b)
    assert a["history"] != c["history"]
    assert a["test_accuracy"] > 0.3  # it learns something in 2 short epochs (chance is 0.1)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    net, ex = model()

    def poison(epoch):
        if epoch == 1:
            net.blocks[2].gain = float("nan")  # the readout: spikes would swallow nan

    with pytest.raises(NonFiniteLossError, match=r"loss is nan.*epoch 2.*last good checkpoint.*after epoch 1"):
        run(cfg(out=str(tmp_path)), model=(net, ex), progress=Hook(on_start=poison))
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ck["epoch"] == 1
    assert all(torch.isfinite(w).all() for ws in ck["trainer"]["weights"] for w in ws.values())


def point(**kw):
    base = dict(network="snn-mlp", dataset="digits", schedule="none", processors=1, epochs=1, batch=32,
                timesteps=None, seed=0, lr=0.002, optimizer="adam", stash=True, compensation="none",
                data_dir=None, limit_train=320, kind="train", unrelated_sweep_key="x")
    base.update(kw)
    return base


def test_run_from_options_is_flat_and_equals_run():
    from spikepipe.training import run_from_options

    got = run_from_options(point(limit_val=50, limit_test="100"))
    direct = run(TrainConfig(network="snn-mlp", dataset="digits", epochs=1, batch=32, seed=0, lr=0.002,
                             limit_train=320, limit_val=50, limit_test=100))
    assert not any(isinstance(v, dict) for v in got.values())
    assert "history" not in got
    assert got["test_accuracy"] == direct["test_accuracy"]
    assert got["val_accuracy"] == direct["val_accuracy"]
    assert (got["train_samples"], got["val_samples"], got["test_samples"]) == (320, 50, 100)
    assert got["gradient_delays"] == [0, 0] and got["epochs"] == 1 and got["wall_s"] > 0


@pytest.mark.parametrize("stash", [True, "false"])
def test_run_from_options_trains_with_the_schedules_delays(stash):
    from spikepipe.train.runner import build_schedule
    from spikepipe.training import run_from_options

    sched = build_schedule(TrainConfig(network="snn-mlp", batch=32, schedule="pipedream", processors=2), 8)
    got = run_from_options(point(schedule="pipedream", processors="2", stash=stash))
    assert got["gradient_delays"] == list(sched.gradient_delays)
    assert got["measured_delays"] == list(sched.gradient_delays)
    assert got["stash"] is (stash is True) and got["trainer"] == "exact"
