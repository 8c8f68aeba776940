"""Measurements for the training-methods comparison: trainers by name, saved-tensor bytes, step time, accuracy,
process peak RSS in a fresh subprocess, and the simulator rows. Used by run.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import sjzoo
import torch
from memopt_trainer import MemoptBPTT, memopt_kept_peak

from spikepipe import zoo
from spikepipe.methods import make_trainer
from spikepipe.methods.bloctrain import BlocTrain
from spikepipe.methods.checkpoint import CheckpointedBPTT
from spikepipe.methods.memory import kept_peak, spike_packing
from spikepipe.methods.registry import MethodOptions
from spikepipe.methods.usernet import make_user_trainer
from spikepipe.train import OptimConfig
from spikepipe.train.bptt import PlainBPTT
from spikepipe.train.data import Dataset, batch_order
from spikepipe.train.encoders import encode
from spikepipe.train.model import ModelFn

# label -> the registry's options (defaults are MethodOptions', the ones `spikepipe train/simulate` use)
OPTIONS = {"bptt": MethodOptions("bptt"), "checkpoint": MethodOptions("checkpoint"),
           "skipper": MethodOptions("skipper", skipper_gradient="drop"),
           "skipper-carry": MethodOptions("skipper", skipper_gradient="carry"),
           "ttl": MethodOptions("ttl"), "bloctrain": MethodOptions("bloctrain")}
# ours with saved spikes stored as bits (lossless), and SpikingJelly's memopt with and without its compression
PACKED = {"checkpoint-packed": "checkpoint", "skipper-packed": "skipper"}
MEMOPT = {"memopt": False, "memopt-compress": True}
METHODS = ("bptt", "bptt-stepped", "checkpoint", "skipper", "skipper-carry", "ttl", "bloctrain",
           "checkpoint-packed", "skipper-packed", "memopt", "memopt-compress")


class Packed:
    """A trainer whose saved spikes are stored as bits (spikepipe.methods.memory.spike_packing)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def run_epoch(self, *args: Any, **kwargs: Any) -> Any:
        with spike_packing():
            return self.inner.run_epoch(*args, **kwargs)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.logits(x)


@dataclass(frozen=True)
class MethodSpec:
    name: str  # a label of OPTIONS, or bptt-stepped (BPTT on the time-chunked network: the exact reference)
    blocks: int = 2  # ttl / bloctrain


def build(network: str, *, timesteps: int, batch: int, seed: int = 0) -> tuple[Any, torch.Tensor]:
    """A built-in network (spikepipe.zoo) or a SpikingJelly zoo model (sjzoo: a ModelFn)."""
    if sjzoo.is_zoo(network):
        return sjzoo.build(network, timesteps=timesteps, batch=batch, seed=seed)
    return zoo.build(network, timesteps=timesteps, batch=batch, seed=seed)


def _make_user(spec: MethodSpec, fn: ModelFn, example: torch.Tensor, total: int, epochs: int,
               opt: OptimConfig, network: str) -> Any:
    """The same labels on a user's module: ours through make_user_trainer (TTL with one block unless the model
    can be cut into blocks), BPTT on its own forward, memopt on its residual blocks."""
    if spec.name == "bptt":
        return PlainBPTT(fn, opt, total_steps=total)
    if spec.name in PACKED:
        return Packed(_make_user(replace(spec, name=PACKED[spec.name]), fn, example, total, epochs, opt, network))
    if spec.name in MEMOPT:
        return sjzoo.make_memopt(fn, network, opt, total, example, MEMOPT[spec.name])
    if spec.name not in OPTIONS:
        raise ValueError(f"{spec.name} is not measured on a user's module")
    o = OPTIONS[spec.name]
    params = ({"skipper_gradient": o.skipper_gradient} if o.name == "skipper" else
              {"blocks": spec.blocks} if o.name in ("ttl", "bloctrain") else {})
    return make_user_trainer(o.name, fn, opt, total_steps=total, seed=0,
                             epochs=max(epochs, spec.blocks) if o.name == "bloctrain" else epochs, **params)


def make(spec: MethodSpec, net: Any, example: torch.Tensor, total: int, epochs: int,
         lr: float, network: str = "") -> Any:
    opt = OptimConfig(lr=lr)
    if isinstance(net, ModelFn):
        return _make_user(spec, net, example, total, epochs, opt, network)
    if spec.name == "bptt-stepped":  # BPTT on the time-chunked network (per-timestep BN): the exact reference
        return CheckpointedBPTT(net, opt, total_steps=total, checkpoint_every=None)
    if spec.name in PACKED:
        return Packed(make(replace(spec, name=PACKED[spec.name]), net, example, total, epochs, lr))
    if spec.name in MEMOPT:
        return MemoptBPTT(net, opt, total_steps=total, example=example, compress=MEMOPT[spec.name])
    if spec.name not in OPTIONS:
        raise ValueError(spec.name)
    opts = replace(OPTIONS[spec.name], blocks=spec.blocks)
    return make_trainer(opts, net, example, opt, total_steps=total,
                        epochs=max(epochs, spec.blocks) if opts.name == "bloctrain" else epochs)


def one_step(tr: Any, x: torch.Tensor, y: torch.Tensor) -> None:
    """One minibatch: gradients and update (BlocTrain: one step of its current phase)."""
    if isinstance(tr, BlocTrain):
        tr.train_step(x, y)
        return
    tr.run_epoch(lambda n: (x, y), 1)


def phases(tr: Any) -> list[int]:
    return list(range(len(tr.ranges))) if isinstance(tr, BlocTrain) else [0]


def enter_phase(tr: Any, phase: int) -> None:
    """BlocTrain: jump to a phase (class sets made up: the first half of the classes are 'hard')."""
    if isinstance(tr, BlocTrain):
        while len(tr.class_sets) <= phase:
            prev = tr.class_sets[-1]
            tr.class_sets.append(prev[:max(1, len(prev) // 2)])
        tr.epoch = int(phase * tr.epochs / len(tr.ranges)) if phase else 0


def saved_peak(spec: MethodSpec, network: str, timesteps: int, batch: int, seed: int = 0) -> int:
    """Peak bytes kept for the backward during one training step (spikepipe.methods.memory: saved tensors and
    state held outside autograd, each byte once; max over BlocTrain's phases)."""
    net, ex = build(network, timesteps=timesteps, batch=batch, seed=seed)
    x = (torch.rand(timesteps, batch, *ex.shape[2:], generator=torch.Generator().manual_seed(seed)) < 0.5).float()
    y = torch.arange(batch) % 10
    tr = make(spec, net, ex, 10, 4, 1e-3, network)
    best = 0
    for ph in phases(tr):
        enter_phase(tr, ph)
        if isinstance(tr, Packed):
            best = max(best, kept_peak(tr.inner, x, y, pack_spikes=True))
        elif isinstance(tr, MemoptBPTT):
            best = max(best, memopt_kept_peak(tr, x, y))
        elif isinstance(tr, sjzoo.MemoptUser):
            best = max(best, sjzoo.memopt_user_kept_peak(tr, x, y))
        else:
            best = max(best, kept_peak(tr, x, y))
    return best


def saved_per_phase(spec: MethodSpec, network: str, timesteps: int, batch: int, seed: int = 0) -> list[int]:
    """BlocTrain: kept bytes of one training step in each phase."""
    net, ex = build(network, timesteps=timesteps, batch=batch, seed=seed)
    x = (torch.rand(timesteps, batch, *ex.shape[2:], generator=torch.Generator().manual_seed(seed)) < 0.5).float()
    y = torch.arange(batch) % 10
    tr = make(spec, net, ex, 10, 4, 1e-3, network)
    out = []
    for ph in phases(tr):
        enter_phase(tr, ph)
        out.append(kept_peak(tr, x, y))
    return out


def step_times(specs: list[MethodSpec], network: str, timesteps: int, batch: int, rounds: int,
               progress: Any = None) -> dict[str, list[float]]:
    """Seconds per step of every method, measured round-robin (one step of each method per round) so that
    load from other jobs on the machine hits all methods alike; the first round is a warm-up, not kept."""
    trainers = {}
    for s in specs:
        net, ex = build(network, timesteps=timesteps, batch=batch, seed=0)
        trainers[s.name] = make(s, net, ex, 10 * rounds, 4, 1e-3, network)
    g = torch.Generator().manual_seed(1)
    out: dict[str, list[float]] = {s.name: [] for s in specs}
    for r in range(rounds + 1):
        x = (torch.rand(timesteps, batch, *ex.shape[2:], generator=g) < 0.5).float()
        y = torch.randint(0, 10, (batch,), generator=g)
        for s in specs:
            tr = trainers[s.name]
            enter_phase(tr, r % len(phases(tr)))
            t0 = time.perf_counter()
            one_step(tr, x, y)
            if r:
                out[s.name].append(time.perf_counter() - t0)
        if progress:
            progress()
    return out


def train_accuracy(spec: MethodSpec, network: str, data: Dataset, *, timesteps: int, batch: int, epochs: int,
                   lr: float, test_limit: int, seed: int = 0, progress: Any = None) -> dict[str, Any]:
    torch.manual_seed(seed)
    net, ex = build(network, timesteps=timesteps, batch=batch, seed=seed)
    steps = len(batch_order(len(data.train), batch, seed=seed, epoch=0))
    ep_total = max(epochs, spec.blocks) if spec.name == "bloctrain" else epochs
    # memopt decides once, on this example, which block inputs are binary and compresses them from then on: give
    # it the real (analog, direct-encoded) input, or it would binarise the first layer's input
    ex = encode("direct", data.train.x[:batch], timesteps)
    tr = make(spec, net, ex, steps * ep_total, ep_total, lr, network)
    if isinstance(tr, BlocTrain):  # hard classes from held-out data, as `spikepipe train` does
        tr.set_holdout(encode("direct", data.val.x[:1000], timesteps), data.val.y[:1000])
    losses = []
    t0 = time.perf_counter()
    for ep in range(ep_total):
        order = batch_order(len(data.train), batch, seed=seed, epoch=ep)
        st = tr.run_epoch(lambda n, o=order, ep=ep: (encode("direct", data.train.x[o[n]], timesteps),
                                                     data.train.y[o[n]]), len(order), progress)
        losses.append(st.loss)
    seconds = time.perf_counter() - t0
    correct = 0
    xt, yt = data.test.x[:test_limit], data.test.y[:test_limit]
    with torch.no_grad():
        for i in range(0, len(yt), 256):
            correct += int((tr.logits(encode("direct", xt[i:i + 256], timesteps)).argmax(1) == yt[i:i + 256]).sum())
    row = {"method": spec.name, "network": network, "epochs": ep_total, "train_samples": len(data.train),
           "test_samples": len(yt), "test_accuracy": correct / max(1, len(yt)),
           "first_epoch_loss": losses[0], "last_epoch_loss": losses[-1], "train_seconds": round(seconds, 2)}
    if isinstance(tr, BlocTrain):
        from spikepipe.workload import load_workload

        one = load_workload(network, batch=1, timesteps=timesteps)
        macs = tr.inference_macs_per_sample([one.task(f"F{i}").gemms[0].macs for i in range(one.num_layers)])
        mean, full = macs.mean_macs_per_sample, macs.full_macs_per_sample
        row["exit_fractions"] = [c / max(1, sum(tr.exit_counts)) for c in tr.exit_counts]
        row["hard_classes"] = tr.class_sets[-1]
        row["hard_class_source"] = tr.hard_class_source
        row["inference_macs_per_sample"] = round(mean)
        row["end_to_end_macs_per_sample"] = full
        row["inference_efficiency"] = round(full / mean, 3)
        row["classifier_memory_overhead"] = round(tr.classifier_overhead(), 3)
    return row


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_worker(spec: MethodSpec, network: str, timesteps: int, batch: int, steps: int) -> dict[str, int]:
    """Inside a fresh process: resident set size sampled every 0.2 ms during `steps` training steps; returns
    the RSS just before the first step and the highest sample (the process's real peak, allocator included)."""
    torch.set_num_threads(1)
    net, ex = build(network, timesteps=timesteps, batch=batch, seed=0)
    tr = make(spec, net, ex, 10, 4, 1e-3, network)
    x = (torch.rand(timesteps, batch, *ex.shape[2:]) < 0.5).float()
    y = torch.arange(batch) % 10
    before = _rss_bytes()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.0002)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    for i in range(steps):
        enter_phase(tr, i % len(phases(tr)))
        one_step(tr, x, y)
    done.set()
    th.join()
    return {"rss_before": before, "rss_peak": max(peak[0], _rss_bytes())}


def rss_in_subprocess(spec: MethodSpec, network: str, timesteps: int, batch: int, steps: int = 2) -> dict[str, int]:
    code = (f"import json,sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); from measure import MethodSpec, rss_worker; "
            "print(json.dumps(rss_worker(MethodSpec(**json.loads(sys.argv[1])), *json.loads(sys.argv[2]))))")
    args = json.dumps(spec.__dict__), json.dumps([network, timesteps, batch, steps])
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
