"""One method, one definition: the trainer and the task-graph transform read the same MethodOptions, and the
transform prices exactly the GEMM work the trainer executes (torch's FLOP counter as the oracle)."""

from __future__ import annotations

import argparse

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from spikepipe import zoo
from spikepipe.cli.method_args import add_method_arguments, method_options
from spikepipe.methods import make_trainer
from spikepipe.methods.registry import (
    TRAINER_METHODS,
    TRANSFORM_METHODS,
    MethodError,
    MethodOptions,
    kept_steps,
    segments,
)
from spikepipe.methods.transforms import transform
from spikepipe.train import OptimConfig
from spikepipe.workload import load_workload


def _trainer_macs(opts: MethodOptions, network: str, t: int, b: int) -> int:
    net, example = zoo.build(network, timesteps=t, batch=b, seed=0)
    x = (torch.rand(t, b, *example.shape[2:], generator=torch.Generator().manual_seed(2)) < 0.5).float()
    y = torch.arange(b) % 10
    tr = make_trainer(opts, net, example, OptimConfig(), total_steps=2, epochs=1)
    with FlopCounterMode(display=False) as fc:
        tr.run_epoch(lambda n: (x, y), 1)
    flops = fc.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


def _graph_macs(opts: MethodOptions, network: str, t: int, b: int) -> int:
    g = transform(load_workload(network, batch=b, timesteps=t), opts)
    return sum(gm.macs for task in g.tasks for gm in task.gemms)


CASES = [("checkpoint", {}, 4), ("checkpoint", {"checkpoint_every": 3}, 7), ("skipper", {}, 8),
         ("skipper", {"checkpoint_every": 3, "skip": 1, "skipper_gradient": "drop"}, 7), ("skipper", {"checkpoint_every": 4, "skip": 3}, 6),
         ("skipper", {"checkpoint_every": 4, "skip": 2, "skipper_gradient": "carry"}, 9), ("bptt", {}, 5),
         ("skipper", {"checkpoint_every": 2, "skip": 1}, 5)]


@pytest.mark.parametrize("network", ["snn-mlp", "snn-cnn"])
@pytest.mark.parametrize("method,params,t", CASES)
def test_transform_macs_equal_the_macs_the_trainer_executes(network, method, params, t):
    opts = MethodOptions.of(method, **params)
    assert _graph_macs(opts, network, t, 3) == _trainer_macs(opts, network, t, 3)


def test_skipper_macs_fall_with_the_skipped_steps():
    base = _graph_macs(MethodOptions.of("checkpoint", checkpoint_every=4), "snn-mlp", 8, 2)
    fewer = [_graph_macs(MethodOptions.of("skipper", checkpoint_every=4, skip=s), "snn-mlp", 8, 2) for s in (1, 2, 3)]
    assert base > fewer[0] > fewer[1] > fewer[2]


@pytest.mark.parametrize("t,every,skip,kept", [(8, 4, 1, 6), (8, 3, 1, 5), (7, 3, 2, 3), (5, 5, 0, 5), (3, 4, 2, 1),
                                               (9, 4, 3, 3)])
def test_segments_by_hand(t, every, skip, kept):
    segs = segments(t, every, skip)
    assert [s.start for s in segs] == list(range(0, t, every))
    assert segs[-1].end == t and all(1 <= s.kept <= s.end - s.start for s in segs)
    assert kept_steps(t, every, skip) == kept


@pytest.mark.parametrize("t,every,skip", [(4, 2, 1), (9, 3, 1), (16, 4, 2), (2, 2, 1)])
def test_defaults_are_one_definition(t, every, skip):
    d = MethodOptions.of("skipper")
    assert (d.every(t), d.skipped(t)) == (every, skip)  # ceil(sqrt(T)) (at least 2), half of it
    net, example = zoo.build("snn-mlp", timesteps=t, batch=2, seed=0)
    tr = make_trainer("skipper", net, example, OptimConfig(), total_steps=1, epochs=1)
    assert (tr.every, tr.skip) == (every, skip)
    g = transform(load_workload("snn-mlp", batch=2, timesteps=t), "skipper")
    assert g.name.endswith(f"skipper{every}-{skip}c")  # the gradient across skipped steps is carried
    assert tr.carry


def _parse(argv: list[str], methods) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_method_arguments(p, methods)
    return p.parse_args(argv)


def test_cli_flags_give_the_options_and_defaults_of_the_registry():
    assert method_options(_parse([], TRAINER_METHODS)) == MethodOptions()
    a = _parse(["--method", "skipper", "--checkpoint-every", "3", "--skip", "2", "--skipper-gradient", "carry"],
               TRANSFORM_METHODS)
    assert method_options(a) == MethodOptions("skipper", checkpoint_every=3, skip=2, skipper_gradient="carry")
    b = _parse(["--method", "ttl", "--window", "4", "--method-blocks", "3"], TRANSFORM_METHODS)
    assert method_options(b) == MethodOptions("ttl", window=4, blocks=3)


@pytest.mark.parametrize("params", [{"skip": 4, "checkpoint_every": 4}, {"window": 0}, {"hard_fraction": 1.5},
                                    {"skipper_gradient": "sideways"}, {"nonsense": 1}])
def test_bad_options_are_method_errors(params):
    with pytest.raises(MethodError):
        MethodOptions.of("skipper", **params).skipped(8)


@pytest.mark.parametrize("cmd", ["simulate", "train"])
def test_simulate_and_train_accept_the_same_method_flags(cmd):
    from spikepipe.cli import build_parser

    flags = ["--method", "skipper", "--checkpoint-every", "3", "--skip", "1", "--window", "2", "--blocks", "2",
             "--hard-fraction", "0.5", "--skipper-gradient", "carry"]
    base = {"simulate": ["simulate", "--network", "snn-mlp", "-P", "2"],
            "train": ["train", "--network", "snn-mlp", "--dataset", "digits"]}[cmd]
    args = build_parser().parse_args(base + flags)
    assert method_options(args) == MethodOptions("skipper", checkpoint_every=3, skip=1, window=2, blocks=2,
                                                 hard_fraction=0.5, skipper_gradient="carry")


def test_sweep_points_take_the_method_keys():
    from spikepipe.sweep import SweepError, _check_value, _run_simulate

    point = {"network": "snn-mlp", "processors": 2, "schedule": "gpipe", "batch": 8, "timesteps": 4}
    base = _run_simulate(dict(point))
    ck = _run_simulate({**point, "method": "checkpoint", "checkpoint_every": 2})
    assert ck["sequential_cycles"] > base["sequential_cycles"]  # the recomputation is priced
    assert ck["peak_memory_bytes"] < base["peak_memory_bytes"]
    for key, value in (("method", "magic"), ("skip", "x"), ("window", 0)):
        with pytest.raises(SweepError):
            _check_value("simulate", key, value, "test")
