"""Costs of a small network computed by hand: GEMM shapes per pass, vector work, edge bytes, memory held."""

from __future__ import annotations

from math import ceil

import pytest

from hwmodels import Processor
from spikepipe.costs import CostModelError, Precision, build_task_graph
from spikepipe.ir import LayerSpec, NeuronSpec, PostOp

N = NeuronSpec()
LAYERS = [
    LayerSpec(0, "c0", "conv", (3, 8, 8), (4, 8, 8), kernel=(3, 3), padding=(1, 1), neuron=N,
              post_ops=(PostOp("batchnorm", (4, 8, 8), (4, 8, 8)), PostOp("maxpool", (4, 8, 8), (4, 4, 4), (2, 2),
                                                                      (2, 2)),
                        PostOp("flatten", (4, 4, 4), (64,))), inputs=(-1,)),
    LayerSpec(1, "f1", "linear", (64,), (16,), neuron=N, inputs=(0,)),
    LayerSpec(2, "f2", "linear", (16,), (10,), bias=True, inputs=(1,)),
]


@pytest.mark.parametrize(("batch", "timesteps"), [(1, 1), (4, 2), (32, 4)])
def test_hand_computed_costs(batch: int, timesteps: int) -> None:
    word = 2
    g = build_task_graph(LAYERS, batch=batch, timesteps=timesteps, processor=Processor(),
                         precision=Precision(word_bytes=word, weight_bytes=word, optimizer_state_words=2))
    bt = batch * timesteps
    f0 = g.task("F0")
    assert [(x.m, x.k, x.n, x.batch_dim) for x in f0.gemms] == [(bt * 64, 27, 4, "m")]
    assert g.task("B0").gemms == ()  # nobody needs the gradient of the network input
    assert [(x.m, x.k, x.n, x.batch_dim) for x in g.task("W0").gemms] == [(27, bt * 64, 4, "k")]
    assert [(x.m, x.k, x.n) for x in g.task("B1").gemms] == [(bt, 16, 64)]
    assert [(x.m, x.k, x.n) for x in g.task("W2").gemms] == [(16, bt, 10)]
    ops = [(v.op, v.elements, v.timesteps) for v in f0.vector]
    assert ops == [("batchnorm_fwd", 256 * batch, timesteps), ("lif_fwd", 256 * batch, timesteps),
                   ("maxpool", 256 * batch, timesteps)]
    assert [v.op for v in g.task("B0").vector] == ["maxpool_bwd", "lif_bwd", "batchnorm_bwd"]
    assert g.task("B2").vector[0].op == "loss"  # the loss is folded into the last layer's B
    # edges: spikes as bits forward, gradients in words backward, loss F2 -> B2, B -> W
    e = {(u, v): b for u, v, b in g.edges}
    assert e[("F0", "F1")] == ceil(64 * bt / 8)
    assert e[("F1", "F2")] == ceil(16 * bt / 8)
    assert e[("B2", "B1")] == 16 * bt * word and e[("B1", "B0")] == 64 * bt * word
    assert e[("F2", "B2")] == 10 * bt * word  # the last layer emits values, not spikes
    # W needs dY at the synaptic output: B*T*E*F*C_out gradients
    assert (e[("B0", "W0")], e[("B1", "W1")], e[("B2", "W2")]) == (256 * bt * word, 16 * bt * word, 10 * bt * word)
    assert len(e) == 8
    # what BPTT keeps per in-flight minibatch: input (bits if spikes), membrane potentials, BN input and its two
    # statistics per channel, the 2x2 max-pool winners (2 bits per output; spikepipe.layer_memory)
    assert f0.activation_bytes == (3 * 64 * bt * word + 256 * bt * word + 256 * bt * word + 2 * 4 * word
                                   + ceil(64 * bt * 2 / 8))
    assert g.task("F1").activation_bytes == ceil(64 * bt / 8) + 16 * bt * word
    assert g.memory[2].weight_bytes == (16 * 10 + 10) * word
    assert g.memory[0].weight_bytes == (4 * 27 + 2 * 4) * word and g.memory[0].optimizer_bytes == \
        2 * g.memory[0].weight_bytes
    assert all(t.cycles > 0 for t in g.tasks)


def test_cycles_follow_the_array_and_scale_with_batch() -> None:
    small = build_task_graph(LAYERS, batch=8, timesteps=4)
    big = build_task_graph(LAYERS, batch=32, timesteps=4)
    for tid in ("F0", "B1", "W0"):
        assert big.cycles(tid) > small.cycles(tid)
        task = big.task(tid)
        assert big.cycles(tid) == sum(x.groups * big.reference.gemm_cycles(x.m, x.k, x.n) for x in task.gemms) + \
            sum(big.reference.vector.cycles(v.op, v.elements, v.timesteps) for v in task.vector)


def test_bad_inputs_are_typed_errors() -> None:
    with pytest.raises(CostModelError, match="positive"):
        build_task_graph(LAYERS, batch=0, timesteps=4)
    with pytest.raises(CostModelError, match="no trainable"):
        build_task_graph([], batch=1, timesteps=1)
    bad = [LayerSpec(0, "c", "conv", (3, 4, 4), (4, 4, 4), groups=2)]
    with pytest.raises(CostModelError, match="divisible by groups"):
        build_task_graph(bad, batch=1, timesteps=1)
