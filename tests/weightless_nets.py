"""Models and task graphs with layers without weights (products of two activations, concatenations), shared by
tests/test_weightless.py (the vocabulary, costs against torch, the command line) and
tests/test_weightless_schedules.py (generators, schedule files, memory, trainer, methods, distributed plan)."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from spikepipe.costs import build_task_graph
from spikepipe.frontend import trace
from spikepipe.ir import LayerSpec, Task, TaskGraph, TaskKind, chain_graph, task_id
from spikepipe.snn import LIF, TimeDistributed

F, B, W = TaskKind.F, TaskKind.B, TaskKind.W
T, BATCH, CLASSES = 3, 4, 3



# ---------------------------------------------------------------- models written by hand


class TinyAttention(nn.Module):
    """[T, B, d, n] -> a Conv1d stem makes n tokens of d features -> spiking self-attention (Q K^T) V with a
    spike-driven gate V * A, a projection with a residual add, then a linear readout on the flattened tokens:
    products of two activations (matmul), an element-wise product (mul), and layers with weights around them."""

    def __init__(self, tokens: int = 4, dim: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.embed, self.embed_lif = TimeDistributed(nn.Conv1d(dim, dim, 1)), LIF()
        self.q, self.k, self.v = (TimeDistributed(nn.Linear(dim, dim)) for _ in range(3))
        self.q_lif, self.k_lif, self.v_lif, self.attn_lif, self.gate_lif = LIF(), LIF(), LIF(), LIF(), LIF()
        self.proj, self.proj_lif = TimeDistributed(nn.Linear(dim, dim)), LIF()
        self.head = TimeDistributed(nn.Linear(tokens * dim, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed_lif(self.embed(x)).transpose(-1, -2)  # [T, B, n, d]
        t, b, n, d = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.reshape(t, b, n, self.heads, d // self.heads).transpose(2, 3)

        q, k, v = (split(lif(f(x))) for f, lif in ((self.q, self.q_lif), (self.k, self.k_lif), (self.v, self.v_lif)))
        a = self.attn_lif((q @ k.transpose(-2, -1)) @ v * 0.25)
        g = self.gate_lif(a * v)
        y = self.proj_lif(self.proj(g.transpose(2, 3).reshape(t, b, n, d))) + x
        return self.head(y.flatten(2))  # [T, B, classes]: the readout averages over T


class BranchConcat(nn.Module):
    """Two conv branches concatenated along channels, then a conv and a readout."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = TimeDistributed(nn.Conv2d(2, 4, 3, padding=1)), TimeDistributed(nn.Conv2d(2, 3, 1))
        self.lif_a, self.lif_b, self.lif_c = LIF(), LIF(), LIF()
        self.c = TimeDistributed(nn.Conv2d(7, 2, 3))
        self.fc = TimeDistributed(nn.Linear(2 * 4 * 4, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lif_c(self.c(torch.cat([self.lif_a(self.a(x)), self.lif_b(self.b(x))], dim=2)))
        return self.fc(y.flatten(2))


def _sj_zoo(name: str) -> tuple[nn.Module, torch.Tensor]:
    pytest.importorskip("spikingjelly.activation_based")
    from sj_zoo import zoo_module

    if name == "spikformer":
        net = zoo_module("spikformer").Spikformer(T=2, in_channels=3, img_size_h=16, img_size_w=16, patch_size=4,
                                                  num_classes=5, embed_dims=32, num_heads=4, depths=1)
        return net, torch.rand(2, 3, 16, 16)
    net = zoo_module("spike_driven_transformer").SpikeDrivenTransformer(T=2, in_channels=3, num_classes=5,
                                                                          embed_dims=32, num_heads=4, depths=1)
    return net, torch.rand(2, 3, 32, 32)


MODELS = {
    "tiny-attention": lambda: (TinyAttention(), torch.rand(T, 2, 8, 4)),
    "branch-concat": lambda: (BranchConcat(), torch.rand(T, 2, 2, 6, 6)),
    "spikformer": lambda: _sj_zoo("spikformer"),
    "spike-driven-transformer": lambda: _sj_zoo("sdt"),
}


def _reset(model: nn.Module) -> None:
    try:
        from spikingjelly.activation_based import functional

        functional.reset_net(model)
    except ImportError:
        pass


def torch_forward_backward_macs(model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """torch's FLOP counter over one forward and one backward (the input needs no gradient): MACs = FLOPs / 2."""
    _reset(model)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        fwd = counter.get_total_flops()
        (out[0] if isinstance(out, tuple) else out).float().sum().backward()
    _reset(model)
    return fwd // 2, (counter.get_total_flops() - fwd) // 2


def task_macs(task: Task) -> int:
    return sum(g.macs for g in task.gemms)



# ---------------------------------------------------------------- every generator on such graphs


def attention_dag(layers: int, seed: int) -> TaskGraph:
    """A random layer DAG (bare cycles) in which every third layer is a product of two earlier layers' outputs:
    no W task, inputs from the layer before and one earlier layer."""
    rng = random.Random(seed)
    specs, tasks, edges = [], [], []
    for j in range(layers):
        product = j >= 2 and j % 3 == 2
        ins = (j - 1, rng.randrange(0, j - 1)) if product else (j - 1,)
        specs.append(LayerSpec(j, f"l{j}", "matmul" if product else "linear", (1, 1, 1) if product else (1,),
                               (1, 1, 1) if product else (1,), inputs=ins))
        for k in (F, B) if product else (F, B, W):
            tasks.append(Task(task_id(k, j), j, k, cycles=rng.randint(200, 4000)))
        for i in ins:
            if i >= 0:
                nbytes = rng.randint(0, 4096)
                edges += [(f"F{i}", f"F{j}", nbytes), (f"B{j}", f"B{i}", nbytes)]
        if not product:
            edges.append((f"B{j}", f"W{j}", 0))
    edges.append((f"F{layers - 1}", f"B{layers - 1}", 0))
    return TaskGraph(specs, tasks, edges, batch=8, timesteps=1, name=f"attention-dag{layers}s{seed}")


def _tiny_attention_graph() -> TaskGraph:
    torch.manual_seed(0)
    model, x = MODELS["tiny-attention"]()
    return build_task_graph(trace(model, x), batch=BATCH, timesteps=T, name="tiny-attention")


GRAPHS = {
    "chain": chain_graph([(3000, 2500, 2000), (1200, 2600), (2800, 2400, 1900), (900, 1800), (2500, 2200, 1500)],
                         edge_bytes=1024, batch=8),
    "attention-dag": attention_dag(9, seed=4),
    "tiny-attention": _tiny_attention_graph(),
}
