"""The AC/MAC split per GEMM (spikepipe.costs.ops_split), checked against the real torch modules: which synaptic
ops really read a binary tensor, and how many accumulates a spike-driven linear layer really performs."""

from __future__ import annotations

import pytest
import torch

from hwmodels import Processor
from spikepipe import zoo
from spikepipe.activity import calibrate_batchnorm
from spikepipe.costs import (
    CostModelError,
    OpsSplit,
    build_task_graph,
    graph_ops_split,
    ops_split,
    task_ops_split,
)
from spikepipe.frontend import trace
from spikepipe.ir import Gemm, TaskKind, task_id

B, T = 2, 3


@pytest.fixture(scope="module", params=zoo.names())
def built(request):
    torch.manual_seed(0)
    model, x = zoo.build(request.param, batch=B, timesteps=T)
    layers = trace(model, x[:, :1])
    graph = build_task_graph(layers, batch=B, timesteps=T, processor=Processor(), name=request.param)
    # batch norms from the data, so that the untrained network's neurons fire and averages of spikes show
    calibrate_batchnorm(model, [x])
    inputs: dict[str, list[torch.Tensor]] = {}  # every call (a time-looped model calls once per step)
    hooks = [model.get_submodule(s.name).register_forward_hook(
        lambda _m, a, _o, name=s.name: inputs.setdefault(name, []).append(a[0].detach())) for s in layers]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    return model, layers, graph, inputs


def test_binary_operand_is_where_torch_sees_spikes(built):
    """F and W read the layer's input spikes (binary when the producer fires and no average pool follows), B is
    always dense."""
    _, layers, graph, inputs = built
    live = 0
    for s in layers:
        x = torch.cat([t.flatten() for t in inputs[s.name]])
        averaged = any(p.kind in ("avgpool", "adaptiveavgpool") for src in s.inputs if src >= 0
                       for p in layers[src].post_ops)
        if averaged:  # where an average decides it, the check must see spikes to mean anything
            assert x.abs().sum() > 0, f"{s.name} sees no signal"
        live += bool(x.abs().sum() > 0)
        binary = bool(((x == 0) | (x == 1)).all()) and s.inputs != (-1,)
        f, b, w = (graph.task(task_id(k, s.index)) for k in TaskKind)
        assert all(g.binary_operand == ("a" if binary else None) for g in f.gemms + w.gemms), s.name
        assert all(g.binary_operand is None for g in b.gemms)
    assert live >= len(layers) // 2


def test_dense_split_is_the_mac_count(built):
    _, _, graph, _ = built
    want = sum(t["macs"] for t in graph.to_dict()["tasks"])
    assert graph_ops_split(graph) == OpsSplit(want, 0.0)
    assert graph_ops_split(graph, kinds="F").macs == sum(t["macs"] for t in graph.to_dict()["tasks"] if t["kind"] == "F")


@pytest.mark.parametrize("a", [0.0, 0.25, 1.0])
def test_activity_bounds(built, a):
    """Activity 0: only the dense GEMMs remain, as MACs; 1: every binary GEMM's MACs become ACs one for one."""
    _, layers, graph, _ = built
    dense = graph_ops_split(graph)
    split = graph_ops_split(graph, [a] * len(layers))
    binary_macs = sum(g.macs for t in graph.tasks for g in t.gemms if g.binary_operand)
    assert split.macs == dense.macs - binary_macs
    assert split.acs == pytest.approx(a * binary_macs)


def test_linear_layer_acs_equal_spikes_times_fanout(built):
    """For a linear layer each input spike drives exactly N accumulates: the measured count equals the split's."""
    _, layers, graph, inputs = built
    checked = 0
    for s in layers:
        f = graph.task(task_id("F", s.index))
        if s.op != "linear" or not f.gemms[0].binary_operand:
            continue
        x = torch.cat([t.flatten() for t in inputs[s.name]])
        assert x.numel() == T * B * s.in_shape[0]
        activity = float((x != 0).double().mean())
        nnz = int((x != 0).sum())  # over the T x B sample-steps the forward saw
        true_acs = nnz * s.out_shape[0]
        activities = [1.0] * len(layers)
        activities[s.index] = activity
        assert task_ops_split(f, activities).acs == pytest.approx(true_acs)
        checked += 1
    if not checked:
        pytest.skip("no spike-driven linear layer in this network")


def test_ops_split_rejects_bad_activity():
    g = Gemm(4, 5, 6, binary_operand="a")
    assert ops_split(g) == OpsSplit(120, 0.0)
    assert ops_split(Gemm(4, 5, 6), 0.5) == OpsSplit(120, 0.0)
    for bad in (-0.1, 1.5):
        with pytest.raises(CostModelError):
            ops_split(g, bad)


def test_microbatch_split_keeps_the_flag():
    g = Gemm(8, 5, 6, "m", 2, "a")
    assert g.scaled(0.5).binary_operand == "a"
    assert ops_split(g.scaled(0.5), 1.0).acs == 4 * 5 * 6 * 2
