"""BlocTrain as published: phases in sequence, hard classes from held-out class-wise accuracy, a detector per
block, early exit on detector and confidence; the phase task graphs price what each phase's trainer executes."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from spikepipe import zoo
from spikepipe.methods.bloctrain import BlocTrain
from spikepipe.methods.local import partition
from spikepipe.methods.phases import phase_graphs, phase_totals
from spikepipe.train import OptimConfig
from spikepipe.workload import load_workload


def _macs(g) -> int:
    return sum(gm.macs for t in g.tasks for gm in t.gemms)


@pytest.mark.parametrize("network,blocks", [("snn-mlp", 2), ("snn-cnn", 2), ("snn-cnn", 3), ("snn-cnn", (1, 3))])
def test_each_phase_graph_prices_what_the_phase_executes(network, blocks):
    t, b = 3, 20  # labels 0..9 twice: a class set of half the classes holds exactly half the samples
    net, example = zoo.build(network, timesteps=t, batch=b, seed=0)
    x = torch.rand(t, b, *example.shape[2:], generator=torch.Generator().manual_seed(1))
    y = torch.arange(b) % 10
    ranges = partition(len(net.blocks), blocks)
    tr = BlocTrain(net, OptimConfig(), total_steps=10, example=example, epochs=len(ranges), blocks=blocks)
    graphs = phase_graphs(load_workload(network, batch=b, timesteps=t), blocks, 0.5)
    assert len(graphs) == len(ranges)
    sets = [list(range(10)), [0, 1, 2, 3, 4], [0, 1, 2]]  # each half (rounded up) of the previous
    for g, (graph, (a, end)) in enumerate(zip(graphs, ranges, strict=True)):
        graph.validate()
        assert graph.num_layers == end
        tr.epoch, tr.class_sets = g, sets[:g + 1]
        share = int(torch.isin(y, torch.tensor(sets[g])).sum())
        if share * 2 ** g != b:  # the graph assumes hard_fraction**g of the samples; only compare when true
            continue
        with FlopCounterMode(display=False) as fc:
            tr.train_step(x, y)
        assert _macs(graph) == fc.get_total_flops() // 2, g
        for layer in range(a):  # frozen: forward only, nothing kept (layer a-1 also carries the detector)
            assert graph.task(f"F{layer}").activation_bytes == 0
            if layer < a - 1:
                assert graph.task(f"B{layer}").cycles == 1 and graph.task(f"W{layer}").cycles == 1
            else:
                assert graph.task(f"B{layer}").gemms == () and len(graph.task(f"W{layer}").gemms) == 1


def test_phase_totals_sum_the_phases():
    assert phase_totals([10, 4], [3, 3]) == 42


def _digits_run(tmp_exit: float):
    from spikepipe.train.data import batch_order, load_digits
    from spikepipe.train.encoders import encode

    t = 4
    net, ex = zoo.build("snn-mlp", timesteps=t, batch=32, seed=0)
    data = load_digits().reshaped(tuple(ex.shape[2:]))
    order = batch_order(len(data.train), 32, seed=0, epoch=0)
    tr = BlocTrain(net, OptimConfig(lr=3e-3), total_steps=4 * len(order), example=ex, epochs=4, blocks=2,
                   exit_confidence=tmp_exit)
    tr.set_holdout(encode("direct", data.val.x, t), data.val.y)
    for ep in range(4):
        order = batch_order(len(data.train), 32, seed=0, epoch=ep)
        tr.run_epoch(lambda n, o=order: (encode("direct", data.train.x[o[n]], t), data.train.y[o[n]]), len(order))
    return tr, data, t


@pytest.fixture(scope="module")
def trained():
    return _digits_run(0.5)


def test_hard_classes_are_the_worst_on_held_out_data(trained):
    tr, data, _t = trained
    assert tr.hard_class_source == "holdout"
    y = data.val.y
    tr.class_sets, saved = tr.class_sets[:1], tr.class_sets
    hits = tr._holdout_hits(0)
    tr.class_sets = saved
    acc = {c: hits[c][0] / hits[c][1] for c in range(10)}
    hard = set(saved[1])
    assert len(hard) == 5 and len(y) == sum(h[1] for h in hits)
    assert max(acc[c] for c in hard) <= min(acc[c] for c in set(range(10)) - hard)


def test_early_exit_needs_detector_and_confidence(trained):
    tr, data, t = trained
    from spikepipe.train.encoders import encode

    x = encode("direct", data.test.x, t)
    counts = []
    for conf in (0.0, 0.5, 1.0):
        tr.exit_confidence, tr.exit_counts = conf, [0, 0]
        tr.logits(x)
        counts.append(tr.exit_counts[0])
        assert sum(tr.exit_counts) == len(data.test)
    assert counts[0] >= counts[1] >= counts[2] == 0  # certainty 1.0 is never reached: nobody exits early
    graph = load_workload("snn-mlp", batch=1, timesteps=t)
    layer_macs = [graph.task(f"F{i}").gemms[0].macs for i in range(graph.num_layers)]  # one sample, all T
    n = len(data.test)
    tr.exit_counts = [counts[1], n - counts[1]]
    macs = tr.inference_macs_per_sample(layer_macs)
    mean, full = macs.mean_macs_per_sample, macs.full_macs_per_sample
    first = layer_macs[0] + 128 * 10 + 128 * 1  # layer 0, its classifier and its detector (128 features)
    assert full == sum(layer_macs)
    assert mean == pytest.approx((counts[1] * first + (n - counts[1]) * (first + layer_macs[1])) / n)
    weights = 64 * 128 + 128 * 10 + 10
    assert tr.classifier_overhead() == pytest.approx((weights + 128 * 10 + 10 + 128 + 1) / weights)


@pytest.mark.parametrize("schedule", ["gpipe", "pipedream", "layerpipe"])
def test_phase_graphs_schedule_and_replay(schedule):
    import schedules
    from hwmodels.config import load_cluster
    from spikepipe.sim.engine import simulate

    cluster = load_cluster(None, processors=4)
    for h in phase_graphs(load_workload("vgg11-28", batch=8, timesteps=2), 2, 0.5):
        sched = schedules.generate(schedule, h, cluster)
        sim = simulate(sched, cluster, graph=h, record=False)
        assert sim.simulated_period_cycles > 0


def test_samples_that_go_deeper_combine_the_classifiers(trained):
    """A sample that does not exit is answered by block 0's softmax over its easy classes and, for the hard set,
    block 0's probability of the hard set times block 1's softmax over it (computed here from the blocks)."""
    import torch.nn.functional as F

    from spikepipe.methods.stepped import run_chunk
    from spikepipe.train.encoders import encode

    tr, data, t = trained
    x = encode("direct", data.test.x[:200], t)
    tr.exit_confidence, tr.exit_counts = 0.9, [0, 0]
    got = tr.logits(x)
    (a0, b0), (a1, b1) = tr.ranges
    with torch.no_grad():
        outs, _ = run_chunk(tr.net, tr.weights, x, None, layers=range(a0, b0))
        p0 = F.softmax(tr.heads.logits(tr.heads.params[b0 - 1], outs[b0 - 1]), 1)
        given = {i: o for i, o in enumerate(outs) if o is not None}
        deep, _ = run_chunk(tr.net, tr.weights, x, None, layers=range(a1, b1), inputs=given)
        hard = torch.tensor(tr.class_sets[1])
        p1 = F.softmax(deep[-1].mean(0)[:, hard], 1)
    want = p0.clone()
    want[:, hard] = p0[:, hard].sum(1, keepdim=True) * p1
    stayed = got.exp().sum(1) > 0.99  # exited samples hold a distribution over the easy classes only
    easy = sorted(set(range(10)) - set(tr.class_sets[1]))
    stayed &= got[:, hard].exp().sum(1) > 1e-6
    assert int(stayed.sum()) == tr.exit_counts[1] > 0
    assert torch.allclose(got[stayed].exp(), want[stayed], atol=1e-5)
    left = ~stayed
    assert bool((got[left][:, easy].exp().sum(1) > 0.999).all())


def test_every_phase_runs_its_own_learning_rate_schedule():
    net, ex = zoo.build("snn-cnn", timesteps=2, batch=4, seed=0)
    for epochs, blocks in ((2, 2), (5, 2), (3, 3), (7, 3)):
        tr = BlocTrain(net, OptimConfig(lr=1e-2, schedule="cosine"), total_steps=10 * epochs, example=ex,
                       epochs=epochs, blocks=blocks)
        counts = tr.phase_epochs()
        assert sum(counts) == epochs and min(counts) >= 1
        start = 0
        for g, n in enumerate(counts):
            tr.epoch = sum(counts[:g])
            assert tr.phase == g
            assert tr.lr(0, start) == pytest.approx(1e-2)  # each phase starts at the full rate ...
            assert tr.lr(0, start + 10 * n - 1) < 1e-2 * 0.05  # ... and anneals by its own end
            start += 10 * n
