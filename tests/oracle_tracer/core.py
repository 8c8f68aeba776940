"""Generic tracer: any nn.Module and an example input [T, B, ...] -> list[LayerSpec].

The model runs once (eval mode, no grad). Forward hooks see every module call; a TorchFunctionMode sees every
torch function and tensor method called outside the recognised ("leaf") modules. Every tensor on the data path is
mapped to the graph node that produced it, so functional ops (x + y, F.max_pool2d, flatten, torch.stack of
per-step outputs) are followed by provenance, whatever python code sits between the modules.

Nodes are identified structurally, not per call: a module by its path, a functional op by (op, arguments, input
nodes). A time loop that calls a Conv2d T times (snnTorch's tutorial style) therefore yields ONE layer, and shapes
are per sample per timestep (leading batch/time dims dropped). Indexing a timestep, stacking per-step outputs,
reshapes, and reductions over leading dims (the readout's mean over T) are free and not recorded; a layer's
output_shape and its consumer's in_shape then have equal element counts (as in the structural trace of SNNNet).

Anything the costs cannot represent raises UnsupportedLayerError naming the module path and type (or the
operation and the module it ran in): unknown modules with parameters, unknown ops on the data path, weight sharing
between different inputs, channel concatenation, branching inside a layer's post-op chain.
Known blind spot: the trace runs in eval mode, where dropout returns its input tensor itself, so a skip taken
just before a dropout cannot be told from one taken after it.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from math import prod
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from spikepipe.frontend import TraceError, UnsupportedLayerError
from spikepipe.ir import LayerSpec, NeuronSpec, PostOp, SpikePipeError
from oracle_tracer.neurons import is_spiking_neuron, neuron_spec_of

log = logging.getLogger(__name__)

INPUT_NODE = 0

_LAYOUT = frozenset({
    "view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "permute", "transpose", "movedim",
    "contiguous", "clone", "detach", "to", "float", "double", "half", "type", "type_as", "expand", "expand_as",
    "repeat", "__getitem__", "select", "narrow", "unbind", "split", "chunk", "requires_grad_", "cpu", "view_as",
    "reshape_as", "detach_", "clone_", "squeeze_", "unsqueeze_",
})
_RESHAPE = frozenset({"view", "reshape", "flatten", "unflatten", "view_as", "reshape_as", "squeeze", "unsqueeze",
                      "squeeze_", "unsqueeze_"})
_CREATE_LIKE = frozenset({"zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like",
                          "new_zeros", "new_ones", "new_empty", "new_full", "new_tensor", "randint_like"})
_ADD = frozenset({"add", "add_", "__add__", "__radd__", "__iadd__"})
_STACK = frozenset({"stack", "cat", "concat", "concatenate"})
_REDUCE = frozenset({"mean", "sum"})
_POOL_FN = {"max_pool2d": "maxpool", "avg_pool2d": "avgpool", "adaptive_avg_pool2d": "adaptiveavgpool",
            "adaptive_max_pool2d": "adaptiveavgpool", "max_pool2d_with_indices": "maxpool"}
_DROPOUT_FN = frozenset({"dropout", "dropout2d", "feature_dropout", "alpha_dropout"})


@dataclass
class _Node:
    id: int
    kind: str  # input | synapse | neuron | batchnorm | maxpool | avgpool | adaptiveavgpool | dropout | add
    layer: int  # owner layer; -1 for the network input
    inputs: tuple[int, ...]
    where: str  # module path (and type) for messages


@dataclass
class _Layer:
    synapse: int  # node id
    spec: LayerSpec
    neuron: NeuronSpec | None = None
    post: list[PostOp] = field(default_factory=list)
    tip: int = 0  # node whose output the layer currently ends with


@dataclass(frozen=True)
class _Value:
    node: int
    sample: tuple[int, ...]  # per-sample-per-step shape


def _classify(module: nn.Module) -> str | None:
    """Leaf kind of a module, or None for a container whose own code is traced."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        return "synapse"
    if is_spiking_neuron(module):
        return "neuron"
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return "batchnorm"
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return "pool"
    if isinstance(module, (nn.Dropout, nn.Dropout2d)):
        return "dropout"
    if type(module).__module__.startswith("spikingjelly") and type(module).__name__ in ("Dropout", "Dropout2d"):
        return "dropout"
    if isinstance(module, (nn.Flatten, nn.Unflatten, nn.Identity)):
        return "reshape"
    return None


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def synapse_spec(index: int, name: str, module: nn.Module, in_shape: tuple[int, ...],
                 out_shape: tuple[int, ...], inputs: tuple[int, ...]) -> LayerSpec:
    if isinstance(module, nn.Conv2d):
        k, d = _pair(module.kernel_size), _pair(module.dilation)
        if module.padding_mode != "zeros":
            raise UnsupportedLayerError(f"module {name!r} (Conv2d) uses padding_mode={module.padding_mode!r}; "
                                        f"only zero padding is modelled")
        if isinstance(module.padding, str):  # 'same' pads (d*(k-1))/2 each side, 'valid' none
            pad = (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2) if module.padding == "same" else (0, 0)
        else:
            pad = _pair(module.padding)
        return LayerSpec(index, name, "conv", in_shape, out_shape, kernel=k, stride=_pair(module.stride),
                         padding=pad, dilation=d, groups=module.groups, bias=module.bias is not None, inputs=inputs)
    return LayerSpec(index, name, "linear", in_shape, out_shape, bias=module.bias is not None, inputs=inputs)


def pool_op(module: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> PostOp:
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        kind = "maxpool" if isinstance(module, nn.MaxPool2d) else "avgpool"
        k = _pair(module.kernel_size)
        return PostOp(kind, in_shape, out_shape, k, _pair(module.stride) if module.stride else k)
    k = (in_shape[1] // out_shape[1], in_shape[2] // out_shape[2]) if len(in_shape) == 3 else (1, 1)
    return PostOp("adaptiveavgpool", in_shape, out_shape, k, k)


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for o in obj for t in _tensors(o)]
    return []


def _reshaped_sample(out_shape: tuple[int, ...], lead: int, sample: tuple[int, ...]) -> tuple[int, ...] | None:
    """Per-sample shape after a reshape: split the output into leading dims of `lead` elements and a sample of
    prod(sample) elements. With batch 1 several splits fit; keep the input's sample if it is one of them, else
    the shortest sample (a flatten)."""
    p = prod(sample)
    cands = [i for i in range(len(out_shape) + 1) if prod(out_shape[:i]) == lead and prod(out_shape[i:]) == p]
    if not cands:
        return None
    for i in cands:
        if tuple(out_shape[i:]) == sample:
            return sample
    return tuple(out_shape[max(cands):])


class _Mode(TorchFunctionMode):
    def __init__(self, tracer: _Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        tr = self.tracer
        if tr.leaf_depth == 0 and not tr.in_hook:
            tr.on_function(func, args, kwargs, out)
        return out


class _Tracer:
    def __init__(self, model: nn.Module, example: torch.Tensor, neurons: dict[str, NeuronSpec]) -> None:
        self.model = model
        self.neurons = neurons
        self.paths = {id(m): p or "<model>" for p, m in model.named_modules()}
        self.nodes: list[_Node] = [_Node(INPUT_NODE, "input", -1, (), "<input>")]
        self.layers: list[_Layer] = []
        self.values: dict[int, _Value] = {}
        self.keep: list[torch.Tensor] = []  # keeps traced tensors alive so their ids stay unique
        self.keys: dict[Any, int] = {}
        self.leaf_depth = 0
        self.in_hook = False
        self.stack: list[tuple[nn.Module, str | None]] = []
        self.reads: list[tuple[int, str]] = []  # (node read by a later layer or add, where) checked at the end
        sample = tuple(example.shape[2:]) if example.dim() >= 3 else tuple(example.shape[1:])
        self._map(example, INPUT_NODE, sample)

    # -- values
    def _map(self, t: torch.Tensor, node: int, sample: tuple[int, ...]) -> None:
        self.values[id(t)] = _Value(node, sample)
        self.keep.append(t)

    def _value(self, t: Any) -> _Value | None:
        return self.values.get(id(t)) if isinstance(t, torch.Tensor) else None

    def _where(self) -> str:
        for mod, _ in reversed(self.stack):
            return f"module {self.paths.get(id(mod), '?')!r} ({type(mod).__name__})"
        return "the model's forward()"

    # -- module hooks
    def pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if self.leaf_depth > 0:
            return
        self.in_hook = True
        try:
            kind = _classify(module)
            path = self.paths.get(id(module), "?")
            if kind is None and (any(True for _ in module.parameters(recurse=False))):
                raise UnsupportedLayerError(
                    f"module {path!r} ({type(module).__module__}.{type(module).__name__}) has parameters but is "
                    f"not a supported layer (Conv2d, Linear, BatchNorm, pooling, dropout, LIF neurons)")
            self.stack.append((module, kind))
            if kind is not None:
                self.leaf_depth += 1
        finally:
            self.in_hook = False

    def post_hook(self, module: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
        if not self.stack or self.stack[-1][0] is not module:
            return  # a call nested inside a leaf
        _, kind = self.stack.pop()
        if kind is None:
            return
        self.leaf_depth -= 1
        self.in_hook = True
        try:
            x = args[0] if args else next(iter(kwargs.values()), None)
            self._leaf(module, kind, x, out)
        finally:
            self.in_hook = False

    def _leaf(self, module: nn.Module, kind: str, x: Any, out: Any) -> None:
        path = self.paths.get(id(module), "?")
        where = f"module {path!r} ({type(module).__name__})"
        v = self._value(x)
        if v is None:
            raise UnsupportedLayerError(f"{where} reads a tensor that does not come from the network input")
        outs = _tensors(out)
        if kind == "reshape":
            for t in outs:
                self._map(t, v.node, self._reshape_sample(t, x, v, where))
            return
        key = ("module", id(module))
        if key in self.keys:  # the same module again: a time loop, or weight sharing
            node = self.nodes[self.keys[key]]
            if node.inputs != (v.node,):
                raise UnsupportedLayerError(f"{where} is applied to two different inputs (weight sharing is not "
                                            f"supported); use one module per layer")
            sample = self._node_sample[node.id]
        elif kind == "synapse":
            node, sample = self._new_synapse(module, path, x, out, v)
        else:
            sample = tuple(outs[0].shape[len(outs[0].shape) - len(v.sample):]) if kind == "pool" else v.sample
            post: PostOp | None = None
            neuron: NeuronSpec | None = None
            if kind == "neuron":
                neuron = self.neurons[path]
            elif kind == "pool":
                post = pool_op(module, v.sample, sample)
            else:
                post = PostOp(kind, v.sample, v.sample)
            node = self._new_post(kind, v, where, post, neuron, key=key)
        self._node_sample[node.id] = sample
        for t in outs:
            self._map(t, node.id, sample)

    @property
    def _node_sample(self) -> dict[int, tuple[int, ...]]:
        if not hasattr(self, "_samples"):
            self._samples: dict[int, tuple[int, ...]] = {}
        return self._samples

    def _new_synapse(self, module: nn.Module, path: str, x: torch.Tensor, out: torch.Tensor,
                     v: _Value) -> tuple[_Node, tuple[int, ...]]:
        if isinstance(module, nn.Conv2d):
            if x.dim() < 3:
                raise UnsupportedLayerError(f"module {path!r} (Conv2d) got an input of shape {tuple(x.shape)}")
            in_shape, out_shape = tuple(x.shape[-3:]), tuple(out.shape[-3:])
        else:
            in_shape, out_shape = (module.in_features,), (module.out_features,)
        if prod(in_shape) != prod(v.sample):
            raise UnsupportedLayerError(
                f"module {path!r} ({type(module).__name__}) mixes samples or timesteps: input per sample "
                f"{v.sample}, layer expects {in_shape}")
        src = self.nodes[v.node].layer
        self.reads.append((v.node, f"module {path!r}"))
        if src >= 0 and self.layers[src].tip == v.node:
            prev = self.layers[src]
            cur = prev.post[-1].out_shape if prev.post else prev.spec.out_shape
            if cur != in_shape:  # a flatten between layers is recorded on the producer (PostOp kind "flatten")
                prev.post.append(PostOp("flatten", cur, in_shape))
        index = len(self.layers)
        spec = synapse_spec(index, path, module, in_shape, out_shape, (src,))
        node = self._add_node("synapse", index, (v.node,), path, ("module", id(module)))
        self.layers.append(_Layer(node.id, spec, tip=node.id))
        return node, out_shape

    def _add_node(self, kind: str, layer: int, inputs: tuple[int, ...], where: str, key: Any) -> _Node:
        node = _Node(len(self.nodes), kind, layer, inputs, where)
        self.nodes.append(node)
        self.keys[key] = node.id
        return node

    def _new_post(self, kind: str, v: _Value, where: str, post: PostOp | None, neuron: NeuronSpec | None,
                  key: Any, extra_inputs: tuple[int, ...] = ()) -> _Node:
        owner = self.nodes[v.node].layer
        if owner < 0:
            raise UnsupportedLayerError(f"{where}: {kind} before the first Conv2d/Linear layer cannot be costed")
        lay = self.layers[owner]
        if lay.tip != v.node:
            raise UnsupportedLayerError(
                f"{where}: {kind} reads layer {lay.spec.name!r} before the end of its chain of post ops "
                f"(branching inside a layer is not supported)")
        if neuron is not None:
            if lay.neuron is not None:
                raise UnsupportedLayerError(f"{where}: a second neuron in layer {lay.spec.name!r} without a "
                                            f"synaptic op between them")
            lay.neuron = neuron
        if post is not None:
            lay.post.append(post)
        node = self._add_node(kind, owner, (v.node, *extra_inputs), where, key)
        lay.tip = node.id
        return node

    def _reshape_sample(self, t: torch.Tensor, x: torch.Tensor, v: _Value, where: str) -> tuple[int, ...]:
        lead = x.numel() // max(1, prod(v.sample))
        s = _reshaped_sample(tuple(t.shape), lead, v.sample)
        if s is None:
            raise UnsupportedLayerError(f"{where}: a reshape from {tuple(x.shape)} to {tuple(t.shape)} mixes the "
                                        f"batch/time dims with the per-sample dims {v.sample}")
        return s

    # -- functional ops
    def on_function(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        outs = _tensors(out)
        if not outs:
            return
        tracked = [(t, self.values[id(t)]) for t in _tensors(list(args) + list(kwargs.values()))
                   if id(t) in self.values]
        if not tracked:
            return
        name = getattr(func, "__name__", str(func))
        where = self._where()
        if name in _CREATE_LIKE:
            return
        x, v = tracked[0]
        if name in _LAYOUT:
            for t in outs:
                if len(v.sample) <= t.dim() and tuple(t.shape[t.dim() - len(v.sample):]) == v.sample:
                    self._map(t, v.node, v.sample)
                elif name in _RESHAPE:
                    self._map(t, v.node, self._reshape_sample(t, x, v, f"{name} in {where}"))
                else:
                    raise UnsupportedLayerError(f"operation {name} in {where} changes the per-sample shape "
                                                f"{v.sample} (only batch/time dims may be indexed or permuted)")
            return
        if name in _STACK:
            nodes = {val.node for _, val in tracked}
            n_tensors = len(_tensors(args[0] if args else kwargs.get("tensors", [])))
            if len(nodes) > 1 or n_tensors != len(tracked):
                raise UnsupportedLayerError(f"operation {name} in {where} joins outputs of different layers "
                                            f"(concatenation is not supported; only per-timestep outputs of one "
                                            f"layer may be stacked)")
            t = outs[0]
            if tuple(t.shape[t.dim() - len(v.sample):]) != v.sample:
                raise UnsupportedLayerError(f"operation {name} in {where} concatenates along a per-sample dim")
            self._map(t, v.node, v.sample)
            return
        if name in _REDUCE:
            dims = kwargs.get("dim", args[1] if len(args) > 1 else None)
            dims = [dims] if isinstance(dims, int) else list(dims or [])
            lead_rank = x.dim() - len(v.sample)
            if not dims or any(not (0 <= (d % x.dim()) < lead_rank) for d in dims):
                raise UnsupportedLayerError(
                    f"operation {name} in {where} reduces per-sample dims of {tuple(x.shape)}; only the readout "
                    f"over batch/time dims is free (use nn.AdaptiveAvgPool2d for global pooling)")
            self._map(outs[0], v.node, v.sample)
            return
        if name in _ADD:
            self._add(name, args, kwargs, tracked, outs[0], where)
            return
        if name in _POOL_FN or name in _DROPOUT_FN:
            kind = _POOL_FN.get(name, "dropout")
            t = outs[0]
            sample = tuple(t.shape[t.dim() - len(v.sample):])
            if kind == "dropout":
                post = PostOp("dropout", v.sample, v.sample)
                key: Any = ("dropout", v.node)
            elif kind == "adaptiveavgpool":
                k = (v.sample[1] // sample[1], v.sample[2] // sample[2]) if len(sample) == 3 else (1, 1)
                post = PostOp(kind, v.sample, sample, k, k)
                key = (kind, sample, v.node)
            else:
                ks = kwargs.get("kernel_size", args[1] if len(args) > 1 else None)
                st = kwargs.get("stride", args[2] if len(args) > 2 else None) or ks
                post = PostOp(kind, v.sample, sample, _pair(ks), _pair(st))
                key = (kind, post.kernel, post.stride, v.node)
            node_id = self.keys.get(key)
            if node_id is None:
                node_id = self._new_post(kind, v, f"{name} in {where}", post, None, key=key).id
            self._map(t, node_id, sample)
            return
        raise UnsupportedLayerError(
            f"operation {name} in {where} is on the data path and is not supported (supported: Conv2d, Linear, "
            f"BatchNorm, pooling, dropout, flatten/reshape, residual add, LIF neurons)")

    def _add(self, name: str, args: tuple, kwargs: dict, tracked: list, out: torch.Tensor, where: str) -> None:
        operands = [a for a in list(args[:2]) + [kwargs.get("other")] if a is not None]
        if len(tracked) != 2 or len(operands) != 2 or any(not isinstance(a, torch.Tensor) for a in operands):
            raise UnsupportedLayerError(f"operation {name} in {where} adds a constant to the data path; only "
                                        f"residual adds of two layers' outputs are supported")
        (_, va), (_, vb) = tracked
        la, lb = self.nodes[va.node].layer, self.nodes[vb.node].layer
        if la == lb:
            raise UnsupportedLayerError(f"operation {name} in {where} adds two tensors of the same layer")
        cur, skip = (va, vb) if la > lb else (vb, va)
        if prod(cur.sample) != prod(skip.sample):
            raise UnsupportedLayerError(f"operation {name} in {where} broadcasts {skip.sample} onto {cur.sample}")
        key = ("add", cur.node, skip.node)
        node_id = self.keys.get(key)
        if node_id is None:
            src = self.nodes[skip.node].layer
            self.reads.append((skip.node, f"add in {where}"))
            post = PostOp("add", cur.sample, cur.sample, source=src)
            node_id = self._new_post("add", cur, f"add in {where}", post, None, key=key,
                                     extra_inputs=(skip.node,)).id
        self._map(out, node_id, cur.sample)

    # -- result
    def result(self) -> list[LayerSpec]:
        if not self.layers:
            raise UnsupportedLayerError("the model has no Conv2d/Linear layer on the path from its input")
        for node_id, where in self.reads:
            owner = self.nodes[node_id].layer
            if owner >= 0 and self.layers[owner].tip != node_id:
                lay = self.layers[owner]
                raise UnsupportedLayerError(
                    f"{where} reads layer {lay.spec.name!r} before its last post op ({self.nodes[lay.tip].kind}); "
                    f"a layer's output must be taken after all its post ops")
        out = []
        for lay in self.layers:
            d = dict(lay.spec.__dict__)
            d.update(neuron=lay.neuron, post_ops=tuple(lay.post))
            out.append(LayerSpec(**d))
        return out


def trace_generic(model: nn.Module, example_input: torch.Tensor) -> list[LayerSpec]:
    """LayerSpecs of any nn.Module on `example_input` ([T, B, ...] by the project's convention).

    The model itself is not run or changed: a deep copy runs on the meta device (shapes only, no arithmetic), or
    on the CPU if the model cannot run on meta tensors. Neuron parameters are read from the real model first.
    """
    if not isinstance(model, nn.Module) or not isinstance(example_input, torch.Tensor):
        raise TraceError("trace_generic needs an nn.Module and an example input tensor [T, B, ...]")
    neurons = {p or "<model>": neuron_spec_of(m, p) for p, m in model.named_modules()
               if is_spiking_neuron(m) and not _inside_leaf(model, p)}
    try:
        work = copy.deepcopy(model).to("meta")
        return _run(work, example_input.to("meta"), neurons)
    except _ModelFailed as exc:  # data-dependent code cannot run on meta tensors
        log.info("meta-device trace failed (%s); tracing a CPU copy", exc)
    try:
        return _run(copy.deepcopy(model), example_input, neurons)
    except _ModelFailed as exc:
        raise TraceError(f"model failed on the example input of shape {tuple(example_input.shape)}: {exc}") from None


def _inside_leaf(model: nn.Module, path: str) -> bool:
    """True if a module path lies inside a recognised (opaque) module, e.g. a neuron's surrogate."""
    parts = path.split(".") if path else []
    for i in range(1, len(parts)):
        if _classify(model.get_submodule(".".join(parts[:i]))) is not None:
            return True
    return False


class _ModelFailed(Exception):
    """The model raised on the example input (not a front-end verdict)."""


def _run(model: nn.Module, example: torch.Tensor, neurons: dict[str, NeuronSpec]) -> list[LayerSpec]:
    tracer = _Tracer(model, example, neurons)
    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(tracer.pre_hook, with_kwargs=True))
        handles.append(m.register_forward_hook(tracer.post_hook, with_kwargs=True))
    model.eval()
    try:
        with torch.no_grad(), _Mode(tracer):
            model(example)
    except SpikePipeError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported by the caller, or retried off the meta device
        msg = str(exc).splitlines()[0] if str(exc) else ""
        raise _ModelFailed(f"{type(exc).__name__}: {msg}") from None
    finally:
        for h in handles:
            h.remove()
    layers = tracer.result()
    log.info("traced %d layers from %s", len(layers), type(model).__name__)
    return layers
