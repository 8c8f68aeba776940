"""What the tracer knows about torch ops and modules: the op families, module kinds, conv and pooling
parameters, per-sample shapes (spikepipe.tracer.core applies them while tracing)."""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Any

import torch
from torch import nn

from spikepipe.ir import PostOp
from spikepipe.tracer.errors import UnsupportedLayerError
from spikepipe.tracer.neurons import SUPPORTED as NEURONS
from spikepipe.tracer.neurons import library_class

# ops that only move, select or reduce values: the result is still "the output of layer l"
_PASSTHROUGH = frozenset({
    "reshape", "view", "view_as", "reshape_as", "flatten", "unflatten", "squeeze", "unsqueeze", "permute",
    "transpose", "contiguous", "clone", "detach", "detach_", "to", "float", "double", "half", "type", "type_as",
    "cpu", "__getitem__", "select", "narrow", "stack", "cat", "concat", "concatenate", "repeat", "expand",
    "expand_as", "unbind", "chunk", "split", "requires_grad_", "movedim", "index_select",
})
_REDUCE = frozenset({"mean", "sum"})
_ADD = frozenset({"add", "__add__", "__radd__", "add_", "__iadd__"})
_POOL_FUNCS = {"max_pool2d": "maxpool", "avg_pool2d": "avgpool", "adaptive_avg_pool2d": "adaptiveavgpool",
               "adaptive_max_pool2d": "maxpool", "max_pool1d": "maxpool", "avg_pool1d": "avgpool",
               "adaptive_avg_pool1d": "adaptiveavgpool", "adaptive_max_pool1d": "maxpool"}
_NORM_FUNCS = {"batch_norm": "batchnorm", "layer_norm": "layernorm"}
_MATMUL = frozenset({"matmul", "__matmul__", "bmm"})
_CAT = frozenset({"cat", "concat", "concatenate"})
_SCALE = frozenset({"mul", "__mul__", "__rmul__", "mul_", "__imul__", "div", "__truediv__", "div_", "__itruediv__"})
_DROPOUT_FUNCS = frozenset({"dropout", "dropout2d", "dropout1d", "feature_dropout", "alpha_dropout"})
SUPPORTED_OPS = (f"Conv1d, Conv2d, Linear (modules or functional), BatchNorm1d/2d, LayerNorm, max/avg/adaptive "
                 f"pooling 1-d and 2-d, dropout, flatten/reshape, mean over a layer's own dims, residual add, "
                 f"scaling by a constant, matmul of two layers' outputs (spiking self-attention); "
                 f"neurons: {NEURONS}")


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _as_2d(v: Any, one_d: bool) -> tuple[int, int]:
    """A conv parameter as (height, width); a Conv1d is a conv over (C, 1, L) with a 1 x k kernel."""
    if not one_d:
        return _pair(v)
    return (1, int(v if isinstance(v, int) else v[0]))


def _conv_params(m: Any, name: str, one_d: bool = False) -> dict[str, Any]:
    k, d = _as_2d(m["kernel"], one_d), _as_2d(m["dilation"], one_d)
    padding = m["padding"]
    if isinstance(padding, str):
        padding = (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2) if padding == "same" else (0, 0)
    elif one_d:
        padding = (0, int(padding if isinstance(padding, int) else padding[0]))
    stride = _as_2d(m["stride"], one_d)
    return {"kernel": k, "stride": stride, "padding": _pair(padding), "dilation": d, "groups": int(m["groups"]),
            "bias": bool(m["bias"])}


def per_sample(t: torch.Tensor, op: str) -> tuple[int, ...]:
    """Per-sample, per-step shape of a synaptic op's input or output: (C, H, W), (C, 1, L) or (F,)."""
    if op == "conv1d":
        return (int(t.shape[-2]), 1, int(t.shape[-1]))
    nd = 3 if op == "conv" else 1
    return tuple(int(s) for s in t.shape[-nd:])


def _token_dims(x: torch.Tensor, tokens: int) -> int:
    """How many of x's dims just before its features make `tokens` rows (0: none, they are samples)."""
    if tokens <= 1:
        return 0
    for j in range(1, x.dim() - 1):
        if prod(int(d) for d in x.shape[-1 - j:-1]) == tokens:
            return j
    return 0


@dataclass(frozen=True)
class FirstCall:
    """What the first layer's call says: its samples x steps, and how many token dims sit between them and the
    features (0 with samples 0: undecided)."""
    samples: int
    token_dims: int


def first_call_samples(example: tuple[int, ...], shape: tuple[int, ...], time_major: bool) -> FirstCall:
    """The samples x steps and token dims of the first layer's call on a tensor of `shape`, from the example input:
    its leading [T, B] are samples x steps when time is in it (the neurons step over dim 0, or the call got one
    slice of a loop over it), its leading [B] when not (single-step neurons, or the input repeated over T inside
    forward). The token dims are exact only when the call received the example unchanged; (0, 0) = undecided."""
    n, whole = prod(shape), prod(example)
    k = 2 if n < whole else 1 if n > whole else (2 if time_major else 1)
    if len(example) <= k or n % prod(example[k:]):
        return FirstCall(0, 0)
    return FirstCall(n // prod(example[k:]), len(example) - 1 - k if shape == example else 0)


def _is_constant(o: Any) -> bool:
    """A python number or a one-element tensor (a scale such as attention's 1/sqrt(d))."""
    return isinstance(o, (int, float)) or (isinstance(o, torch.Tensor) and o.numel() == 1)


def _has_tensor(o: Any) -> bool:
    return isinstance(o, torch.Tensor) or (isinstance(o, (tuple, list)) and any(_has_tensor(x) for x in o))


_MODULES: tuple[tuple[type, str], ...] = (
    (nn.Conv2d, "conv"), (nn.Conv1d, "conv1d"), (nn.Linear, "linear"),
    (nn.BatchNorm1d, "batchnorm"), (nn.BatchNorm2d, "batchnorm"), (nn.LayerNorm, "layernorm"),
    (nn.MaxPool2d, "maxpool"), (nn.MaxPool1d, "maxpool"), (nn.AvgPool2d, "avgpool"), (nn.AvgPool1d, "avgpool"),
    (nn.AdaptiveAvgPool2d, "adaptiveavgpool"), (nn.AdaptiveAvgPool1d, "adaptiveavgpool"),
    (nn.AdaptiveMaxPool2d, "maxpool"), (nn.AdaptiveMaxPool1d, "maxpool"),
    (nn.Dropout, "dropout"), (nn.Dropout1d, "dropout"), (nn.Dropout2d, "dropout"), (nn.Flatten, "flatten"),
    (nn.Identity, "identity"),
)


def classify(module: nn.Module, path: str) -> str | None:
    """What a module is to the front end; None = transparent (look inside)."""
    for cls, kind in _MODULES:
        if isinstance(module, cls):
            return kind
    lib, cls_name = library_class(module)
    if lib == "spikingjelly" and cls_name in ("Dropout", "Dropout2d"):
        return "dropout"
    has_children = next(module.children(), None) is not None
    if not has_children and next(module.parameters(recurse=False), None) is not None:
        raise UnsupportedLayerError(f"module {path or '<root>'} ({type(module).__name__})"
                                    f" has weights but is not a supported layer (supported: {SUPPORTED_OPS})")
    return None


def pooled_shape(in_shape: tuple[int, ...], y: torch.Tensor, one_d: bool) -> tuple[int, ...]:
    """Per-sample shape after pooling: a 1-d pool replaces the last dim, a 2-d pool the last two."""
    n = 1 if one_d else 2
    if len(in_shape) < n + (0 if one_d else 1):
        raise UnsupportedLayerError(f"{n}-d pooling on a per-sample shape {in_shape} is not supported")
    return tuple(in_shape[:-n]) + tuple(int(s) for s in y.shape[-n:])


def _pool_post(kind: str, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
               kernel: tuple[int, int] | None = None, stride: tuple[int, int] | None = None) -> PostOp:
    if kernel is None:  # functional or adaptive: infer the window from the shapes
        ih, iw = (in_shape[-2], in_shape[-1]) if len(in_shape) > 1 else (1, in_shape[-1])
        oh, ow = (out_shape[-2], out_shape[-1]) if len(out_shape) > 1 else (1, out_shape[-1])
        kernel = (max(1, ih // max(1, oh)), max(1, iw // max(1, ow)))
        stride = kernel
    return PostOp(kind, in_shape, out_shape, kernel, stride or kernel)


def _pool_op(kind: str, module: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> PostOp:
    m: Any = module
    if kind in ("maxpool", "avgpool") and hasattr(m, "kernel_size"):
        one_d = isinstance(m, (nn.MaxPool1d, nn.AvgPool1d))
        k = _as_2d(m.kernel_size, one_d)
        return _pool_post(kind, in_shape, out_shape, k, _as_2d(m.stride, one_d) if m.stride else k)
    return _pool_post(kind, in_shape, out_shape)
