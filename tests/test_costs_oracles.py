"""Costed task graphs of the zoo, checked against oracles outside spikepipe.costs: tensor sizes produced by the
real torch modules (bytes on edges), torch's own parameter counts (memory), the declared SNNNet structure (the
edges of docs/design.md section 4) and the conv arithmetic (MACs)."""

from __future__ import annotations

from math import ceil, prod

import pytest
import torch
from torch import nn

from hwmodels import Processor
from spikepipe import zoo
from spikepipe.costs import Precision, build_task_graph, forward_macs
from spikepipe.frontend import trace
from spikepipe.ir import TaskKind, task_cycles, task_id

B, T = 2, 2
NETS = zoo.names()


@pytest.fixture(scope="module", params=NETS)
def built(request: pytest.FixtureRequest):
    model, x = zoo.build(request.param, batch=B, timesteps=T)
    layers = trace(model, x[:, :1])
    graph = build_task_graph(layers, batch=B, timesteps=T, processor=Processor(), name=request.param)
    return model, x, layers, graph


def _block_outputs(model: zoo.SNNNet, x: torch.Tensor) -> list[torch.Tensor]:
    outs: list[torch.Tensor] = []
    hs = [b.register_forward_hook(lambda _m, _a, o: outs.append(o)) for b in model.blocks]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in hs:
            h.remove()
    return outs


def test_every_layer_has_f_b_w_with_positive_cycles(built) -> None:
    _, _, layers, graph = built
    graph.validate()
    for s in layers:
        for kind in TaskKind:
            tid = task_id(kind, s.index)
            assert graph.cycles(tid) > 0
            assert graph.cycles(tid) == task_cycles(graph.task(tid), graph.reference)


def test_edges_are_those_of_the_design(built) -> None:
    model, _, layers, graph = built
    want = set()
    for i, (src, res) in enumerate(zip(model.sources, model.residuals, strict=True)):
        for s in {src, res} - {None, -1}:
            want |= {(f"F{s}", f"F{i}"), (f"B{i}", f"B{s}")}
        want.add((f"B{i}", f"W{i}"))
    last = len(layers) - 1
    want.add((f"F{last}", f"B{last}"))
    assert {(u, v) for u, v, _ in graph.edges} == want


def test_edge_bytes_are_the_real_tensor_sizes(built) -> None:
    """Forward edges carry spikes as bits (a layer with a neuron) or values at the word size; backward edges
    carry gradients at the word size. Sizes come from the tensors the real blocks produce."""
    model, x, layers, graph = built
    outs = _block_outputs(model, x)
    word = graph.reference.word_bytes
    for u, v, nbytes in graph.edges:
        if u[0] == v[0] == "F":
            src = int(u[1:])
            elems = outs[src].numel()
            assert nbytes == (ceil(elems / 8) if layers[src].neuron is not None else elems * word), (u, v)
            if layers[src].neuron is not None:
                assert set(outs[src].unique().tolist()) <= {0.0, 1.0}  # they really are spikes
        elif u[0] == v[0] == "B":
            assert nbytes == outs[int(v[1:])].numel() * word, (u, v)


def test_weight_memory_equals_torch_parameter_count(built) -> None:
    model, _, layers, graph = built
    for s in layers:
        block = model.blocks[s.index]
        params = sum(p.numel() for m in (block.synapse, block.norm) if m is not None for p in m.parameters())
        mem = graph.memory[s.index]
        assert mem.weight_bytes == params * graph.reference.word_bytes
        assert mem.optimizer_bytes == mem.weight_bytes * Precision().optimizer_state_words


def test_gemm_macs_follow_the_conv_arithmetic(built) -> None:
    _, _, layers, graph = built
    for s in layers:
        if s.op == "conv":
            c_in, h, w = s.in_shape
            e = (h + 2 * s.padding[0] - s.dilation[0] * (s.kernel[0] - 1) - 1) // s.stride[0] + 1
            f = (w + 2 * s.padding[1] - s.dilation[1] * (s.kernel[1] - 1) - 1) // s.stride[1] + 1
            assert s.out_shape[1:] == (e, f)
            want = B * T * e * f * s.out_shape[0] * c_in // s.groups * prod(s.kernel)
        else:
            want = B * T * s.in_shape[0] * s.out_shape[0]
        assert sum(g.macs for g in graph.task(f"F{s.index}").gemms) == want == forward_macs(s, B * T)
        # W always has the weight-gradient GEMM; B has the input-gradient GEMM unless it reads the network input
        assert sum(g.macs for g in graph.task(f"W{s.index}").gemms) == want
        assert sum(g.macs for g in graph.task(f"B{s.index}").gemms) == (0 if s.inputs == (-1,) else want)


@pytest.mark.parametrize("fraction", [0.5, 0.25, 1 / 3])
def test_micro_batch_scaling_shrinks_batch_dims_only(built, fraction: float) -> None:
    _, _, _, graph = built
    for t in graph.tasks:
        small = t.scaled(fraction)
        for g, h in zip(t.gemms, small.gemms, strict=True):
            for dim in "mkn":
                full, part = getattr(g, dim), getattr(h, dim)
                assert part == (max(1, ceil(full * fraction)) if dim == g.batch_dim else full)
            assert g.batch_dim == ("k" if t.kind is TaskKind.W else "m")
        for v, w in zip(t.vector, small.vector, strict=True):
            assert w.timesteps == v.timesteps
            assert w.elements == (max(1, ceil(v.elements * fraction)) if v.per_batch else v.elements)
        assert small.activation_bytes == ceil(t.activation_bytes * fraction)
        assert graph.cycles(t.id, fraction=fraction) <= graph.cycles(t.id)


def test_batch_and_timesteps_scale_work_linearly() -> None:
    model, x = zoo.build("snn-cnn", batch=1, timesteps=1)
    layers = trace(model, x)
    g1 = build_task_graph(layers, batch=2, timesteps=3)
    g2 = build_task_graph(layers, batch=4, timesteps=3)
    g3 = build_task_graph(layers, batch=2, timesteps=6)
    for t in g1.tasks:
        m1 = sum(g.macs for g in t.gemms)
        assert sum(g.macs for g in g2.task(t.id).gemms) == 2 * m1
        assert sum(g.macs for g in g3.task(t.id).gemms) == 2 * m1
    for u, v, b in g1.edges:
        if u[0] == v[0] == "B":
            assert g2.edge_bytes(u, v) == 2 * b


def test_user_model_cost_matches_its_flop_count() -> None:
    """A plain (non-zoo) model: F GEMM MACs equal torch.utils.flop_counter on the real forward pass."""
    from torch.utils.flop_counter import FlopCounterMode

    from spikepipe.snn import LIF, TimeDistributed

    model = nn.Sequential(TimeDistributed(nn.Conv2d(3, 6, 5, stride=2, padding=1, groups=3)), LIF(),
                          TimeDistributed(nn.Flatten()), TimeDistributed(nn.Linear(6 * 7 * 7, 4)))
    x = torch.rand(3, B, 3, 16, 16)
    graph = build_task_graph(trace(model, x[:, :1]), batch=B, timesteps=3)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    assert 2 * sum(g.macs for t in graph.tasks if t.kind is TaskKind.F for g in t.gemms) == counter.get_total_flops()
