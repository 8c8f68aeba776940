"""Front end: trace a PyTorch SNN once into LayerSpecs (shapes, strides, padding, groups, skip connections).

A layer is one synaptic op (Conv2d / Linear) plus everything after it up to the next synaptic op: normalisation,
the spiking neuron, pooling, dropout, flatten, residual adds. Layer-structured networks (`zoo.SNNNet`) are read
from their declared structure with shapes observed by forward hooks; other modules go through the generic tracer
in `spikepipe.tracer`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from spikepipe.ir import LayerSpec, NeuronSpec, PostOp, SpikePipeError
from spikepipe.snn import LIF


class UnsupportedLayerError(SpikePipeError):
    """The model contains a module or operation the front end cannot cost."""


class TraceError(SpikePipeError):
    """The model could not be run on the example input."""


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def neuron_spec(module: nn.Module) -> NeuronSpec:
    """Our LIF's parameters as a NeuronSpec (other libraries' neurons are read in spikepipe.tracer)."""
    if not isinstance(module, LIF):
        raise UnsupportedLayerError(f"unsupported neuron type {type(module).__name__}")
    return NeuronSpec(beta=round(float(module.beta), 6), threshold=module.threshold, reset=module.reset,
                      surrogate=module.surrogate, learn_beta=module.learn_beta, fire_on_equal=module.fire_on_equal)


def synapse_spec(index: int, name: str, module: nn.Module, in_shape: tuple[int, ...],
                 out_shape: tuple[int, ...], inputs: tuple[int, ...]) -> LayerSpec:
    if isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros" or isinstance(module.padding, str):
            pad = (module.kernel_size[0] // 2, module.kernel_size[1] // 2) if module.padding == "same" else (0, 0)
        else:
            pad = _pair(module.padding)
        return LayerSpec(index, name, "conv", in_shape, out_shape, kernel=_pair(module.kernel_size),
                         stride=_pair(module.stride), padding=pad, dilation=_pair(module.dilation),
                         groups=module.groups, bias=module.bias is not None, inputs=inputs)
    if isinstance(module, nn.Linear):
        return LayerSpec(index, name, "linear", in_shape, out_shape, bias=module.bias is not None, inputs=inputs)
    raise UnsupportedLayerError(f"module {name} ({type(module).__name__}) is not a supported synaptic op")


def pool_op(module: nn.Module, name: str, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> PostOp:
    if isinstance(module, nn.MaxPool2d):
        return PostOp("maxpool", in_shape, out_shape, _pair(module.kernel_size), _pair(module.stride or module.kernel_size))
    if isinstance(module, nn.AvgPool2d):
        return PostOp("avgpool", in_shape, out_shape, _pair(module.kernel_size), _pair(module.stride or module.kernel_size))
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        k = (in_shape[1] // out_shape[1], in_shape[2] // out_shape[2]) if len(in_shape) == 3 else (1, 1)
        return PostOp("adaptiveavgpool", in_shape, out_shape, k, k)
    raise UnsupportedLayerError(f"module {name} ({type(module).__name__}) is not a supported pooling op")


def trace(model: nn.Module, example_input: torch.Tensor) -> list[LayerSpec]:
    """LayerSpecs of `model` on `example_input` ([T, B, ...] for multi-step models)."""
    from spikepipe.zoo import SNNNet

    if isinstance(model, SNNNet):
        return _trace_snnnet(model, example_input)
    from spikepipe.tracer import trace_generic

    return trace_generic(model, example_input)


def _trace_snnnet(model: Any, example_input: torch.Tensor) -> list[LayerSpec]:
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    handles = []
    for bi, block in enumerate(model.blocks):
        for part in ("synapse", "norm", "pool"):
            mod = getattr(block, part, None)
            if mod is None:
                continue

            def hook(_m: nn.Module, args: tuple, out: torch.Tensor, key: str = f"{bi}.{part}") -> None:
                # stateless ops see [T*B, ...]: drop the folded batch to get per-sample shapes
                shapes[key] = (tuple(args[0].shape[1:]), tuple(out.shape[1:]))

            handles.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(example_input)
    except Exception as exc:  # noqa: BLE001 - a model that does not run on its input is the user's error to see
        raise TraceError(f"model failed on the example input of shape {tuple(example_input.shape)}: {exc}") from None
    finally:
        for h in handles:
            h.remove()
    layers = []
    for i, block in enumerate(model.blocks):
        name = f"blocks.{i}.synapse"
        in_shape, out_shape = shapes[f"{i}.synapse"]
        src = model.sources[i]
        spec = synapse_spec(i, name, block.synapse, in_shape, out_shape, (src,))
        post: list[PostOp] = []
        cur = out_shape
        if block.norm is not None:
            post.append(PostOp("batchnorm", cur, cur))
        if model.residuals[i] is not None:
            post.append(PostOp("add", cur, cur, source=model.residuals[i]))
        if block.pool is not None:
            pin, pout = shapes[f"{i}.pool"]
            post.append(pool_op(block.pool, f"blocks.{i}.pool", pin, pout))
            cur = pout
        if block.dropout is not None:
            post.append(PostOp("dropout", cur, cur))
        neuron = neuron_spec(block.neuron) if block.neuron is not None else None
        layers.append(LayerSpec(**{**spec.__dict__, "neuron": neuron, "post_ops": tuple(post)}))
    return layers
