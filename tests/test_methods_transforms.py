"""TaskGraph transforms: valid graphs, and memory and cycles move the way the method says."""

from __future__ import annotations

import pytest

import schedules
from hwmodels.config import load_cluster
from schedules.stages import stage_ranges
from spikepipe.ir import TaskKind, chain_graph, task_id
from spikepipe.methods.local import BLOCTRAIN_HEAD_POOL, partition
from spikepipe.methods.stepped import MethodError
from spikepipe.methods.transforms import METHODS, aligned, local, transform
from spikepipe.workload import load_workload

NETS = ("snn-cnn", "vgg11-28")


@pytest.fixture(scope="module")
def graphs():
    return {n: load_workload(n, batch=8, timesteps=8) for n in NETS}


def _sum(g, kind: str, attr: str = "cycles") -> int:
    return sum(getattr(t, attr) for t in g.tasks if t.kind.value == kind)


def _f_act(g) -> int:
    return _sum(g, "F", "activation_bytes")


def _act(g) -> int:
    return sum(t.activation_bytes for t in g.tasks)


PARAMS = {"bptt": {}, "checkpoint": {"every": 2}, "skipper": {"every": 4, "skip": 2}, "ttl": {"window": 2},
          "local": {"blocks": 2}, "bloctrain": {"blocks": 2, "hard_fraction": 0.5}}


@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("method", METHODS)
def test_transform_keeps_graph_valid(graphs, net, method):
    g = graphs[net]
    h = transform(g, method, **PARAMS[method])
    h.validate()  # acyclic, positive costs, every layer has F, B, W
    assert h.num_layers == g.num_layers
    assert all(t.cycles > 0 for t in h.tasks)
    assert {task_id(k, layer) for layer in range(h.num_layers) for k in TaskKind} == {t.id for t in h.tasks}


@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("every", [1, 2, 4, 8])
def test_checkpoint_adds_recompute_and_cuts_held_memory(graphs, net, every):
    g = graphs[net]
    h = transform(g, "checkpoint", every=every)
    assert _sum(h, "F") == _sum(g, "F")
    assert _sum(h, "B") > _sum(g, "B")  # B re-runs the forward
    assert _sum(h, "B") <= _sum(g, "B") + _sum(g, "F") + h.num_layers  # by at most one forward
    assert _f_act(h) < _f_act(g)
    assert _sum(h, "W") == _sum(g, "W")


@pytest.mark.parametrize("net", NETS)
def test_skipper_sits_between_bptt_and_checkpointing(graphs, net):
    g = graphs[net]
    ck = transform(g, "checkpoint", every=4)
    assert transform(g, "skipper", every=4, skip=0).total_cycles() == ck.total_cycles()
    prev = ck
    for skip in (1, 2, 3):
        sk = transform(g, "skipper", every=4, skip=skip)
        assert sk.total_cycles() < prev.total_cycles()
        assert _sum(sk, "B") < _sum(prev, "B") and _sum(sk, "W") < _sum(prev, "W")
        assert _act(sk) <= _act(prev)
        prev = sk


@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("window", [1, 2, 4])
def test_ttl_cuts_memory_by_the_window(graphs, net, window):
    g = graphs[net]
    h = transform(g, "ttl", window=window)
    loc = transform(g, "local")
    assert _act(h) <= -(-_act(loc) * window // g.timesteps) + h.num_layers * 2
    assert _act(h) < _act(g)
    assert transform(g, "ttl", window=g.timesteps).total_cycles() == loc.total_cycles()


@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("blocks", [2, 3])
def test_local_losses_cut_backward_edges_at_block_borders(graphs, net, blocks):
    g = graphs[net]
    h = transform(g, "local", blocks=blocks)
    ranges = partition(g.num_layers, blocks)
    block_of = {layer: k for k, (a, b) in enumerate(ranges) for layer in range(a, b)}
    crossing = [(u, v) for u, v, _ in g.edges if u[0] == "B" and v[0] == "B"
                and block_of[int(u[1:])] != block_of[int(v[1:])]]
    assert crossing  # the original graph does send gradients across
    for u, v, _ in h.edges:
        if u[0] == "B" and v[0] == "B":
            assert block_of[int(u[1:])] == block_of[int(v[1:])]
    for _a, b in ranges[:-1]:
        assert (f"F{b - 1}", f"B{b - 1}") in {(u, v) for u, v, _ in h.edges}  # the local loss
        assert h.task(f"F{b - 1}").cycles > g.task(f"F{b - 1}").cycles  # the local classifier's work
        assert h.memory[b - 1].weight_bytes > g.memory[b - 1].weight_bytes
    for a, _b in ranges[1:]:  # a block's first layer sends no gradient back any more
        assert len(h.task(f"B{a}").gemms) == len(g.task(f"B{a}").gemms) - 1


@pytest.mark.parametrize("net", NETS)
def test_bloctrain_shrinks_the_later_blocks(graphs, net):
    g = graphs[net]
    # the same classifiers and detectors (BlocTrain's head size) on every sample: only the shrinking differs
    loc = local(g, 2, detector=True, pool=BLOCTRAIN_HEAD_POOL)
    bt = transform(g, "bloctrain", blocks=2, hard_fraction=0.5)
    a, _ = partition(g.num_layers, 2)[1]
    for layer in range(a, g.num_layers):
        assert bt.task(f"F{layer}").cycles < loc.task(f"F{layer}").cycles
    assert bt.total_cycles() < loc.total_cycles()


def test_transform_rejects_bad_options(graphs):
    g = graphs["snn-cnn"]
    for method, params in (("nope", {}), ("skipper", {"every": 2, "skip": 2}), ("ttl", {"window": 0}),
                           ("bloctrain", {"hard_fraction": 0.0}), ("local", {"blocks": 9})):
        with pytest.raises(MethodError):
            transform(g, method, **params)


@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("procs", [2, 4])
@pytest.mark.parametrize("method", ["local", "ttl", "bloctrain"])
def test_local_losses_remove_layerpipe_delay_when_stages_are_blocks(graphs, net, procs, method):
    """A block per stage: B never waits for a later stage, so LayerPipe's 2*(stages after l) delay vanishes."""
    g = graphs[net]
    cluster = load_cluster(None, processors=procs)
    al = aligned(g, cluster, method, stages=procs)
    h = al.graph
    assert al.aligned and list(al.borders) == [a for a, _ in stage_ranges(h, cluster, procs)[1:]]
    before = schedules.generate("layerpipe", g, cluster, stages=procs)
    after = schedules.generate("layerpipe", h, cluster, stages=procs)
    assert max(before.gradient_delays) >= 2  # at least one hop back and forth before
    assert max(after.gradient_delays) == 0


def test_bare_cycle_graphs_pass_through():
    g = chain_graph([(5, 6, 7)] * 4)
    h = transform(g, "local", blocks=2)
    assert h.total_cycles() == g.total_cycles()
    assert ("B2", "B1") not in {(u, v) for u, v, _ in h.edges}


def test_bare_cycle_graphs_checkpoint():
    g = chain_graph([(5, 6, 7)] * 3)
    h = transform(g, "checkpoint", every=2)
    assert h.task("B1").cycles == 11 and h.task("W1").cycles == 7
