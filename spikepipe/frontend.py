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
recognised by their call site and recorded once, and counted: how often the first layer runs per forward, on
how many samples x steps, tells T and B (spikepipe.tracer.layout), so a model with its time loop in forward and
an input [B, ...] is costed at the T it runs, never at T = B.

The tracer lives in spikepipe.tracer (core: the hooks and the TorchFunctionMode; neurons: the neuron libraries;
layout: time and batch); this module is its entry point.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from spikepipe.ir import LayerSpec, NeuronSpec, SpikePipeError
from spikepipe.snn import LIF
from spikepipe.tracer.core import INPUT, _Tracer
from spikepipe.tracer.errors import TraceError, UnsupportedLayerError
from spikepipe.tracer.layout import Layout, LayoutError, infer
from spikepipe.tracer.neurons import neuron_spec

__all__ = ["Layout", "LayoutError", "TraceError", "Traced", "UnsupportedLayerError", "neuron_spec", "trace",
           "trace_model"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Traced:
    layers: list[LayerSpec]
    layout: Layout


# ---------------------------------------------------------------- entry point


class _ModelFailed(Exception):
    """The model raised while running on the example input (not a front-end verdict)."""


def trace(model: nn.Module, example_input: Any) -> list[LayerSpec]:
    """LayerSpecs of `model` on `example_input` ([T, B, ...] multi-step, or whatever the model's forward takes).

    Shapes are per sample per timestep. The model is not modified: it is traced on a copy (on the meta device
    when the model allows it, else on the CPU), in eval mode and without gradients. Time and batch are not
    checked here (a model run on one sample traces the same layers); trace_model reads them too.
    """
    return _trace(model, example_input)[0]


def trace_model(model: nn.Module, example_input: Any, *, timesteps: int | None = None,
                batch: int | None = None) -> Traced:
    """Layers and layout (T, B and how they were found) of `model` on `example_input`; `timesteps` and `batch`
    override what the example says, and are refused where the model fixes them (LayoutError)."""
    layers, runs, shape = _trace(model, example_input)
    layout = infer(runs, shape, timesteps=timesteps, batch=batch)
    once = set(layout.once_per_sample)
    return Traced([replace(s, per_step=False) if s.name in once else s for s in layers], layout)


def _trace(model: nn.Module, example_input: Any) -> tuple[list[LayerSpec], list, tuple[int, ...]]:
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
            return (*_run(meta.eval(), tuple(x.to("meta") for x in inputs), neurons), tuple(inputs[0].shape))
        except _ModelFailed as exc:  # data-dependent models cannot run on meta tensors
            log.info("meta-device trace failed (%s); tracing on the CPU", exc)
    try:
        work = copy.deepcopy(model)
    except Exception as exc:  # noqa: BLE001 - an uncopyable model is traced in place
        log.info("cannot copy the model (%s); tracing it in place", exc)
        work = model
    was_training = work.training
    try:
        return (*_run(work.eval(), inputs, neurons), tuple(inputs[0].shape))
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


def _run(model: nn.Module, inputs: tuple[torch.Tensor, ...],
         neurons: dict[str, NeuronSpec]) -> tuple[list[LayerSpec], list]:
    tracer = _Tracer(model, neurons, tuple(inputs[0].shape))
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
    return [lay.spec() for lay in tracer.layers], [lay.run() for lay in tracer.layers]


