"""The measured-cost mode: calibrated task times as a TaskGraph and Cluster the schedulers and the simulator take,
slot durations as the executor runs them, and the simulator's prediction on hand-derived cases."""

from __future__ import annotations

import math

import pytest
import torch

import schedules
from spikepipe import zoo
from spikepipe.distributed.calibrate import (
    NS,
    LinkCosts,
    TaskCosts,
    executor_schedule,
    in_run_schedule,
    measure_tasks,
    measured_cluster,
    measured_graph,
    predict_seconds,
)
from spikepipe.distributed.plan import block_producers, build_plan
from spikepipe.train import netfn
from spikepipe.train.optim import OptimConfig


def costs(batch: int = 32, scale: float = 1.0) -> TaskCosts:
    # a 3-layer chain with distinct, hand-picked times (seconds) so every slot's duration is identifiable
    return TaskCosts(batch, tuple(scale * v for v in (3e-3, 2e-3, 1e-3)), tuple(scale * v for v in (4e-3, 2.5e-3, 5e-4)),
                     (1e-4, 2e-4, 3e-4), (4096, 2048, 40))


CHAIN = ((-1, 0, 1), (None, None, None))
LINK = LinkCosts(50e-6, 1e9, ())


def test_measured_graph_and_cluster_carry_the_measurements():
    g = measured_graph(costs(), *CHAIN, "chain", timesteps=4)
    g.validate()
    assert g.cycles("F0") == 3_000_000 and g.cycles("B1") == 2_500_000 and g.cycles("W2") == 300_000
    assert g.edge_bytes("F0", "F1") == 4096 and g.edge_bytes("B2", "B1") == 2048
    cl = measured_cluster(LINK, 2)
    # 1 cycle = 1 ns: a 1 MB message costs latency + 1 ms at 1 GB/s
    assert cl.transfer_cycles(0, 1, 1_000_000) == pytest.approx(50_000 + 1_000_000, abs=1)
    # bare-cycle tasks cost the same on every processor
    assert g.cycles("F1", cl.processors[1]) == 2_000_000


def test_sequential_prediction_is_the_sum_of_the_tasks():
    g = measured_graph(costs(), *CHAIN, "chain", timesteps=4)
    cl = measured_cluster(LINK, 1)
    s = schedules.generate("sequential", g, cl)
    total = sum(costs().forward_s) + sum(costs().backward_s) + sum(costs().update_s)
    assert predict_seconds(s, g, cl, {32: costs()}) == pytest.approx(total, rel=1e-6)


@pytest.mark.parametrize("name", ["pipedream", "spikepipe", "1f1b"])
def test_executor_durations(name):
    g = measured_graph(costs(), *CHAIN, "chain", timesteps=4)
    cl = measured_cluster(LINK, 2)
    s = schedules.generate(name, g, cl)
    m = s.microbatches
    by_batch = {32: costs(), 32 // m: costs(32 // m, scale=0.6)} if m > 1 else {32: costs()}
    ex = executor_schedule(s, by_batch)
    f_proc = {(sl.layer, sl.microbatch): sl.processor for sl in s.slots if sl.kind.value == "F"}
    for a, b in zip(s.slots, ex.slots, strict=True):
        c = by_batch[round(32 / m)] if m > 1 else costs()
        base = {"F": c.forward_s, "B": c.backward_s, "W": c.update_s}[a.kind.value][a.layer]
        away = a.kind.value == "B" and f_proc[(a.layer, a.microbatch)] != a.processor
        assert b.duration_cycles == round((base + (c.forward_s[a.layer] if away else 0.0)) * NS)
        assert (a.start_cycles, a.lag, a.processor) == (b.start_cycles, b.lag, b.processor)
    if m > 1:  # micro-batches are priced at their own size, never scaled from the whole minibatch
        with pytest.raises(KeyError, match="no task costs"):
            executor_schedule(s, {32: costs()})


def test_in_run_durations_are_steady_state_means():
    g = measured_graph(costs(), *CHAIN, "chain", timesteps=4)
    cl = measured_cluster(LINK, 2)
    s = schedules.generate("pipedream", g, cl)
    plan = build_plan(s, block_producers(*CHAIN), 8, stash=True)
    # synthetic timings: event i of minibatch n takes (layer + 1) ms, plus 100 ms in the fill (n < 2) and drain
    timings: dict[int, list] = {}
    t = 0.0
    for i, e in enumerate(plan.events):
        d = (e.layer + 1) * 1e-3 + (0.1 if not 2 <= e.n < 6 else 0.0)
        timings.setdefault(e.rank, []).append((i, t, t + d))
        t += d
    ex = in_run_schedule(s, plan, timings)
    for sl in ex.slots:  # W slots carry the update event too
        expected = (sl.layer + 1) * 1e-3 * (2 if sl.kind.value == "W" else 1)
        assert sl.duration_cycles == round(expected * NS)


def test_measure_tasks_times_every_block_and_sizes_its_messages():
    torch.manual_seed(0)
    net, example = zoo.build("snn-mlp", batch=8, num_classes=10, seed=0)
    x = torch.rand(example.shape[0], 8, 64)
    y = torch.randint(0, 10, (8,))
    c = measure_tasks(net, x, y, OptimConfig(), repeats=2)
    assert c.batch == 8 and len(c.forward_s) == len(net.blocks)
    assert all(v > 0 and math.isfinite(v) for v in c.forward_s + c.backward_s + c.update_s)
    outs, h = [], x
    with torch.no_grad():
        for i, block in enumerate(net.blocks):
            h = netfn.call_block(block, netfn.initial_weights(net)[i], h, None)
            outs.append(h.numel() * h.element_size())
    assert c.output_bytes == tuple(outs)


@pytest.mark.slow
def test_concurrent_calibration_reports_every_task():
    from spikepipe.distributed.calibrate import measure_tasks_concurrent

    net, example = zoo.build("snn-mlp", batch=8, num_classes=10, seed=0)
    x, y = torch.rand(example.shape[0], 8, 64), torch.randint(0, 10, (8,))
    alone = measure_tasks(net, x, y, OptimConfig(), repeats=2)
    shared = measure_tasks_concurrent(net, x, y, OptimConfig(), processes=2, repeats=2)
    assert shared.output_bytes == alone.output_bytes and shared.batch == 8
    assert all(v > 0 for v in shared.forward_s + shared.backward_s + shared.update_s)
