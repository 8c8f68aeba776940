"""The tracer: one run of the model under a TorchFunctionMode that tags every tensor with the layer whose output
it is, plus forward hooks on the modules (see spikepipe.frontend for the rules).

Per layer it also counts how the model runs it: calls per forward and the sample-steps (leading elements) of each
call, from which spikepipe.tracer.layout reads T and B.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from math import prod
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from spikepipe.ir import LayerSpec, NeuronSpec, PostOp
from spikepipe.tracer.errors import TraceError, UnsupportedLayerError
from spikepipe.tracer.layout import LayerRun
from spikepipe.tracer.neurons import steps_over_dim0
from spikepipe.tracer.ops import (  # noqa: F401 - re-exported for the front end
    _ADD,
    _CAT,
    _DROPOUT_FUNCS,
    _MATMUL,
    _MODULES,
    _NORM_FUNCS,
    _PASSTHROUGH,
    _POOL_FUNCS,
    _REDUCE,
    _SCALE,
    SUPPORTED_OPS,
    _as_2d,
    _conv_params,
    _has_tensor,
    _is_constant,
    _pair,
    _pool_op,
    _pool_post,
    _token_dims,
    classify,
    first_call_samples,
    per_sample,
    pooled_shape,
)

INPUT = -1  # tag of the network input (and anything computed from it before the first synaptic op)

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
    calls: int = 0  # calls of the synaptic op in one forward (T for a time loop in forward)
    leads: set[int] = field(default_factory=set)  # leading elements (samples x steps) per call
    first_shape: tuple[int, ...] = ()
    sample_rank: int = 1
    neuron_lead_rank: int = 0  # leading (time / batch) dims of the neuron's input on its first call; 0 unknown

    def own(self, path: str) -> None:
        if path and path not in self.modules:
            self.modules.append(path)

    def run(self) -> LayerRun:
        return LayerRun(self.name, self.in_shape, self.calls, frozenset(self.leads), self.first_shape,
                        self.sample_rank, self.neuron_lead_rank)

    def spec(self) -> LayerSpec:
        return LayerSpec(self.index, self.name, self.op, self.in_shape, self.out_shape,  # type: ignore[arg-type]
                         neuron=self.neuron, post_ops=tuple(self.post), inputs=self.inputs,
                         modules=tuple(self.modules), **self.params)


class _Tracer(TorchFunctionMode):
    def __init__(self, model: nn.Module, neurons: dict[str, NeuronSpec],
                 example_shape: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.neurons = neurons
        self.example_shape = tuple(int(d) for d in example_shape)
        modes = {steps_over_dim0(m) for n, m in model.named_modules() if n in neurons}
        self.time_major = next(iter(modes)) if len(modes) == 1 else None  # do the neurons step over dim 0?
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
        nd = {"conv": 4, "conv1d": 3}.get(op, 2)  # per-sample dims plus at least one batch dim
        if x.dim() < nd or out.dim() < nd:
            raise TraceError(f"{name}: {op} input of shape {tuple(x.shape)} has no batch dimension; the front end "
                             f"needs batched inputs ([T, B, ...] or [B, ...])")
        in_shape, out_shape = per_sample(x, op), per_sample(out, op)
        op = "conv" if op == "conv1d" else op
        lead = x.numel() // max(1, prod(in_shape))
        first = src == INPUT and not self.layers
        tokens, token_dims = self.tokens(op, x, lead, None if first else self.sample_lead())
        if token_dims:  # a Linear applied per token: tokens are per-sample rows of its GEMM, not samples
            nd += token_dims
            in_shape, out_shape, lead = (tokens, *in_shape), (tokens, *out_shape), lead // tokens
        if key in self.by_site:
            idx = self.by_site[key]
            self.layers[idx].calls += 1
            self.layers[idx].leads.add(lead)
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
        self.layers.append(_Layer(idx, name, op, in_shape, out_shape, params, (src,), out_shape, calls=1,
                                  leads={lead}, first_shape=tuple(int(d) for d in x.shape), sample_rank=nd - 1))
        self.by_site[key] = idx
        return idx

    def sample_lead(self) -> int:
        """Samples x steps per call, as the first layer (fed by the network input) defines them."""
        return max(self.layers[0].leads) if self.layers else 0

    def tokens(self, op: str, x: torch.Tensor, lead: int, base: int | None) -> tuple[int, int]:
        """Rows per sample-step of a Linear applied to [..., tokens, features]: its leading elements over the
        sample-steps of one call. Every call of a model runs the same sample-steps (T*B multi-step, B per step of
        a loop), which the first layer defines (`base`); for the first layer itself they come from the example
        input: its leading [T, B] when the neurons step over dim 0 (multi-step), its leading [B] when they do not
        (single-step, a loop in forward), scaled by how much of the example the call received (a slice per step
        of a loop over the input, a repeat of it over T inside forward). Returns (tokens, token dims of x)."""
        if op != "linear" or x.dim() < 3:
            return 1, 0
        exact = 0  # token dims known from the example itself (the first layer receiving it unchanged)
        if base is None:
            if self.time_major is None or not self.example_shape:
                return 1, 0
            first = first_call_samples(self.example_shape, tuple(int(d) for d in x.shape), self.time_major)
            base, exact = first.samples, first.token_dims
        if not base or lead < base or lead % base:
            return 1, 0
        tokens = lead // base
        return tokens, (exact if tokens == 1 else _token_dims(x, tokens))

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
        kind = None if self.opaque_depth else ("neuron" if path in self.neurons else classify(module, path))
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
        if kind in ("conv", "conv1d", "linear"):
            m: Any = module
            if kind != "linear" and m.padding_mode != "zeros":
                raise UnsupportedLayerError(f"module {path} ({type(module).__name__}) uses padding_mode="
                                            f"{m.padding_mode!r}; only zero padding is modelled")
            params = (_conv_params({"kernel": m.kernel_size, "stride": m.stride, "padding": m.padding,
                                    "dilation": m.dilation, "groups": m.groups, "bias": m.bias is not None}, path,
                                   one_d=kind == "conv1d")
                      if kind != "linear" else {"bias": m.bias is not None})
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
            if lay.cur_shape == lay.out_shape:  # straight after the synapse: its per-sample rank applies
                lay.neuron_lead_rank = x.dim() - lay.sample_rank
            self.post_op(site, src, None, self.neurons[path])
        elif kind in ("batchnorm", "layernorm"):
            self.post_op(site, src, PostOp(kind, lay.cur_shape, lay.cur_shape))
        elif kind == "dropout":
            self.post_op(site, src, PostOp("dropout", lay.cur_shape, lay.cur_shape))
        elif kind == "flatten":
            shape = (prod(lay.cur_shape),)
            if shape != lay.cur_shape:
                self.post_op(site, src, PostOp("flatten", lay.cur_shape, shape))
        else:
            one_d = "1d" in type(module).__name__.lower()
            self.post_op(site, src, _pool_op(kind, module, lay.cur_shape, pooled_shape(lay.cur_shape, y, one_d)))

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
        if name in ("conv2d", "conv1d", "linear"):
            self.functional_synapse(name, args, kwargs, out)
        elif tags == [INPUT]:  # encoding the input (spikegen.rate, repeats, scaling): the data pipeline, free
            self.tag_all(out, INPUT)
        elif name in _ADD:
            self.add(tags, out)
        elif name in _CAT and len(tags) > 1 and INPUT not in tags:
            self.weightless("concat", tags, out)
        elif name in _REDUCE:
            self.reduce(name, tags, args, kwargs, out)
        elif name in _PASSTHROUGH:
            self.tag_all(out, self.single_source(tags, name))
        elif name in _POOL_FUNCS or name in _NORM_FUNCS or name in _DROPOUT_FUNCS:
            self.functional_post(name, tags, out)
        elif name in _MATMUL:
            self.matmul(name, args, out)
        elif name in _SCALE and len(tags) == 1 and _is_constant(args[1] if len(args) > 1 else kwargs.get("other")):
            self.functional_post("scale", tags, out)
        elif name in _SCALE and len(tags) == 2 and INPUT not in tags and name.startswith(("mul", "__mul", "__rmul")):
            self.weightless("mul", tags, out)
        else:
            what = "a product of two layers' outputs (spiking self-attention)" if len(tags) > 1 and name in (
                "matmul", "__matmul__", "bmm", "mul", "__mul__", "einsum") else f"operation {name!r}"
            raise UnsupportedLayerError(f"{self.where()}: {what} on the output of layer "
                                        f"{self.layers[tags[-1]].name if tags[-1] >= 0 else 'input'} is not "
                                        f"supported (supported: {SUPPORTED_OPS})")
        return out

    def reduce(self, name: str, tags: list[int], args: tuple, kwargs: dict, out: torch.Tensor) -> None:
        """A mean or sum: over batch / time dims it is free (a readout); over the layer's own dims it is a global
        average pool (Spikformer's mean over tokens), costed as one."""
        src = self.single_source(tags, name)
        x = args[0] if args else kwargs.get("input")
        if not isinstance(out, torch.Tensor) or not isinstance(x, torch.Tensor) or src == INPUT:
            self.tag_all(out, src)
            return
        lay = self.layers[src]
        cur = lay.cur_shape
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        dims = set(range(x.dim())) if dim is None else {d % x.dim() for d in ((dim,) if isinstance(dim, int)
                                                                             else dim)}
        splits = [j for j in range(x.dim() + 1) if prod(x.shape[j:]) == prod(cur)]  # where one sample starts
        if any(all(d < j for d in dims) for j in splits):
            self.tag_all(out, src)  # over leading dims: the per-sample shape is untouched
            return
        j = next((j for j in splits if all(d >= j for d in dims)), None)
        if j is None:
            raise UnsupportedLayerError(f"{self.where()}: {name} of the output of layer {lay.name} mixes batch or "
                                        f"time dims with its per-sample dims {cur}")
        keep = [int(x.shape[i]) for i in range(j, x.dim()) if i not in dims] or [1]
        shape = tuple(keep)
        site = ("func", name, self.call_site())
        self.tag_all(out, src)
        if site not in lay.sites:
            window = (1, max(1, prod(cur) // prod(shape)))
            self.post_op(site, src, PostOp("avgpool", cur, shape, window, window))

    def functional_synapse(self, name: str, args: tuple, kwargs: dict, out: torch.Tensor) -> None:
        x = args[0] if args else kwargs["input"]
        w = args[1] if len(args) > 1 else kwargs["weight"]
        b = args[2] if len(args) > 2 else kwargs.get("bias")
        src = self.single_source(self.arg_tags(x), name)
        pname = self.param_names.get(id(w), f"{self.stack[-1][0]}.{name}")
        pname = pname[:-len(".weight")] if pname.endswith(".weight") else pname
        if name in ("conv2d", "conv1d"):
            def arg(i: int, key: str, default: Any) -> Any:
                return args[i] if len(args) > i else kwargs.get(key, default)

            one_d = name == "conv1d"
            params = _conv_params({"kernel": tuple(w.shape[2:]), "stride": arg(3, "stride", 1),
                                   "padding": arg(4, "padding", 0), "dilation": arg(5, "dilation", 1),
                                   "groups": arg(6, "groups", 1), "bias": b is not None}, pname, one_d=one_d)
            idx = self.synapse(("weight", id(w)), pname, "conv1d" if one_d else "conv", x, out, params, src)
        else:
            idx = self.synapse(("weight", id(w)), pname, "linear", x, out, {"bias": b is not None}, src)
        if id(w) in self.param_names:
            self.layers[idx].own(pname)
        self.tag_all(out, idx)

    def matmul(self, name: str, args: tuple, out: torch.Tensor) -> None:
        """A product of two activations (Q K^T, A V): a layer of its own, with no weights. Shapes per sample-step
        are (heads, M, K) @ (heads, K, N); the leading dims beyond the producer's samples x steps are heads."""
        a, b = args[0], args[1]
        ta, tb = self.tag_of(a), self.tag_of(b)
        if ta is None or tb is None or INPUT in (ta, tb):
            raise UnsupportedLayerError(f"{self.where()}: {name} of a layer's output with a parameter, a constant or "
                                        f"the raw input is not supported (use nn.Linear for a weight; supported: "
                                        f"{SUPPORTED_OPS})")
        # one layer per module instance, line and operands (a time loop repeats all three)
        site = ("matmul", id(self.stack[-1][1]), self.call_site(), ta, tb)
        lead = self.sample_lead()  # samples x steps per call
        if a.dim() < 2 or b.dim() < 2:
            raise UnsupportedLayerError(f"{self.where()}: {name} of vectors is not supported")
        m, k, n = int(a.shape[-2]), int(a.shape[-1]), int(b.shape[-1])
        g = a.numel() // max(1, lead * m * k)
        if g < 1 or a.numel() != lead * g * m * k or b.numel() != lead * g * k * n:
            raise UnsupportedLayerError(f"{self.where()}: {name} of {tuple(a.shape)} and {tuple(b.shape)} does not "
                                        f"multiply per sample and step (the batch / time dims must be shared)")
        if site in self.by_site:
            idx = self.by_site[site]
            self.layers[idx].calls += 1
            self.layers[idx].leads.add(lead)
        else:
            idx = len(self.layers)
            path = self.stack[-1][0]
            label = f"{path + '.' if path else ''}matmul{sum(1 for x in self.layers if x.op == 'matmul')}"
            srcs = (ta,) if ta == tb else (ta, tb)
            self.layers.append(_Layer(idx, label, "matmul", (g, m, k), (g, m, n), {}, srcs, (g, m, n), calls=1,
                                      leads={lead}, first_shape=tuple(int(d) for d in a.shape), sample_rank=3))
            self.by_site[site] = idx
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
        self.join("add", layers, out)

    def join(self, kind: str, tags: list[int], out: torch.Tensor) -> None:
        """A residual add: a post op of the later layer naming the earlier one."""
        src, dst = sorted(tags)
        lay = self.layers[dst]
        self.post_op((kind, self.call_site(), src), dst, PostOp(kind, lay.cur_shape, lay.cur_shape, source=src))
        self.tag_all(out, dst)

    def weightless(self, op: str, tags: list[int], out: torch.Tensor) -> None:
        """An element-wise product of two layers' outputs (op "mul": Spike-driven Transformer's K * V and Q * KV)
        or a concatenation of several (op "concat": DenseNet / U-Net skips along channels): a layer of its own with
        no weights and no GEMM, on the vector unit, so that a neuron or a norm may follow it."""
        srcs = tuple(sorted(tags))
        site = (op, id(self.stack[-1][1]), self.call_site(), srcs)
        lead = self.sample_lead()
        if site in self.by_site:
            idx = self.by_site[site]
            self.layers[idx].calls += 1
            self.layers[idx].leads.add(lead)
        else:
            per = out.numel() // max(1, lead)
            cur = next((self.layers[t].cur_shape for t in reversed(srcs) if prod(self.layers[t].cur_shape) == per),
                       None)
            if cur is None:  # a concatenation: the sources' rank, along the dim that grew
                rank = len(self.layers[srcs[-1]].cur_shape)
                cur = tuple(int(d) for d in out.shape[-rank:])
                if prod(cur) != per:
                    raise UnsupportedLayerError(f"{self.where()}: {op} of layers "
                                                f"{', '.join(self.layers[t].name for t in srcs)} joins along a batch "
                                                f"or time dim")
            idx = len(self.layers)
            path = self.stack[-1][0]
            label = f"{path + '.' if path else ''}{op}{sum(1 for x in self.layers if x.op == op)}"
            self.layers.append(_Layer(idx, label, op, cur, cur, {}, srcs, cur, calls=1, leads={lead},
                                      first_shape=tuple(int(d) for d in out.shape), sample_rank=len(cur)))
            self.by_site[site] = idx
        self.tag_all(out, idx)

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
            y = out[0] if isinstance(out, (tuple, list)) else out
            op = _pool_post(_POOL_FUNCS[name], lay.cur_shape, pooled_shape(lay.cur_shape, y, "1d" in name))
        elif name in _NORM_FUNCS:
            op = PostOp(_NORM_FUNCS[name], lay.cur_shape, lay.cur_shape)
        elif name == "scale":
            op = PostOp("scale", lay.cur_shape, lay.cur_shape)
        else:
            op = PostOp("dropout", lay.cur_shape, lay.cur_shape)
        self.post_op(site, src, op)
