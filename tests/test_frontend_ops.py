"""Each operation the front end reads, on small shapes, against torch's FLOP counter (tests/frontend_oracle.py);
SpikingJelly's spiking transformers (Spikformer, Spike-driven Transformer) traced, costed and scheduled on P
processors; every neuron's vector cost follows its row in hwmodels.vector."""

from __future__ import annotations

import pytest
import torch
from frontend_oracle import check_oracle
from torch import nn

from hwmodels.vector import DEFAULT_OPS_PER_ELEMENT, VectorUnit
from spikepipe.costs import build_task_graph
from spikepipe.snn import LIF, TimeDistributed

sj = pytest.importorskip("spikingjelly.activation_based")
from sj_zoo import zoo_module  # noqa: E402
from spikingjelly.activation_based import layer, neuron  # noqa: E402

T, B = 3, 2


def _seq(*mods: nn.Module) -> nn.Module:
    return nn.Sequential(*(layer.SeqToANNContainer(m) if not isinstance(m, (LIF, neuron.BaseNode)) else m
                           for m in mods))


def _sn() -> nn.Module:
    return neuron.LIFNode(step_mode="m")


OPS = {
    "conv1d": (lambda: _seq(nn.Conv1d(2, 6, 5, stride=2, padding=2), _sn(), nn.Flatten(), nn.Linear(6 * 8, 3)),
               (2, 16)),
    "conv1d-grouped-dilated": (lambda: _seq(nn.Conv1d(4, 8, 3, dilation=2, groups=2, padding="same"), _sn(),
                                            nn.Conv1d(8, 4, 1), _sn()), (4, 12)),
    "maxpool1d": (lambda: _seq(nn.Conv1d(2, 4, 3), _sn(), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(4 * 7, 2)),
                  (2, 16)),
    "avgpool1d": (lambda: _seq(nn.Conv1d(2, 4, 3), _sn(), nn.AvgPool1d(3, 2), nn.Flatten(), nn.Linear(4 * 6, 2)),
                  (2, 16)),
    "adaptive-avgpool1d": (lambda: _seq(nn.Conv1d(2, 4, 3), _sn(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                                        nn.Linear(4, 2)), (2, 16)),
    "adaptive-pool2d": (lambda: _seq(nn.Conv2d(3, 4, 3), _sn(), nn.AdaptiveAvgPool2d((2, 2)), nn.Flatten(),
                                     nn.Linear(16, 2)), (3, 10, 10)),
    "adaptive-maxpool2d": (lambda: _seq(nn.Conv2d(3, 4, 3), _sn(), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                                        nn.Linear(4, 2)), (3, 8, 8)),
    "layernorm": (lambda: _seq(nn.Linear(10, 12), nn.LayerNorm(12), _sn(), nn.Linear(12, 3)), (10,)),
    "voting-layer": (lambda: nn.Sequential(layer.Linear(10, 20, step_mode="m"), _sn(),
                                           layer.VotingLayer(5, step_mode="m")), (10,)),
}


@pytest.mark.parametrize("name", OPS)
def test_operation_macs_equal_torch(name: str) -> None:
    build, shape = OPS[name]
    traced = check_oracle(build(), torch.rand(T, B, *shape), T, B)
    kinds = {p.kind for s in traced.layers for p in s.post_ops}
    want = {"maxpool1d": "maxpool", "avgpool1d": "avgpool", "adaptive-avgpool1d": "adaptiveavgpool",
            "adaptive-pool2d": "adaptiveavgpool", "adaptive-maxpool2d": "maxpool", "layernorm": "layernorm",
            "voting-layer": "avgpool"}.get(name)
    assert want is None or want in kinds


class Attention(nn.Module):
    """Spikformer-style spiking self-attention written by hand: Q, K, V convs with neurons, (Q K^T) V * scale."""

    def __init__(self, dim: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = (TimeDistributed(nn.Linear(dim, dim)) for _ in range(3))
        self.q_lif, self.k_lif, self.v_lif, self.attn_lif = LIF(), LIF(), LIF(), LIF()
        self.proj = TimeDistributed(nn.Linear(dim, dim))
        self.proj_lif = LIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, B, tokens, dim]
        t, b, n, d = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.reshape(t, b, n, self.heads, d // self.heads).transpose(2, 3)

        q, k, v = (split(lif(f(x))) for f, lif in ((self.q, self.q_lif), (self.k, self.k_lif),
                                                   (self.v, self.v_lif)))
        a = (q @ k.transpose(-2, -1)) @ v * 0.125
        y = self.attn_lif(a).transpose(2, 3).reshape(t, b, n, d)
        return self.proj_lif(self.proj(y)) + x


class TokenStem(nn.Module):
    """A Conv1d stem over [T, B, C, L] whose output is turned into tokens [T, B, L, D] for per-token Linears."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.lif = TimeDistributed(nn.Conv1d(2, 8, 1)), LIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif(self.conv(x)).transpose(-1, -2)


@pytest.mark.parametrize(("t", "b"), [(3, 1), (2, 3)])
def test_hand_written_attention_products_are_weightless_layers(t: int, b: int) -> None:
    model = nn.Sequential(TokenStem(), Attention())
    traced = check_oracle(model, torch.rand(t, b, 2, 4), t, b)  # 4 tokens of 8 features, 2 heads
    linears = [s for s in traced.layers if s.op == "linear"]
    assert linears and all(s.in_shape == (4, 8) for s in linears)  # tokens are rows of each sample's GEMM
    products = [s for s in traced.layers if s.op == "matmul"]
    assert [(s.in_shape, s.out_shape) for s in products] == [((2, 4, 4), (2, 4, 4)), ((2, 4, 4), (2, 4, 4))]
    assert all(s.weight_count == 0 for s in products)
    g = build_task_graph(traced.layers, batch=b, timesteps=t)
    for s in products:
        assert not g.has_task(s.index, "W") and g.weight_bytes(s.index) == 0  # no weights: no W task
        assert len(g.task(f"B{s.index}").gemms) == 2  # the gradient of both operands


def _spikformer() -> tuple[nn.Module, torch.Tensor]:
    net = zoo_module("spikformer").Spikformer(T=2, in_channels=3, img_size_h=16, img_size_w=16, patch_size=4,
                                              num_classes=5, embed_dims=32, num_heads=4, depths=1)
    return net, torch.rand(2, 3, 16, 16)


def _sdt() -> tuple[nn.Module, torch.Tensor]:
    net = zoo_module("spike_driven_transformer").SpikeDrivenTransformer(T=2, in_channels=3, num_classes=5,
                                                                          embed_dims=32, num_heads=4, depths=1)
    return net, torch.rand(2, 3, 32, 32)


@pytest.mark.parametrize("build", [_spikformer, _sdt], ids=["spikformer", "spike-driven-transformer"])
def test_spiking_transformers_from_the_zoo_cost_exactly_and_schedule(build) -> None:
    from hwmodels.config import load_cluster
    from spikepipe.sim.evaluate import evaluate_graph

    model, x = build()
    traced = check_oracle(model, x, 2, 2)
    assert traced.layout.style == "time-in-forward" and traced.layout.time_fixed
    assert {s.op for s in traced.layers} >= {"conv"} and any(s.weight_count == 0 for s in traced.layers)
    cluster = load_cluster(None, processors=4)
    g = build_task_graph(traced.layers, batch=2, timesteps=2, processor=cluster.processors[0])
    report = evaluate_graph(g, cluster, ["sequential", "gpipe", "spikepipe"], options={"time_limit_s": 2.0}).report
    assert not report["errors"]
    assert all(r["speedup"] > 1.0 for r in report["results"] if r["schedule"] != "sequential")


NEURONS = {
    "if": lambda: neuron.IFNode(step_mode="m"), "lif": lambda: neuron.LIFNode(step_mode="m"),
    "plif": lambda: neuron.ParametricLIFNode(step_mode="m"), "neuron": lambda: neuron.KLIFNode(step_mode="m"),
}


@pytest.mark.parametrize("kind", NEURONS)
def test_neuron_vector_cycles_follow_their_state_update(kind: str) -> None:
    model = nn.Sequential(layer.Linear(16, 256, step_mode="m"), NEURONS[kind]())
    traced = check_oracle(model, torch.rand(T, B, 16), T, B)
    spec = traced.layers[0].neuron
    assert spec is not None and spec.kind == kind
    g = build_task_graph(traced.layers, batch=B, timesteps=T)
    vu = g.reference.vector
    for task, direction in (("F0", "fwd"), ("B0", "bwd")):
        work = next(v for v in g.task(task).vector if v.op == f"{kind}_{direction}")
        ops = work.ops_per_element or DEFAULT_OPS_PER_ELEMENT[work.op]
        assert vu.cycles(work.op, work.elements, work.timesteps, ops=work.ops_per_element or None) == \
            -(-256 * B // vu.lanes) * T * ops
    if kind == "neuron":  # measured: at least charge, fire and reset, and backward costs more than forward
        assert spec.ops_fwd >= 3 and spec.ops_bwd > spec.ops_fwd


def test_vector_unit_takes_a_measured_op_count() -> None:
    vu = VectorUnit(lanes=4)
    assert vu.cycles("neuron_fwd", 10, 3, ops=7) == 3 * 3 * 7
    assert vu.cycles("neuron_fwd", 10, 3) == 3 * 3 * DEFAULT_OPS_PER_ELEMENT["neuron_fwd"]


class ChannelConcat(nn.Module):
    """Two conv branches concatenated along channels (DenseNet / U-Net style), then a conv over both."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = TimeDistributed(nn.Conv2d(2, 4, 3, padding=1)), TimeDistributed(nn.Conv2d(2, 6, 1))
        self.lif_a, self.lif_b, self.lif_c = LIF(), LIF(), LIF()
        self.c = TimeDistributed(nn.Conv2d(10, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif_c(self.c(torch.cat([self.lif_a(self.a(x)), self.lif_b(self.b(x))], dim=2)))


@pytest.mark.parametrize(("t", "b"), [(3, 2), (1, 1)])
def test_channel_concatenation_is_a_weightless_layer(t: int, b: int) -> None:
    traced = check_oracle(ChannelConcat(), torch.rand(t, b, 2, 8, 8), t, b)
    concat = next(s for s in traced.layers if s.op == "concat")
    assert concat.out_shape == (10, 8, 8) and concat.inputs == (0, 1) and not concat.has_weights
    assert traced.layers[-1].inputs == (concat.index,) and traced.layers[-1].in_shape == (10, 8, 8)
    g = build_task_graph(traced.layers, batch=b, timesteps=t)
    assert {(u, v) for u, v, _ in g.edges} >= {("F0", f"F{concat.index}"), ("F1", f"F{concat.index}"),
                                               (f"B{concat.index}", "B0"), (f"B{concat.index}", "B1")}
