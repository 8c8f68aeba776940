"""Front end: trace a PyTorch SNN once into LayerSpecs (shapes, strides, padding, groups, skip connections).

A layer is one synaptic op (Conv2d / Linear, as a module or a torch.nn.functional call) plus everything after it
up to the next synaptic op: normalisation, the spiking neuron, pooling, dropout, flatten, residual adds.

How: the model runs once on the example input (on the meta device when it can, so nothing is computed) under a
TorchFunctionMode that tags every tensor with the layer whose output it is. Recognised modules (synapses, norms,
pools, dropout, flatten, neurons) are opaque: forward hooks record them and their insides are not looked at.
Everything else is transparent, so containers, user modules, functional calls and time loops are all seen.
Shape-only ops (reshape, indexing over T, stack, flatten, mean over T) keep the tag; an add of two different
layers' outputs is a residual add; any other op on a layer's output is an error naming the module path and type,
never a silent skip. Calls repeated by a time loop (snnTorch's tutorials call single-step neurons T times) are
recognised by their call site and recorded once.
"""

from __future__ import annotations

import copy
import logging
import sys
from dataclasses import dataclass, field, replace
from math import prod
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from spikepipe.ir import LayerSpec, NeuronSpec, PostOp, SpikePipeError
from spikepipe.snn import LIF

log = logging.getLogger(__name__)


class UnsupportedLayerError(SpikePipeError):
    """The model contains a module or operation the front end cannot cost."""


class TraceError(SpikePipeError):
    """The model could not be run on the example input, or its structure is inconsistent."""


INPUT = -1  # tag of the network input (and anything computed from it before the first synaptic op)

# ops that only move, select or reduce values: the result is still "the output of layer l"
_PASSTHROUGH = frozenset({
    "reshape", "view", "view_as", "reshape_as", "flatten", "unflatten", "squeeze", "unsqueeze", "permute",
    "transpose", "contiguous", "clone", "detach", "detach_", "to", "float", "double", "half", "type", "type_as",
    "cpu", "__getitem__", "select", "narrow", "stack", "cat", "concat", "concatenate", "repeat", "expand",
    "expand_as", "mean", "sum", "unbind", "chunk", "split", "requires_grad_", "movedim", "index_select",
})
_ADD = frozenset({"add", "__add__", "__radd__", "add_", "__iadd__"})
_POOL_FUNCS = {"max_pool2d": "maxpool", "avg_pool2d": "avgpool", "adaptive_avg_pool2d": "adaptiveavgpool"}


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


# ---------------------------------------------------------------- neurons


def _lib_class(module: nn.Module) -> tuple[str, str]:
    """(library, class name) of the first class in the MRO that comes from snnTorch or SpikingJelly."""
    for cls in type(module).__mro__:
        root = cls.__module__.split(".")[0]
        if root in ("snntorch", "spikingjelly"):
            return root, cls.__name__
    return "", type(module).__name__


def _surrogate_name(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    name = name.split(".")[0].lower()  # snnTorch: "atan.<locals>.inner"; SpikingJelly: class "ATan"
    return {"fast_sigmoid": "fast-sigmoid", "fastsigmoid": "fast-sigmoid", "atangrad": "atan"}.get(name, name)


def neuron_spec(module: nn.Module, path: str = "") -> NeuronSpec | None:
    """The NeuronSpec of a recognised spiking neuron, None if `module` is not a neuron at all.

    Raises UnsupportedLayerError for neurons of snnTorch / SpikingJelly other than Leaky / LIFNode.
    """
    if isinstance(module, LIF):
        return NeuronSpec(beta=round(float(module.beta), 6), threshold=float(module.threshold), reset=module.reset,
                          surrogate=module.surrogate, learn_beta=module.learn_beta,
                          fire_on_equal=module.fire_on_equal)
    lib, cls = _lib_class(module)
    where = f"module {path or '<root>'} ({type(module).__name__})"
    if lib == "snntorch" and cls == "Leaky":
        reset = str(module.reset_mechanism)
        if reset not in ("subtract", "zero"):
            raise UnsupportedLayerError(f"{where}: reset_mechanism {reset!r} is not supported; use 'subtract' or "
                                        f"'zero'")
        # snnTorch fires at u > threshold (Heaviside of u - threshold with H(0) = 0), as ours by default
        return NeuronSpec(beta=round(float(torch.as_tensor(module.beta).reshape(-1)[0]), 6),
                          threshold=float(torch.as_tensor(module.threshold).reshape(-1)[0]), reset=reset,  # type: ignore[arg-type]
                          surrogate=_surrogate_name(module.spike_grad), learn_beta=isinstance(module.beta, nn.Parameter),
                          fire_on_equal=False)
    if lib == "spikingjelly" and cls == "LIFNode":
        if module.v_reset is None:
            reset = "subtract"
        elif float(module.v_reset) == 0.0:
            reset = "zero"
        else:
            raise UnsupportedLayerError(f"{where}: v_reset={module.v_reset} is not supported; use None (subtract) "
                                        f"or 0.0 (reset to zero)")
        # decay_input=False: v_t = (1 - 1/tau) v_{t-1} + x_t, our recurrence with beta = 1 - 1/tau.
        # decay_input=True:  v_t = (1 - 1/tau) v_{t-1} + x_t / tau; in u = tau * v that is exactly ours with the
        # threshold (and the subtracted reset) scaled by tau. SpikingJelly fires at v >= threshold.
        tau = float(module.tau)
        threshold = float(module.v_threshold) * (tau if module.decay_input else 1.0)
        return NeuronSpec(beta=round(1.0 - 1.0 / tau, 6), threshold=round(threshold, 9),
                          reset=reset, surrogate=_surrogate_name(module.surrogate_function),  # type: ignore[arg-type]
                          learn_beta=False, fire_on_equal=True)
    if lib == "snntorch" and cls not in ("SpikingNeuron", "LIF"):
        if any(getattr(type(module), "__module__", "").startswith(p) for p in ("snntorch._neurons", "snntorch")):
            if hasattr(module, "reset_mechanism") or hasattr(module, "threshold"):
                raise UnsupportedLayerError(f"{where}: snnTorch neuron {cls} is not supported; use snntorch.Leaky")
    if lib == "spikingjelly" and hasattr(module, "v_threshold"):
        raise UnsupportedLayerError(f"{where}: SpikingJelly neuron {cls} is not supported; use neuron.LIFNode")
    return None


# ---------------------------------------------------------------- trace state


@dataclass
class _Layer:
    index: int
    name: str
    op: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: dict[str, Any]
    inputs: tuple[int, ...]
    cur_shape: tuple[int, ...]
    neuron: NeuronSpec | None = None
    post: list[PostOp] = field(default_factory=list)
    sites: set[Any] = field(default_factory=set)
    modules: list[str] = field(default_factory=list)

    def own(self, path: str) -> None:
        if path and path not in self.modules:
            self.modules.append(path)

    def spec(self) -> LayerSpec:
        return LayerSpec(self.index, self.name, self.op, self.in_shape, self.out_shape,  # type: ignore[arg-type]
                         neuron=self.neuron, post_ops=tuple(self.post), inputs=self.inputs,
                         modules=tuple(self.modules), **self.params)


def _conv_params(m: Any, name: str) -> dict[str, Any]:
    padding = m["padding"]
    if isinstance(padding, str):
        if padding == "same":
            k, d = _pair(m["kernel"]), _pair(m["dilation"])
            padding = (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2)
        else:
            padding = (0, 0)
    return {"kernel": _pair(m["kernel"]), "stride": _pair(m["stride"]), "padding": _pair(padding),
            "dilation": _pair(m["dilation"]), "groups": int(m["groups"]), "bias": bool(m["bias"])}


class _Tracer(TorchFunctionMode):
    def __init__(self, model: nn.Module, neurons: dict[str, NeuronSpec]) -> None:
        super().__init__()
        self.neurons = neurons
        self.tags: dict[int, int] = {}
        self.keep: list[torch.Tensor] = []  # keeps tagged tensors alive so their ids are not reused
        self.layers: list[_Layer] = []
        self.by_site: dict[Any, int] = {}
        self.opaque_depth = 0
        self.stack: list[tuple[str, nn.Module]] = [("", model)]
        self.kinds: list[str | None] = []
        self.names = {id(m): n for n, m in model.named_modules()}
        self.param_names = {id(p): n for n, p in model.named_parameters()}

    # -- tags
    def tag_of(self, obj: Any) -> int | None:
        return self.tags.get(id(obj)) if isinstance(obj, torch.Tensor) else None

    def tag_all(self, obj: Any, tag: int) -> None:
        if isinstance(obj, torch.Tensor):
            self.tags[id(obj)] = tag
            self.keep.append(obj)
        elif isinstance(obj, (tuple, list)):
            for o in obj:
                self.tag_all(o, tag)

    def arg_tags(self, args: Any, kwargs: dict[str, Any] | None = None) -> list[int]:
        found: list[int] = []

        def walk(o: Any) -> None:
            if isinstance(o, torch.Tensor):
                t = self.tags.get(id(o))
                if t is not None and t not in found:
                    found.append(t)
            elif isinstance(o, (tuple, list)):
                for x in o:
                    walk(x)
            elif isinstance(o, dict):
                for x in o.values():
                    walk(x)

        walk(args)
        walk(kwargs or {})
        return found

    def where(self) -> str:
        path, mod = self.stack[-1]
        return f"module {path or '<root>'} ({type(mod).__name__})"

    # -- layers and post ops
    def synapse(self, key: Any, name: str, op: str, x: torch.Tensor, out: torch.Tensor, params: dict[str, Any],
                src: int) -> int:
        nd = 3 if op == "conv" else 1
        if x.dim() < nd or out.dim() < nd:
            raise TraceError(f"{name}: {op} input of shape {tuple(x.shape)} is not batched per sample")
        in_shape, out_shape = tuple(int(s) for s in x.shape[-nd:]), tuple(int(s) for s in out.shape[-nd:])
        if key in self.by_site:
            idx = self.by_site[key]
            if self.layers[idx].inputs != (src,):
                raise UnsupportedLayerError(f"{name} ({op}) is applied to two different inputs (layers "
                                            f"{self.layers[idx].inputs[0]} and {src}): shared weights are not "
                                            f"supported")
            return idx
        if src >= 0:
            prev = self.layers[src]
            if prev.cur_shape != in_shape:
                if prod(prev.cur_shape) != prod(in_shape):
                    raise TraceError(f"{name} receives per-sample shape {in_shape} from layer {prev.name}, which "
                                     f"produces {prev.cur_shape}; the front end expects [T, B, ...] or [B, ...] "
                                     f"tensors")
                prev.post.append(PostOp("flatten", prev.cur_shape, in_shape))
                prev.cur_shape = in_shape
        idx = len(self.layers)
        self.layers.append(_Layer(idx, name, op, in_shape, out_shape, params, (src,), out_shape))
        self.by_site[key] = idx
        return idx

    def post_op(self, site: Any, layer: int, op: PostOp | None, neuron: NeuronSpec | None = None) -> None:
        lay = self.layers[layer]
        if site in lay.sites:  # a time loop calling the same op again
            return
        lay.sites.add(site)
        if neuron is not None:
            if lay.neuron is not None:
                raise UnsupportedLayerError(f"{self.where()}: layer {lay.name} has two spiking neurons in a row; "
                                            f"put a synaptic op between them")
            lay.neuron = neuron
        if op is not None:
            lay.post.append(op)
            lay.cur_shape = op.out_shape

    def call_site(self) -> tuple[str, int]:
        f = sys._getframe(2)
        while f is not None and ("/torch/" in f.f_code.co_filename or f.f_code.co_filename == __file__):
            f = f.f_back  # type: ignore[assignment]
        return (f.f_code.co_filename, f.f_lineno) if f is not None else ("?", 0)

    def single_source(self, tags: list[int], what: str) -> int:
        tags = [t for t in tags if t != INPUT] or [INPUT]
        if len(tags) > 1:
            raise UnsupportedLayerError(f"{self.where()}: {what} combines the outputs of layers "
                                        f"{', '.join(self.layers[t].name for t in tags)}; only residual adds may "
                                        f"join branches")
        return tags[0]

    # -- modules (forward hooks)
    def pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        path = self.names.get(id(module), "?")
        kind = None if self.opaque_depth else ("neuron" if path in self.neurons else _classify(module, path))
        self.stack.append((self.names.get(id(module), "?"), module))
        self.kinds.append(kind)
        if kind is not None:
            self.opaque_depth += 1

    def post_hook(self, module: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
        path, _ = self.stack[-1]
        kind = self.kinds.pop()
        try:
            if kind is not None:
                self.opaque_depth -= 1
                self.record_module(module, path, kind, args, kwargs, out)
        finally:
            self.stack.pop()

    def record_module(self, module: nn.Module, path: str, kind: str, args: tuple, kwargs: dict, out: Any) -> None:
        x = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        if x is None:
            raise TraceError(f"module {path} ({type(module).__name__}) was called without a tensor input")
        y = out[0] if isinstance(out, (tuple, list)) else out
        tags = self.arg_tags(x)
        if kind == "identity":
            self.tag_all(out, self.single_source(tags, "identity"))
            return
        src = self.single_source(tags, type(module).__name__)
        if kind in ("conv", "linear"):
            m: Any = module
            params = (_conv_params({"kernel": m.kernel_size, "stride": m.stride, "padding": m.padding,
                                    "dilation": m.dilation, "groups": m.groups, "bias": m.bias is not None}, path)
                      if kind == "conv" else {"bias": m.bias is not None})
            idx = self.synapse(("module", id(module)), path, kind, x, y, params, src)
            self.layers[idx].own(path)
            self.tag_all(out, idx)
            return
        if src == INPUT:
            if kind in ("flatten", "dropout"):
                self.tag_all(out, INPUT)
                return
            raise UnsupportedLayerError(f"module {path} ({type(module).__name__}) acts on the network input "
                                        f"before any synaptic layer; move it into the data pipeline")
        lay = self.layers[src]
        site = ("module", id(module))
        self.tag_all(out, src)
        if site in lay.sites:  # a time loop calling the same op again
            return
        lay.own(path)
        if kind == "neuron":
            self.post_op(site, src, None, self.neurons[path])
        elif kind == "batchnorm":
            self.post_op(site, src, PostOp("batchnorm", lay.cur_shape, lay.cur_shape))
        elif kind == "dropout":
            self.post_op(site, src, PostOp("dropout", lay.cur_shape, lay.cur_shape))
        elif kind == "flatten":
            shape = (prod(lay.cur_shape),)
            if shape != lay.cur_shape:
                self.post_op(site, src, PostOp("flatten", lay.cur_shape, shape))
        else:
            self.post_op(site, src, _pool_op(kind, module, lay.cur_shape, tuple(int(s) for s in y.shape[-3:])))

    # -- functions
    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.opaque_depth:
            return out
        tags = self.arg_tags(args, kwargs)
        if not tags:
            return out
        name = getattr(func, "__name__", "")
        if name in ("__get__", "__set__") or not _has_tensor(out):
            return out
        if name in ("conv2d", "linear"):
            self.functional_synapse(name, args, kwargs, out)
        elif name in _ADD:
            self.add(tags, out)
        elif name in _PASSTHROUGH or tags == [INPUT]:
            self.tag_all(out, self.single_source(tags, name))
        elif name in _POOL_FUNCS or name in ("dropout", "batch_norm", "dropout2d"):
            self.functional_post(name, tags, out)
        else:
            raise UnsupportedLayerError(f"{self.where()}: operation {name!r} on the output of layer "
                                        f"{self.layers[tags[-1]].name if tags[-1] >= 0 else 'input'} is not "
                                        f"supported (supported: conv2d, linear, batchnorm, pooling, dropout, "
                                        f"flatten, residual add, LIF / snnTorch Leaky / SpikingJelly LIFNode)")
        return out

    def functional_synapse(self, name: str, args: tuple, kwargs: dict, out: torch.Tensor) -> None:
        x = args[0] if args else kwargs["input"]
        w = args[1] if len(args) > 1 else kwargs["weight"]
        b = args[2] if len(args) > 2 else kwargs.get("bias")
        src = self.single_source(self.arg_tags(x), name)
        pname = self.param_names.get(id(w), f"{self.stack[-1][0]}.{name}")
        pname = pname[:-len(".weight")] if pname.endswith(".weight") else pname
        if name == "conv2d":
            def arg(i: int, key: str, default: Any) -> Any:
                return args[i] if len(args) > i else kwargs.get(key, default)

            params = _conv_params({"kernel": tuple(w.shape[-2:]), "stride": arg(3, "stride", 1),
                                   "padding": arg(4, "padding", 0), "dilation": arg(5, "dilation", 1),
                                   "groups": arg(6, "groups", 1), "bias": b is not None}, pname)
            idx = self.synapse(("weight", id(w)), pname, "conv", x, out, params, src)
        else:
            idx = self.synapse(("weight", id(w)), pname, "linear", x, out, {"bias": b is not None}, src)
        if id(w) in self.param_names:
            self.layers[idx].own(pname)
        self.tag_all(out, idx)

    def add(self, tags: list[int], out: torch.Tensor) -> None:
        layers = sorted(t for t in tags if t >= 0)
        if len(layers) == 1:
            if INPUT in tags:
                raise UnsupportedLayerError(f"{self.where()}: adding the raw network input to layer "
                                            f"{self.layers[layers[0]].name} is not supported")
            raise UnsupportedLayerError(f"{self.where()}: adding a constant or a parameter to the output of layer "
                                        f"{self.layers[layers[0]].name} is not supported (only residual adds "
                                        f"of two layers' outputs)")
        if len(layers) != 2:
            raise UnsupportedLayerError(f"{self.where()}: an add of {len(layers)} layers' outputs is not supported")
        src, dst = layers
        lay = self.layers[dst]
        self.post_op(("add", self.call_site(), src), dst, PostOp("add", lay.cur_shape, lay.cur_shape, source=src))
        self.tag_all(out, dst)

    def functional_post(self, name: str, tags: list[int], out: torch.Tensor) -> None:
        src = self.single_source(tags, name)
        if src == INPUT:
            raise UnsupportedLayerError(f"{self.where()}: {name} on the network input before any synaptic layer "
                                        f"is not supported")
        lay = self.layers[src]
        site = ("func", name, self.call_site())
        self.tag_all(out, src)
        if site in lay.sites:
            return
        if name in _POOL_FUNCS:
            op = _pool_post(_POOL_FUNCS[name], lay.cur_shape, tuple(int(s) for s in out.shape[-3:]))
        elif name == "batch_norm":
            op = PostOp("batchnorm", lay.cur_shape, lay.cur_shape)
        else:
            op = PostOp("dropout", lay.cur_shape, lay.cur_shape)
        self.post_op(site, src, op)


def _has_tensor(o: Any) -> bool:
    return isinstance(o, torch.Tensor) or (isinstance(o, (tuple, list)) and any(_has_tensor(x) for x in o))


def _classify(module: nn.Module, path: str) -> str | None:
    """What a module is to the front end; None = transparent (look inside)."""
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return "batchnorm"
    if isinstance(module, nn.MaxPool2d):
        return "maxpool"
    if isinstance(module, nn.AvgPool2d):
        return "avgpool"
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return "adaptiveavgpool"
    if isinstance(module, (nn.Dropout, nn.Dropout2d)):
        return "dropout"
    if isinstance(module, nn.Flatten):
        return "flatten"
    if isinstance(module, nn.Identity):
        return "identity"
    lib, cls = _lib_class(module)
    if lib == "spikingjelly" and cls in ("Dropout", "Dropout2d"):
        return "dropout"
    has_children = next(module.children(), None) is not None
    if not has_children and next(module.parameters(recurse=False), None) is not None:
        raise UnsupportedLayerError(f"module {path or '<root>'} ({type(module).__name__}) has weights but is not a "
                                    f"supported layer (supported: Conv2d, Linear, BatchNorm1d/2d, pooling, "
                                    f"dropout, flatten, LIF neurons)")
    return None


def _pool_post(kind: str, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
               kernel: tuple[int, int] | None = None, stride: tuple[int, int] | None = None) -> PostOp:
    if len(in_shape) != 3:
        raise UnsupportedLayerError(f"2-d pooling on a per-sample shape {in_shape} is not supported")
    if kernel is None:  # functional or adaptive: infer the window from the shapes
        kernel = (max(1, in_shape[1] // out_shape[1]), max(1, in_shape[2] // out_shape[2]))
        stride = kernel
    return PostOp(kind, in_shape, out_shape, kernel, stride or kernel)


def _pool_op(kind: str, module: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> PostOp:
    m: Any = module
    if kind in ("maxpool", "avgpool"):
        k = _pair(m.kernel_size)
        return _pool_post(kind, in_shape, out_shape, k, _pair(m.stride) if m.stride else k)
    return _pool_post(kind, in_shape, out_shape)


# ---------------------------------------------------------------- entry point


class _ModelFailed(Exception):
    """The model raised while running on the example input (not a front-end verdict)."""


def trace(model: nn.Module, example_input: Any) -> list[LayerSpec]:
    """LayerSpecs of `model` on `example_input` ([T, B, ...] multi-step, or whatever the model's forward takes).

    Shapes are per sample per timestep. The model is not modified: it is traced on a copy (on the meta device
    when the model allows it, else on the CPU), in eval mode and without gradients.
    """
    if not isinstance(model, nn.Module):
        raise TraceError(f"expected a torch.nn.Module, got {type(model).__name__}")
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    if not inputs or not all(isinstance(x, torch.Tensor) for x in inputs):
        raise TraceError("the example input must be a tensor (or a tuple of tensors) such as [T, B, C, H, W]")
    # neuron parameters are read here, from the real values: the meta copy has none
    neurons = {}
    for path, mod in model.named_modules():
        spec = neuron_spec(mod, path)
        if spec is not None:
            neurons[path] = spec
    try:
        meta = _meta_copy(model)
    except Exception as exc:  # noqa: BLE001 - an uncopyable model is traced on the CPU below
        log.info("cannot copy the model to the meta device (%s)", exc)
        meta = None
    if meta is not None:
        try:
            return _run(meta.eval(), tuple(x.to("meta") for x in inputs), neurons)
        except _ModelFailed as exc:  # data-dependent models cannot run on meta tensors
            log.info("meta-device trace failed (%s); tracing on the CPU", exc)
    try:
        work = copy.deepcopy(model)
    except Exception as exc:  # noqa: BLE001 - an uncopyable model is traced in place
        log.info("cannot copy the model (%s); tracing it in place", exc)
        work = model
    was_training = work.training
    try:
        return _run(work.eval(), inputs, neurons)
    except _ModelFailed as exc:
        shapes = ", ".join(str(tuple(x.shape)) for x in inputs)
        raise TraceError(f"model failed on the example input of shape {shapes}: {exc}") from exc.__cause__
    finally:
        work.train(was_training)


def _meta_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` whose parameters and buffers live on the meta device, made without copying any data."""
    memo: dict[int, Any] = {}
    for t in (*model.parameters(), *model.buffers()):
        fake = torch.empty_like(t, device="meta")
        memo[id(t)] = nn.Parameter(fake, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else fake
    work = copy.deepcopy(model, memo)
    for mod in work.modules():
        if isinstance(mod, LIF):  # opaque to the tracer: only its output shape matters, skip the time loop
            mod.forward = _spikes_like  # type: ignore[method-assign]
    return work


def _spikes_like(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


def _run(model: nn.Module, inputs: tuple[torch.Tensor, ...], neurons: dict[str, NeuronSpec]) -> list[LayerSpec]:
    tracer = _Tracer(model, neurons)
    handles = []
    for _, mod in model.named_modules():
        handles.append(mod.register_forward_pre_hook(tracer.pre_hook, with_kwargs=True))
        handles.append(mod.register_forward_hook(tracer.post_hook, with_kwargs=True))
    for x in inputs:
        tracer.tag_all(x, INPUT)
    try:
        with torch.no_grad(), tracer:
            model(*inputs)
    except SpikePipeError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported by the caller (or retried off the meta device)
        msg = str(exc).splitlines()[0] if str(exc) else ""
        raise _ModelFailed(f"{type(exc).__name__}: {msg}") from exc
    finally:
        for h in handles:
            h.remove()
    if not tracer.layers:
        raise UnsupportedLayerError(f"{type(model).__name__} has no Conv2d or Linear layer on the path from its "
                                    f"input: nothing to cost")
    return [lay.spec() for lay in tracer.layers]


def with_neuron(layers: list[LayerSpec], neuron: NeuronSpec | None) -> list[LayerSpec]:
    """The same layers with every neuron replaced (for comparing structures across neuron libraries)."""
    return [replace(s, neuron=neuron if s.neuron is not None else None) for s in layers]
