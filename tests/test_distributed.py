"""`--backend gloo` against `--backend emulate`: the same final weights and measured delays on 2 and 4 ranks, and
a rank killed mid-epoch fails the run with one line naming it, leaving no process behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch

from spikepipe import zoo
from spikepipe.distributed import DistributedError
from spikepipe.distributed.launch import FAULT_ENV, TIMEOUT_ENV, DistributedPipeline
from spikepipe.training import TrainConfig, run

SPIKEPIPE = str(Path(sys.executable).with_name("spikepipe"))


def cfg(**kw) -> TrainConfig:
    base = dict(network="snn-mlp", dataset="digits", epochs=1, batch=16, limit_train=96, limit_val=64,
                limit_test=64, lr=0.01, processors=2, schedule="spikepipe")
    base.update(kw)
    return TrainConfig(**base)


def train(c: TrainConfig) -> tuple[dict, list[torch.Tensor]]:
    net, example = zoo.build(c.network, timesteps=c.timesteps, batch=c.batch, num_classes=10, seed=c.seed)
    result = run(c, model=(net, example))
    return result, [p.detach().clone() for p in net.parameters()]


def assert_same(a: tuple[dict, list], b: tuple[dict, list]) -> None:
    (ra, wa), (rb, wb) = a, b
    assert max(float((x - y).abs().max()) for x, y in zip(wa, wb, strict=True)) <= 1e-6
    assert ra["measured_delays"] == rb["measured_delays"]
    assert ra["gradient_delays"] == rb["gradient_delays"]
    assert ra["history"][-1]["train_loss"] == pytest.approx(rb["history"][-1]["train_loss"], abs=1e-6)


@pytest.mark.parametrize(("schedule", "processors", "stash"), [
    ("spikepipe", 2, True),  # F, B and W of a layer on different ranks: weight versions and recompute
    ("pipedream", 4, False),  # 2 of 4 ranks idle; no stashing: B reads the version current at its time
    ("data-parallel", 2, True),  # flush: shards, gradient all-reduce, replicated update
])
def test_gloo_equals_emulation(schedule, processors, stash):
    c = cfg(schedule=schedule, processors=processors, stash=stash)
    emulated = train(c)
    real = train(cfg(schedule=schedule, processors=processors, stash=stash, backend="gloo"))
    assert real[0]["backend"] == "gloo" and emulated[0]["backend"] == "emulate"
    assert_same(emulated, real)
    if schedule != "data-parallel":
        assert real[0]["measured_delays"] == real[0]["gradient_delays"]
        assert any(real[0]["measured_delays"])


@pytest.mark.parametrize(("compensation", "schedule", "processors", "stash"), [
    ("spectrain", "spikepipe", 2, True),  # F reads predicted weights; B on another rank recomputes with them
    ("spectrain", "pipedream", 4, False),  # without stashing B predicts again, from the version at its time
    pytest.param("pipemare", "spikepipe", 2, True, marks=pytest.mark.slow),
])
def test_compensation_on_gloo_equals_emulation(compensation, schedule, processors, stash):
    """SpecTrain's predictions use the velocity of the version read, which travels with the weights to the
    reading rank; PipeMare scales each layer's rate by its delay on the updating rank."""
    kw = dict(schedule=schedule, processors=processors, stash=stash)
    emulated = train(cfg(compensation=compensation, **kw))
    assert_same(emulated, train(cfg(compensation=compensation, backend="gloo", **kw)))
    plain = train(cfg(**kw))  # the compensation changed the training (the test above compares something)
    assert max(float((x - y).abs().max()) for x, y in zip(plain[1], emulated[1], strict=True)) > 1e-4


@pytest.mark.slow
@pytest.mark.parametrize(("schedule", "processors"), [("spikepipe", 4), ("1f1b", 2), ("gpipe", 4),
                                                      ("layerpipe", 2)])
def test_gloo_equals_emulation_more(schedule, processors):
    assert_same(train(cfg(schedule=schedule, processors=processors)),
                train(cfg(schedule=schedule, processors=processors, backend="gloo")))


def _spawned_children() -> list[int]:
    """Live processes whose parent is this process and that run a multiprocessing spawn entry point."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat[1]) == os.getpid() and stat[0] != "Z" and "spawn_main" in cmd:
            out.append(int(d.name))
    return out


def _port_free(port: int) -> bool:
    """Nothing listens on the port (SO_REUSEADDR: connections of the killed ranks may linger in TIME_WAIT, which
    does not keep a new store from binding it, as torch's TCPStore binds with the same option)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pipeline(monkeypatch, fault: str | None, timeout: str | None = None):
    import schedules
    from hwmodels.config import load_cluster
    from spikepipe.train.data import batch_order, load_dataset
    from spikepipe.train.encoders import encode
    from spikepipe.train.optim import OptimConfig
    from spikepipe.workload import load_workload

    if fault:
        monkeypatch.setenv(FAULT_ENV, fault)
    if timeout:
        monkeypatch.setenv(TIMEOUT_ENV, timeout)
    net, example = zoo.build("snn-mlp", batch=16, num_classes=10, seed=0)
    s = schedules.generate("spikepipe", load_workload("snn-mlp", batch=16, timesteps=None),
                           load_cluster(None, processors=2))
    data = load_dataset("digits", None).reshaped(tuple(example.shape[2:]))
    order = batch_order(len(data.train), 16, seed=0, epoch=0)[:6]

    def get_batch(n):
        return encode("direct", data.train.x[order[n]], example.shape[0], seed=n), data.train.y[order[n]]

    return DistributedPipeline(net, OptimConfig(), s, total_steps=6), s, get_batch


@pytest.mark.parametrize(("action", "timeout"), [("exit", None), pytest.param("hang", "8", marks=pytest.mark.slow)])
def test_a_dead_or_hung_rank_fails_the_run_and_leaves_nothing(monkeypatch, action, timeout):
    trainer, s, get_batch = _pipeline(monkeypatch, None)
    slot = next(sl for sl in s.slots if sl.processor == 1)
    trainer2, _, _ = _pipeline(monkeypatch, f"1:{slot.id}:3:{action}", timeout)
    t0 = time.monotonic()
    with pytest.raises(DistributedError) as info:
        trainer2.run_epoch(get_batch, 6)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"rank 1 {'died' if action == 'exit' else 'hung'}")
    assert f"slot {slot.id} of minibatch 3" in msg
    assert time.monotonic() - t0 < 120
    assert _spawned_children() == []
    assert _port_free(trainer2.last_port)
    for pid in trainer2.last_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SPIKEPIPE, "train", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def _marked(marker: str) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and marker.encode() in (d / "environ").read_bytes():
                found.append(int(d.name))
        except OSError:
            continue
    return found


COMMON = ("--batch", "16", "--limit-train", "96", "--no-progress", "--json")
NET = ("--network", "snn-mlp")


def test_cli_rank_killed_mid_epoch_exits_nonzero_with_one_line():
    marker = f"SPIKEPIPE_TEST_MARK_{uuid.uuid4().hex}"
    r = _cli(*NET, *COMMON, "--schedule", "pipedream", "--processors", "2", "--backend", "gloo", "--epochs", "1",
             env={FAULT_ENV: "0:F0:2:exit", marker: "1"})
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("error: rank 0 died (exit code 17) in slot F0 of minibatch 2"), r.stderr
    assert r.stdout == ""
    assert _marked(marker) == []


@pytest.mark.parametrize(("args", "message"), [
    (("--schedule", "none"), "give --schedule"),
    (("--schedule", "pipedream", "--mode", "queue"), "--mode queue"),
    (("--schedule", "pipedream", "--backend", "nccl"),
     f"--backend nccl needs 2 CUDA devices (one per rank); this machine has {torch.cuda.device_count()}"),
])
def test_cli_refuses_what_it_cannot_run(args, message):
    if "nccl" in args and torch.cuda.device_count() >= 2:
        pytest.skip("this machine has the GPUs --backend nccl needs")
    backend = () if "--backend" in args else ("--backend", "gloo")
    r = _cli(*NET, *COMMON, "--processors", "2", *backend, *args)
    assert r.returncode == 2
    assert r.stderr.startswith("error:") and message in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_resume_after_a_fault_is_bit_identical(tmp_path):
    """Epoch 2 dies on a rank; --resume runs epoch 2 again from the epoch-1 checkpoint and ends exactly where an
    uninterrupted emulated run ends."""
    import schedules
    from hwmodels.config import load_cluster
    from spikepipe.workload import load_workload

    s = schedules.generate("spikepipe", load_workload("snn-mlp", batch=16, timesteps=None),
                           load_cluster(None, processors=2))
    slot = next(sl for sl in s.slots if sl.processor == 1)
    common = (*NET, *COMMON, "--schedule", "spikepipe", "--processors", "2", "--epochs", "2", "--out", str(tmp_path))
    r = _cli(*common, "--backend", "gloo", env={FAULT_ENV: f"1:{slot.id}:1:exit:1"})
    assert r.returncode != 0 and "epoch 2" in r.stderr
    r = _cli(*common, "--backend", "gloo", "--resume")
    assert r.returncode == 0, r.stderr
    resumed = json.loads(r.stdout)
    r = _cli(*NET, *COMMON, "--schedule", "spikepipe", "--processors", "2", "--epochs", "2", "--out",
             str(tmp_path / "emu"))
    emulated = json.loads(r.stdout)
    ours = torch.load(tmp_path / "model.pt", weights_only=True)  # the trained module's state_dict
    theirs = torch.load(tmp_path / "emu" / "model.pt", weights_only=True)
    assert sorted(ours) == sorted(theirs)
    for k, v in ours.items():
        if v.is_floating_point() and "running" not in k:  # BatchNorm statistics do not affect training
            assert float((v - theirs[k]).abs().max()) <= 1e-6, k
    assert resumed["measured_delays"] == emulated["measured_delays"]
    assert resumed["test_accuracy"] == emulated["test_accuracy"]


def _same_as_emulation(s, stash: bool, compensation: str = "none") -> None:
    """TinySNN (block 1 reads block 0 as input and as residual) trained one epoch by the emulation and by the
    ranks on schedule s of a costed chain: the same weights, losses and measured delays."""
    from train_nets import TinySNN

    from spikepipe.train.data import batch_order, load_dataset
    from spikepipe.train.encoders import encode
    from spikepipe.train.optim import OptimConfig
    from spikepipe.train.pipelined import ExactPipeline

    data = load_dataset("digits", None).reshaped((64,))
    N = max(s.gradient_delays) + 4  # long enough to fill the pipeline, so every delay is measured
    order = batch_order(len(data.train), 8, seed=0, epoch=0)[:N]

    def get_batch(n):
        return encode("rate", data.train.x[order[n]], 3, seed=n), data.train.y[order[n]]

    opt = OptimConfig(lr=0.01)
    emu = ExactPipeline(TinySNN(seed=0, timesteps=3, inputs=64, hidden=24, classes=10), opt, s, total_steps=N,
                        stash=stash, compensation=compensation)
    real = DistributedPipeline(TinySNN(seed=0, timesteps=3, inputs=64, hidden=24, classes=10), opt, s,
                               total_steps=N, stash=stash, compensation=compensation)
    a, b = emu.run_epoch(get_batch, N), real.run_epoch(get_batch, N)
    for i, (wa, wb) in enumerate(zip(emu.weights, real.weights, strict=True)):
        # the emulation names a layer's weights by module path (blocks.i.name), a rank by the block's own names
        assert sorted(wa) == sorted(f"blocks.{i}.{k}" for k in wb)
        for k in wb:
            assert float((wa[f"blocks.{i}.{k}"] - wb[k]).abs().max()) <= 1e-6
    assert a.losses == pytest.approx(b.losses, abs=1e-6)
    assert emu.measured_delays == real.measured_delays == tuple(s.gradient_delays)


@pytest.mark.parametrize("stash", [True, False])
def test_residual_network_on_three_ranks(stash):
    """Two gradient contributions to block 0 summed in the emulation's order, on a 3-rank spikepipe schedule."""
    import schedules
    from hwmodels.processor import Cluster
    from spikepipe.ir import chain_graph

    graph = chain_graph([(30, 20, 10), (20, 30, 10), (10, 10, 10)], edge_bytes=64)
    s = schedules.generate("spikepipe", graph, Cluster.homogeneous(3))
    assert len({sl.processor for sl in s.slots}) == 3
    _same_as_emulation(s, stash)


@pytest.mark.parametrize(("stash", "compensation"), [(True, "none"), (False, "spectrain")])
def test_split_tasks_on_four_ranks(stash, compensation):
    """A spikepipe schedule with intra-layer splitting (the dominant layer's F, B and W cut along the batch onto
    several processors): each part runs its chunks, the ranks holding W parts all-reduce their partial gradients
    and update together when the last part ends; the emulation runs the whole minibatch at the collapsed times."""
    import schedules
    from hwmodels.processor import Cluster
    from spikepipe.ir import chain_graph

    graph = chain_graph([(200, 300, 100), (20000, 25000, 15000), (300, 200, 100)], batch=8)
    s = schedules.generate("spikepipe", graph, Cluster.homogeneous(4), split=True, time_limit_s=2, workers=1)
    parts = {}
    for sl in s.slots:
        parts.setdefault(sl.task, set()).add(sl.processor)
    assert max(len(p) for p in parts.values()) > 1  # something is split across processors
    _same_as_emulation(s, stash, compensation)


@pytest.mark.slow
def test_a_rank_that_dies_while_starting_is_retried_then_reported(monkeypatch):
    trainer, _, get_batch = _pipeline(monkeypatch, "1:start:0:exit")
    with pytest.raises(DistributedError, match=r"^rank 1 died \(exit code 17\) before its first slot"):
        trainer.run_epoch(get_batch, 6)
    assert _spawned_children() == []


@pytest.mark.parametrize("name", ["blocks", "plain"])
def test_user_model_file(tmp_path, name):
    """A network given as file.py:function, with the block protocol or a plain nn.Sequential (cut into its layers
    by torch.fx), runs on the ranks with the emulation's weights."""
    (tmp_path / "blocks.py").write_text(
        "from spikepipe import zoo\n\n\ndef build():\n"
        "    return zoo.build('snn-mlp', batch=16, num_classes=10, seed=3)\n")
    (tmp_path / "plain.py").write_text(
        "import torch\nfrom torch import nn\nfrom spikepipe.snn import LIF\n\n\ndef build():\n"
        "    torch.manual_seed(0)\n"
        "    return nn.Sequential(nn.Linear(64, 32), LIF(), nn.Linear(32, 10)), torch.zeros(4, 16, 64)\n")
    common = (*COMMON, "--schedule", "spikepipe", "--processors", "2", "--epochs", "1")
    models, results = {}, {}
    for backend in ("emulate", "gloo"):
        out = tmp_path / f"{name}-{backend}"
        r = _cli(*common, "--network", f"{tmp_path / name}.py:build", "--backend", backend, "--out", str(out))
        assert r.returncode == 0, r.stderr
        models[backend] = torch.load(out / "model.pt", weights_only=True)
        results[backend] = json.loads(r.stdout)
    assert results["gloo"]["measured_delays"] == results["emulate"]["measured_delays"]
    assert models["emulate"].keys() == models["gloo"].keys()
    for k, v in models["emulate"].items():
        if v.is_floating_point():
            assert float((v - models["gloo"][k]).abs().max()) <= 1e-6, (name, k)
