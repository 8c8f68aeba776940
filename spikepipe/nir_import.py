"""Read a NIR graph (Neuromorphic Intermediate Representation, the `nir` package) as a network to cost.

The graph becomes a torch module whose synapses are torch's own (Conv1d / Conv2d / Linear with the graph's
weight shapes), whose pools are torch's pools, and whose neurons are identity modules carrying a NeuronSpec:
the one front end then traces it like any model (so a NIR graph and the torch model it came from give the same
layers and MACs). NIR has no time or batch: T and B come from --timesteps / --batch, and the graph is run
multi-step ([T, B, ...]) on the meta device, so nothing is computed.

Nodes: Input, Output, Affine, Linear, Conv1d, Conv2d, Flatten, SumPool2d, AvgPool2d, Scale, and the neurons
LIF (kind lif), CubaLIF (synaptic: current and membrane), IF (if), LI (li: leaky integrator, no spikes),
I / Integrator (integrator, no spikes), Threshold (threshold: a bare spike function). A node with several
inputs sums them (a residual add). Anything else is refused, naming the node and its type.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import prod
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spikepipe.frontend import Traced, trace_model
from spikepipe.ir import NeuronSpec, SpikePipeError
from spikepipe.snn import TimeDistributed

SUPPORTED = ("Input, Output, Affine, Linear, Conv1d, Conv2d, Flatten, SumPool2d, AvgPool2d, Scale, LIF, CubaLIF, "
             "IF, LI, I (Integrator), Threshold")
_TRACE_T, _TRACE_B = 2, 1  # traced at this size (multi-step: costs scale to any T and B)


class NIRError(SpikePipeError):
    """A NIR file cannot be read, or holds a node the front end cannot cost."""


class Neuron(nn.Module):
    """A neuron from the graph: identity on the data (costs need only its shape and kind), with its NeuronSpec."""

    def __init__(self, spec: NeuronSpec) -> None:
        super().__init__()
        self.spikepipe_neuron = spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _Flatten(nn.Module):
    def __init__(self, start: int, end: int) -> None:
        super().__init__()
        self.start, self.end = start, end

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # per-sample dims start..end, after [T, B]
        rank = x.dim() - 2
        start, end = self.start % rank + 2, self.end % rank + 2
        return x.flatten(start, end)


class _Scale(nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class GraphModule(nn.Module):
    """Runs the graph's nodes in topological order on [T, B, ...]; several inputs to a node are summed."""

    def __init__(self, nodes: dict[str, nn.Module], order: list[str], preds: dict[str, list[str]],
                 output: str) -> None:
        super().__init__()
        self.nodes = nn.ModuleDict(nodes)
        self.order, self.preds, self.output = order, preds, output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[str, torch.Tensor] = {}
        for name in self.order:
            ins = [values[p] for p in self.preds[name]] if self.preds[name] else [x]
            v = ins[0]
            for other in ins[1:]:
                v = v + other
            values[name] = self.nodes[name](v) if name in self.nodes else v
        return values[self.output]


def _first(v: Any) -> float:
    return float(np.asarray(v, dtype=float).reshape(-1)[0])


def _ints(v: Any, n: int) -> tuple[int, ...]:
    a = np.asarray(v).reshape(-1)
    return tuple(int(x) for x in (a if a.size == n else np.repeat(a[:1], n)))


def _neuron(kind: str, states: int, node: Any, threshold: float = 1.0) -> Neuron:
    tau = _first(getattr(node, "tau", getattr(node, "tau_mem", 1.0)))
    beta = 1.0 - 1.0 / tau if tau > 1.0 else 0.0  # dt = 1 step; the costs do not depend on it
    reset = "zero" if getattr(node, "v_reset", None) is not None else "subtract"
    return Neuron(NeuronSpec(beta=round(beta, 6), threshold=threshold, reset=reset, kind=kind,  # type: ignore[arg-type]
                             state_vars=states))


def _module(name: str, node: Any) -> nn.Module | None:
    import nir

    cls = type(node).__name__
    if isinstance(node, (nir.Input, nir.Output)):
        return None
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = np.asarray(node.weight)
        bias = isinstance(node, nir.Affine) and node.bias is not None
        return TimeDistributed(nn.Linear(w.shape[1], w.shape[0], bias=bias, device="meta"))
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        w = np.asarray(node.weight)
        n = 1 if isinstance(node, nir.Conv1d) else 2
        padding = node.padding if isinstance(node.padding, str) else _ints(node.padding, n)
        conv = (nn.Conv1d if n == 1 else nn.Conv2d)(
            w.shape[1] * int(node.groups), w.shape[0], _ints(w.shape[2:], n), stride=_ints(node.stride, n),
            padding=padding, dilation=_ints(node.dilation, n), groups=int(node.groups),
            bias=node.bias is not None, device="meta")
        return TimeDistributed(conv)
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        k, s, p = _ints(node.kernel_size, 2), _ints(node.stride, 2), _ints(node.padding, 2)
        # a sum pool is an average pool without the division: the same vector work
        return TimeDistributed(nn.AvgPool2d(k, s, p, divisor_override=1 if isinstance(node, nir.SumPool2d) else None))
    if isinstance(node, nir.Flatten):
        return _Flatten(int(node.start_dim), int(node.end_dim))
    if isinstance(node, nir.Scale):
        return _Scale(_first(node.scale))
    if isinstance(node, nir.LIF):
        return _neuron("lif", 1, node, _first(node.v_threshold))
    if isinstance(node, nir.CubaLIF):
        return _neuron("synaptic", 2, node, _first(node.v_threshold))
    if isinstance(node, nir.IF):
        return _neuron("if", 1, node, _first(node.v_threshold))
    if isinstance(node, nir.LI):
        return _neuron("li", 1, node)
    if isinstance(node, nir.I):
        return _neuron("integrator", 1, node)
    if isinstance(node, nir.Threshold):
        return _neuron("threshold", 1, node, _first(node.threshold))
    raise NIRError(f"NIR node {name!r} ({cls}) is not supported; supported: {SUPPORTED}")


@dataclass(frozen=True)
class NIRModule:
    """A NIR graph as a torch module, with what an example input for it needs."""

    module: GraphModule
    input_shape: tuple[int, ...]  # per sample (no time or batch dimension)


def graph_module(graph: Any) -> NIRModule:
    """The torch module of a NIR graph and the per-sample shape of its (single) input."""
    import nir

    inputs = [k for k, v in graph.nodes.items() if isinstance(v, nir.Input)]
    outputs = [k for k, v in graph.nodes.items() if isinstance(v, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NIRError(f"the NIR graph needs one Input and one Output node, it has {len(inputs)} and {len(outputs)}")
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            raise NIRError(f"NIR node {name!r} (NIRGraph) is a nested graph, which is not supported; supported: "
                           f"{SUPPORTED}")
    preds: dict[str, list[str]] = {k: [] for k in graph.nodes}
    for src, dst in graph.edges:
        if src not in graph.nodes or dst not in graph.nodes:
            raise NIRError(f"NIR edge {src}->{dst} names a node that is not in the graph")
        preds[dst].append(src)
    order: list[str] = []
    seen: set[str] = set()

    def visit(k: str, path: tuple[str, ...]) -> None:
        if k in seen:
            return
        if k in path:
            raise NIRError(f"the NIR graph has a cycle through node {k!r} (recurrent graphs are not supported)")
        for p in sorted(preds[k]):
            visit(p, (*path, k))
        seen.add(k)
        order.append(k)

    visit(outputs[0], ())
    modules = {k: m for k in order if (m := _module(k, graph.nodes[k])) is not None}
    shape = tuple(int(s) for s in np.asarray(graph.nodes[inputs[0]].input_type["input"]).reshape(-1))
    if not shape or prod(shape) < 1:
        raise NIRError(f"the NIR Input node {inputs[0]!r} has no usable shape ({shape})")
    return NIRModule(module=GraphModule(modules, order, preds, outputs[0]), input_shape=shape)


def load_nir(path: str | Path, *, timesteps: int | None, batch: int | None) -> Traced:
    """Layers and layout of the NIR graph at `path`, at the given T and B (both required: NIR has neither)."""
    p = Path(path)
    if not p.is_file():
        raise NIRError(f"NIR file {p} not found")
    if timesteps is None or batch is None:
        raise NIRError(f"a NIR graph carries no timesteps or batch size: pass --timesteps and --batch for {p.name}")
    try:
        import nir
    except ImportError:
        raise NIRError("reading .nir files needs the `nir` package (pip install nir)") from None
    try:
        graph = nir.read(str(p))
    except Exception as exc:  # noqa: BLE001 - any failure to parse the file is one line for the user
        raise NIRError(f"{p} is not a readable NIR graph: {type(exc).__name__}: {exc}") from None
    return trace_graph(graph, timesteps=timesteps, batch=batch)


def trace_graph(graph: Any, *, timesteps: int, batch: int) -> Traced:
    """Layers and layout of an in-memory NIR graph at T and B."""
    nm = graph_module(graph)
    example = torch.empty(_TRACE_T, _TRACE_B, *nm.input_shape, device="meta")
    traced = trace_model(nm.module, example, timesteps=timesteps, batch=batch)
    layout = replace(traced.layout, style="nir", timesteps_source="--timesteps (NIR has no time)",
                     batch_source="--batch (NIR has no batch)")
    return Traced(traced.layers, layout)
