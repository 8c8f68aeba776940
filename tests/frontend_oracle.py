"""The front-end oracle shared by the front-end tests: torch.utils.flop_counter on the real model and the user's
own example. F MACs = FLOPs / 2 (conv and matmul), exactly; B and W MACs follow from F: the input-gradient GEMM
has F's MACs except for layers fed only by the network input (nobody needs that gradient), a product of two
activations has two (one per operand); the weight-gradient GEMM has F's MACs, and a layer without weights has no
W task at all."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from spikepipe.costs import build_task_graph
from spikepipe.frontend import Traced, trace_model


def torch_macs(model: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    try:
        from spikingjelly.activation_based import functional

        functional.reset_net(model)
    except ImportError:
        pass
    return counter.get_total_flops() // 2


def check_oracle(model: nn.Module, x: torch.Tensor, t: int, b: int, **overrides: int) -> Traced:
    traced = trace_model(model, x, **overrides)
    assert (traced.layout.timesteps, traced.layout.batch) == (t, b)
    g = build_task_graph(traced.layers, batch=b, timesteps=t)
    macs = {k: {s.index: sum(gm.macs for gm in g.task(f"{k}{s.index}").gemms) for s in g.layers
                if g.has_task(s.index, k)} for k in "FBW"}
    assert sum(macs["F"].values()) == torch_macs(model, x)
    for s in g.layers:
        f = macs["F"][s.index]
        assert g.has_task(s.index, "W") == s.has_weights
        assert macs["W"].get(s.index, 0) == (f if s.has_weights else 0)
        want_b = 2 * f if s.op == "matmul" else (0 if all(i < 0 for i in s.inputs) else f)
        assert macs["B"][s.index] == want_b
    return traced
