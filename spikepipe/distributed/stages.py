"""Each layer's own computation, cut out of the model, so a rank holds and runs only the layers it works on.

Two kinds, one interface (`Stages.call(layer, weights, inputs, chunk, buffers)` -> the tensor layer l sends on):

- a module with the block protocol (spikepipe.zoo): layer l is block l, fed by its source and residual;
- any other module the front end accepts: torch.fx traces it (neuron modules, torch.nn modules and the modules
  of SpikingJelly and snnTorch stay whole, as leaves; a Python time loop unrolls, so every timestep of layer l lands
  in layer l's piece) and every node goes to a layer (`_assign`): a node that uses a parameter to the layer
  train.model.layer_map gives that parameter; any other node to the latest layer among its inputs (a neuron, a
  pooling or a flatten after a synaptic op belongs to that op's layer); a node fed only by the input or by buffers
  to the earliest layer using it; a layer's entry module (train.model.LayerMap.entries) to that layer. Layer l's
  piece is a GraphModule of its nodes, referencing only its modules and parameters; its inputs are the values other
  layers computed (or the network input) and its output is every value a later layer reads, flattened into one
  tensor (the last layer: the model's output, read as the trainer reads it). Buffers, constants and functions of
  the input alone (a shape, a reshaped input) are computed by every piece that uses them. The pieces compose to
  the model's own forward, op for op, so gradients are the whole model's.

Refused, each with one line saying why: a model torch.fx cannot trace (control flow on tensor values or
on the batch size; the input's other sizes are the example's while tracing, so a time loop over them unrolls), random draws in the forward (rate encoding, functional dropout: the ranks would draw in another order), a
leaf module holding parameters of two layers, a stateful module called from two layers, a layer that
reads a value a later layer computes, values other than float32 tensors between layers, a model output that the
last layer does not compute, a single-step model (one call per timestep: its neurons' state lives between calls).
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field

import torch
import torch.fx as fx
from torch import nn
from torch.func import functional_call

from spikepipe.distributed.plan import PlanError
from spikepipe.train.model import ModelFn, readout, reset_state

Weights = dict[str, torch.Tensor]
_LIBS = ("torch.nn", "torch.ao.nn", "spikingjelly", "snntorch", "spikepipe.snn")  # kept whole
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


class PartitionError(PlanError):
    """The model cannot be cut into its layers soundly (see the module docstring)."""


def _stateful(m: nn.Module) -> bool:
    mro = {c.__name__ for c in type(m).__mro__}
    return "MemoryModule" in mro or type(m).__module__.startswith("snntorch")


class _Input(fx.Proxy):
    """The network input while tracing: its sizes are the example's, except the batch size, which stays symbolic
    (chunks of a minibatch have other sizes). So `for t in range(x.size(0))` over a [T, B, ...] input unrolls."""

    def __init__(self, node: fx.Node, tracer: fx.Tracer, shape: tuple[int, ...], batch_dim: int) -> None:
        super().__init__(node, tracer)
        self._sizes, self._batch_dim = shape, batch_dim

    def _shape(self) -> tuple:
        batch = self.tracer.create_proxy("call_method", "size", (self, self._batch_dim), {})
        return tuple(batch if d == self._batch_dim else n for d, n in enumerate(self._sizes))

    def __getattr__(self, k: str) -> object:
        if k == "shape":
            return self._shape()
        if k == "size":
            return lambda d=None: self._shape() if d is None else self._shape()[d]
        if k == "dim":
            return lambda: len(self._sizes)
        if k == "ndim":
            return len(self._sizes)
        return super().__getattr__(k)

    def __len__(self) -> int:
        if self._batch_dim == 0:
            raise fx.proxy.TraceError("len() of the input is its batch size, which is not fixed")
        return self._sizes[0]


class _Tracer(fx.Tracer):
    def __init__(self, entries: set[str], shape: tuple[int, ...], batch_dim: int) -> None:
        super().__init__()
        self.entries, self.shape, self.batch_dim = entries, shape, batch_dim

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if qualname in self.entries:
            return True
        if isinstance(m, _CONTAINERS):
            return False
        return type(m).__module__.startswith(_LIBS) or _stateful(m)

    def proxy(self, node: fx.Node) -> fx.Proxy:
        if node.op == "placeholder":
            return _Input(node, self, self.shape, self.batch_dim)
        return super().proxy(node)


@dataclass
class Piece:
    """Layer l of a traced model: where each argument of its GraphModule comes from, how many values it sends."""

    inputs: tuple[tuple[int, int], ...]  # per argument: (producer layer or -1, index among its sent values)
    sent: int  # how many values it sends on (0 for the last layer, which returns the model's output)


@dataclass
class Stages:
    """The layers of one model as separate computations (see the module docstring)."""

    kind: str  # blocks | graph
    producers: tuple[tuple[int, ...], ...]  # per layer: the layers (-1: network input) it reads, in order
    modules: dict[int, nn.Module]  # the layers' computations (a rank's copy holds only its own)
    batch_dim: int = 1  # of the network input: 1 for [T, B, ...], 0 for a model that takes [B, ...]
    pieces: dict[int, Piece] = field(default_factory=dict)  # graph kind
    shapes: dict[tuple[int, int], tuple[tuple[int, ...], ...]] = field(default_factory=dict)  # (layer, chunk)
    # -> shapes of the values layer l sends on (graph kind; filled by `probe`)

    @property
    def num_layers(self) -> int:
        return len(self.producers)

    def only(self, layers: set[int]) -> Stages:
        """A copy holding only these layers' computations (what one rank receives)."""
        return Stages(self.kind, self.producers, {i: m for i, m in self.modules.items() if i in layers},
                      self.batch_dim, {i: p for i, p in self.pieces.items() if i in layers}, dict(self.shapes))

    def chunk(self, x: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """Samples lo..hi of a network input."""
        return x.narrow(self.batch_dim, lo, hi - lo)

    def buffer_names(self, layer: int) -> dict[str, str]:
        """Layer l's buffers (BatchNorm statistics; not neuron state): name inside its computation -> name in
        the whole model."""
        own = {f"{path}.{k}" if path else k: b for path, m in self.modules[layer].named_modules()
               if not _stateful(m) for k, b in m.named_buffers(recurse=False)}  # neuron state is reset anyway
        if self.kind == "blocks":
            return {k: f"blocks.{layer}.{k}" for k in own}
        return {k: k for k in own}

    def call(self, layer: int, weights: Weights, inputs: list[torch.Tensor], chunk: int,
             buffers: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Layer l on its producers' outputs (inputs[i] from producers[l][i]); fresh neurons; `buffers` replace
        the module's own (a recomputation must not update BatchNorm statistics a second time)."""
        return self._pack(layer, self._run(layer, weights, inputs, chunk, buffers))

    def _run(self, layer: int, weights: Weights, inputs: list[torch.Tensor], chunk: int,
             buffers: dict[str, torch.Tensor] | None) -> object:
        module = self.modules[layer]
        params = {**weights, **(buffers or {})}
        reset_state(module)
        if self.kind == "blocks":
            kwargs = {"residual": inputs[1]} if len(inputs) > 1 else {}
            return functional_call(module, params, (inputs[0],), kwargs)
        pos = {p: i for i, p in enumerate(self.producers[layer])}
        args = []
        for src, j in self.pieces[layer].inputs:
            value = inputs[pos[src]]
            args.append(value if src < 0 else _unpack(value, self.shapes[(src, chunk)])[j])
        return functional_call(module, params, tuple(args))

    def _pack(self, layer: int, raw: object) -> torch.Tensor:
        if self.kind == "blocks" or layer == self.num_layers - 1:
            return raw  # type: ignore[return-value]
        if not raw:
            return torch.zeros(0)
        return torch.cat([v.reshape(-1) for v in raw])  # type: ignore[union-attr]

    def logits(self, out: torch.Tensor) -> torch.Tensor:
        """Logits from the last layer's output, as the emulation reads them."""
        return out.mean(0) if self.kind == "blocks" else readout(out)

    @torch.no_grad()
    def probe(self, weights: list[Weights], x: torch.Tensor, slices: tuple[tuple[int, int], ...]
              ) -> dict[tuple[int, int], tuple[int, ...]]:
        """Run every layer once per chunk (on copies of the buffers): the shape of what each layer sends, per
        chunk (for the graph kind also the shapes of the values packed into it)."""
        out_shapes = {}
        for c, (lo, hi) in enumerate(slices):
            outs: dict[int, torch.Tensor] = {-1: self.chunk(x, lo, hi)}
            for i in range(self.num_layers):
                buffers = {k: b.clone() for k, b in self.modules[i].named_buffers()}
                raw = self._run(i, weights[i], [outs[p] for p in self.producers[i]], c, buffers)
                if self.kind == "graph" and i < self.num_layers - 1:
                    bad = [v for v in raw if not isinstance(v, torch.Tensor) or v.dtype != torch.float32]
                    if bad:
                        what = bad[0].dtype if isinstance(bad[0], torch.Tensor) else type(bad[0]).__name__
                        raise PartitionError(f"layer {i} passes a {what} value to a later layer; the distributed "
                                             f"backend sends float32 tensors between ranks")
                    self.shapes[(i, c)] = tuple(tuple(v.shape) for v in raw)
                out = self._pack(i, raw)
                if out.dtype != torch.float32:
                    raise PartitionError(f"layer {i} returns {out.dtype}; the distributed backend sends float32 "
                                         f"values between ranks")
                outs[i] = out
                out_shapes[(i, c)] = tuple(out.shape)
        return out_shapes


def _unpack(flat: torch.Tensor, shapes: tuple[tuple[int, ...], ...]) -> list[torch.Tensor]:
    out, i = [], 0
    for s in shapes:
        n = 1
        for d in s:
            n *= d
        out.append(flat[i:i + n].view(s))
        i += n
    return out


def block_stages(net: nn.Module) -> Stages:
    producers = tuple(tuple(p for p in (net.sources[i], net.residuals[i]) if p is not None)
                      for i in range(len(net.blocks)))
    return Stages("blocks", producers, dict(enumerate(net.blocks)))


def build_stages(fn: ModelFn) -> Stages:
    """The model's layers as separate computations: its blocks, or the pieces of its torch.fx graph."""
    model = fn.model
    if all(hasattr(model, a) for a in ("blocks", "sources", "residuals")):
        return block_stages(model)
    name = type(model).__name__
    if fn.single_step:
        # the trainer calls a single-step module once per timestep, its neurons keeping their state between calls;
        # a piece runs once per minibatch on the whole input, which would be one step over T x B samples
        raise PartitionError(f"{name} is a single-step model (one call is one timestep); the distributed backend "
                             f"runs each layer once per minibatch on [T, B, ...], so it needs a module that takes "
                             f"the T steps in one call (multi-step, or its time loop in forward); --backend emulate "
                             f"runs it as it is")
    entries = {e for e in fn.map.entries if e}
    try:
        shape = tuple(fn.example.shape) if fn.example is not None else ()
        graph = _Tracer(entries, shape, 1 if fn.time_major else 0).trace(model)
    except Exception as exc:  # noqa: BLE001 - the user's model, reported in one line
        text = str(exc).splitlines()[0] if str(exc) else ""
        raise PartitionError(f"{name} cannot be cut into its layers: torch.fx cannot trace it ({type(exc).__name__}: "
                             f"{text}); the distributed backend runs each layer on its own rank, --backend emulate "
                             f"runs the whole module") from None
    gm = fx.GraphModule(model, graph)
    layer_of = _assign(gm, fn, name)
    return _cut(gm, layer_of, fn.num_layers, name, 1 if fn.time_major else 0)


def _assign(gm: fx.GraphModule, fn: ModelFn, name: str) -> dict[fx.Node, int]:
    """Node -> layer (see the module docstring); the network input is layer -1."""
    param_layer = {p: i for i, ps in enumerate(fn.map.params) for p in ps}
    modules = dict(gm.named_modules())
    nodes = list(gm.graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise PartitionError(f"{name}.forward takes {len(placeholders)} arguments; the trainer feeds it one input")
    layer: dict[fx.Node, int] = {placeholders[0]: -1}
    entry_of = {e: i for i, e in enumerate(fn.map.entries) if e}
    for n in nodes:
        owned: set[int] = set()
        if n.op == "call_module" and n.target in entry_of:  # the layer's own op (with or without weights)
            owned = {entry_of[n.target]}
        elif n.op == "call_module":
            owned = {param_layer[f"{n.target}.{k}"] for k, _ in modules[n.target].named_parameters()
                     if f"{n.target}.{k}" in param_layer}
        elif n.op == "get_attr" and n.target in param_layer:
            owned = {param_layer[n.target]}
        if len(owned) > 1:
            raise PartitionError(f"module {n.target!r} of {name} holds parameters of layers {sorted(owned)} and is "
                                 f"not traced into (a library module); it cannot be cut between ranks")
        if owned:
            layer[n] = owned.pop()
        elif n.op in ("call_module", "call_function", "call_method"):
            ins = [layer[a] for a in n.all_input_nodes if a in layer and layer[a] >= 0]
            if ins:
                layer[n] = max(ins)
    for n in reversed(nodes):  # fed only by the input or by buffers: the earliest layer that uses it
        if n not in layer and n.op != "output":
            users = [layer[u] for u in n.users if u in layer and u.op != "output"]
            layer[n] = min(users) if users else fn.num_layers - 1
    return layer


_RANDOM = {"rand", "rand_like", "randn", "randn_like", "randint", "randint_like", "randperm", "bernoulli",
           "bernoulli_", "normal", "normal_", "uniform_", "poisson", "multinomial", "dropout", "dropout_",
           "feature_dropout", "alpha_dropout", "exponential_", "geometric_", "cauchy_", "log_normal_", "random_"}


def _check(gm: fx.GraphModule, nodes: list[fx.Node], layer_of: dict[fx.Node, int], L: int, name: str) -> fx.Node:
    """Refusals that hold for the whole graph (module docstring); returns the node the loss reads."""
    for n in nodes:
        target = getattr(n.target, "__name__", n.target) if n.op in ("call_function", "call_method") else None
        if target in _RANDOM:
            raise PartitionError(f"{name} draws random numbers ({target}) in its forward; the ranks would draw "
                                 f"them in another order than the single process, so the distributed backend "
                                 f"could not reproduce the emulation")
    result = next(n for n in nodes if n.op == "output").args[0]
    result = result[0] if isinstance(result, (tuple, list)) else result
    if not isinstance(result, fx.Node) or layer_of.get(result) != L - 1:
        where = layer_of.get(result) if isinstance(result, fx.Node) else None
        raise PartitionError(f"{name}'s output is computed in layer {where}, not in its last layer {L - 1}; the "
                             f"last layer's rank computes the loss")
    callers: dict[str, set[int]] = {}
    for n in nodes:
        if n.op == "call_module" and _stateful(gm.get_submodule(n.target)):
            callers.setdefault(n.target, set()).add(layer_of[n])
    for target, ls in callers.items():
        if len(ls) > 1:
            raise PartitionError(f"neuron {target!r} of {name} is called from layers {sorted(ls)}; its state cannot "
                                 f"be split between ranks")
    return result


def _copied(gm: fx.GraphModule, nodes: list[fx.Node]) -> set[fx.Node]:
    """Nodes every piece that uses them computes itself instead of receiving them: buffers and constants, and
    functions of the network input and constants alone (a shape, a reshaped input)."""
    out: set[fx.Node] = set()
    for n in nodes:
        if n.op == "get_attr" and not _is_param(gm, n.target):
            out.add(n)
        elif n.op in ("call_function", "call_method") and all(a in out or a.op == "placeholder"
                                                                for a in n.all_input_nodes):
            out.add(n)
    return out


def _sent(nodes: list[fx.Node], layer_of: dict[fx.Node, int], copied: set[fx.Node], L: int, name: str
          ) -> dict[int, list[fx.Node]]:
    """Per layer, the values a later layer reads, in graph order."""
    sent: dict[int, list[fx.Node]] = {i: [] for i in range(L)}
    for n in nodes:
        if n.op in ("output", "placeholder") or n in copied:
            continue
        users = [u for u in n.users if u.op != "output"]
        if n.op == "get_attr" and any(layer_of[u] != layer_of[n] for u in users):
            raise PartitionError(f"parameter {n.target} of {name} is used by more than one layer")
        for u in users:
            if layer_of[u] < layer_of[n]:
                raise PartitionError(f"layer {layer_of[u]} of {name} reads {n.name}, which layer {layer_of[n]} "
                                     f"computes later; the layers must follow each other")
            if layer_of[u] > layer_of[n] and n not in sent[layer_of[n]]:
                sent[layer_of[n]].append(n)
    return sent


def _cut(gm: fx.GraphModule, layer_of: dict[fx.Node, int], L: int, name: str, batch_dim: int) -> Stages:
    nodes = list(gm.graph.nodes)
    result = _check(gm, nodes, layer_of, L, name)
    copied = _copied(gm, nodes)
    sent = _sent(nodes, layer_of, copied, L, name)
    index = {n: (layer_of[n], j) for ns in sent.values() for j, n in enumerate(ns)}
    pieces, modules, producers = {}, {}, []
    for lay in range(L):
        own = [n for n in nodes if layer_of.get(n) == lay and n.op not in ("placeholder", "output")
               and n not in copied]
        ext: list[fx.Node] = []  # received values (and the network input), in first-use order

        def needs(a: fx.Node, lay: int = lay, ext: list[fx.Node] = ext) -> None:
            if a in copied:
                for b in a.all_input_nodes:
                    needs(b)
            elif (a.op == "placeholder" or layer_of[a] != lay) and a not in ext:
                ext.append(a)

        for n in own:
            for a in n.all_input_nodes:
                needs(a)
        graph = fx.Graph()
        env = {a: graph.placeholder(f"in_{a.name}") for a in ext}

        def value(a: fx.Node, graph: fx.Graph = graph, env: dict = env) -> fx.Node:
            if a not in env:  # a copied node: its inputs first
                for b in a.all_input_nodes:
                    value(b)
                env[a] = graph.node_copy(a, env.__getitem__)
            return env[a]

        for n in own:
            for a in n.all_input_nodes:
                value(a)
            env[n] = graph.node_copy(n, env.__getitem__)
        graph.output(env[result] if lay == L - 1 else tuple(env[n] for n in sent[lay]))
        modules[lay] = fx.GraphModule(gm, graph)
        inputs = tuple((-1, 0) if a.op == "placeholder" else index[a] for a in ext)
        pieces[lay] = Piece(inputs, len(sent[lay]) if lay < L - 1 else 0)
        producers.append(tuple(dict.fromkeys(src for src, _ in inputs)))
    return Stages("graph", tuple(producers), modules, batch_dim, pieces)


def _is_param(gm: fx.GraphModule, target: str) -> bool:
    try:
        return isinstance(gm.get_parameter(target), nn.Parameter)
    except AttributeError:
        return False


def by_value(stages: Stages) -> None:
    """Classes of modules that a spawned rank cannot import (a user's file loaded by path) travel by value."""
    import cloudpickle

    for m in stages.modules.values():
        for sub in m.modules():
            mod = type(sub).__module__
            if mod in sys.modules and mod != "__main__" and not _importable(mod):
                cloudpickle.register_pickle_by_value(sys.modules[mod])


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
