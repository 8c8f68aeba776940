"""Benchmark (pytest -m benchmark -s): step time of exact pipelined training vs plain BPTT, side by side.
A measurement, not a check: it prints the numbers and asserts only that both trainers ran."""

from __future__ import annotations

import statistics
import time

import pytest
import torch
from test_train_pipeline import layerpipe_hand
from train_nets import SmallCNN

from spikepipe.train.bptt import PlainBPTT
from spikepipe.train.optim import OptimConfig
from spikepipe.train.pipelined import ExactPipeline


def _model():
    try:
        from spikepipe import zoo

        return zoo.build("snn-cnn", batch=32, num_classes=10)
    except ImportError:
        net = SmallCNN(timesteps=4)
        return net, torch.zeros(4, 32, 1, 28, 28)


@pytest.mark.benchmark
def test_exact_pipeline_step_time_vs_bptt():
    torch.set_num_threads(1)
    net, ex = _model()
    t, b = ex.shape[:2]
    g = torch.Generator().manual_seed(0)
    data = [(torch.rand(*ex.shape, generator=g), torch.randint(0, 10, (b,), generator=g)) for _ in range(6)]
    opt = OptimConfig(name="adam")
    trainers = {"bptt": PlainBPTT(net, opt, total_steps=18),
                "exact": ExactPipeline(net, opt, layerpipe_hand(len(net.blocks)), total_steps=18)}
    times = {k: [] for k in trainers}
    for _ in range(3):
        for k, tr in trainers.items():
            t0 = time.perf_counter()
            tr.run_epoch(lambda n: data[n], len(data))
            times[k].append((time.perf_counter() - t0) / len(data))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{type(net).__name__} T={t} B={b}: BPTT {med['bptt'] * 1e3:.1f} ms/step, exact pipeline "
          f"{med['exact'] * 1e3:.1f} ms/step, ratio {med['exact'] / med['bptt']:.3f}")
    assert all(len(v) == 3 for v in times.values())
