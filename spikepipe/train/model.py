"""The user's own module as the trainer sees it: which parameters make up each layer, how to run the whole model
with any mix of weight versions, how to reset its neurons, and how to read logits from its output.

Nothing is cut out of the user's module. The trainer keeps one dict of weights per layer (parameter path ->
tensor) outside the module and runs `torch.func.functional_call(model, {layer 0's, layer 1's, ...}, x)`.

Which parameters belong to layer l (`layer_map`, the one place to switch once LayerSpec names its modules):
  - a model with the block protocol (`blocks`, `sources`, `residuals`, as spikepipe.zoo builds): block l's;
  - otherwise the front end's LayerSpec l: the parameters of the synaptic op LayerSpec.name names (a module path,
    or a parameter path for a functional call);
  - every other parameter (BatchNorm's affine, PLIF's learnable tau, snnTorch's learn_beta, a parameter of the
    root module) follows the layer whose synaptic op ran last before the parameter was first used in one run of
    the model: a neuron's or a norm's parameters follow the layer they sit in. One used before any synaptic op
    goes to layer 0; one never used goes to layer 0 too (it gets no gradient and never changes).

How the model uses time is the front end's reading (spikepipe.tracer.layout, `Feeding`): [T, B, ...] for a
multi-step model (SpikingJelly's step mode "m", our zoo) or one whose forward loops over x[t] (snnTorch); [B, ...]
when the time loop and the encoding are inside the model; a single-step model (one call is one timestep: snnTorch
`init_hidden` Sequential, SpikingJelly step mode "s") is fed [T, B, ...] and called T times, neurons reset first.
Logits are the model's output [B, C], or the mean over T of an output [T, B, C] (of the per-step outputs of a
single-step model); a tuple output (snnTorch's spk_rec, mem_rec) is read from its first element.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call
from torch.overrides import TorchFunctionMode

from spikepipe.ir import LayerSpec, SpikePipeError

log = logging.getLogger(__name__)
Weights = dict[str, torch.Tensor]


class ModelError(SpikePipeError):
    """The model cannot be trained as given (its output, its layers or its input do not fit)."""


@dataclass(frozen=True)
class LayerMap:
    """Per layer: its parameter paths, the module whose inputs are the layer's inputs (None: no such module), and
    the layers whose outputs it reads (-1: the network input)."""

    params: tuple[tuple[str, ...], ...]
    entries: tuple[str | None, ...]
    producers: tuple[tuple[int, ...], ...]
    # a layer adds another layer's output somewhere inside a layer (a residual add not at a module boundary)
    inner_adds: bool
    # per layer, the weight's parameter path when its synaptic op is a functional call (empty for a module)
    functional: tuple[tuple[str, ...], ...] = ()

    @property
    def num_layers(self) -> int:
        return len(self.params)

    def consumers(self) -> list[int]:
        """How many gradient contributions each layer's output receives (the loss counts for the last layer)."""
        c = [0] * self.num_layers
        for prods in self.producers:
            for p in prods:
                if p >= 0:
                    c[p] += 1
        c[-1] += 1
        return c


def has_blocks(model: nn.Module) -> bool:
    return all(hasattr(model, a) for a in ("blocks", "sources", "residuals"))


def _first_use(model: nn.Module, example: torch.Tensor, seeds: dict[int, int], entries: dict[str, int]) -> dict[int, int]:
    """Parameter id -> layer for every parameter not in `seeds`: the layer active when it was first used."""
    ids = {id(p) for p in model.parameters()}
    owner: dict[int, int] = {}
    current = [None]

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            kwargs = kwargs or {}
            flat = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
            for a in flat:  # the synaptic weight first: its bias and the op's other operands are its layer's
                if id(a) in seeds:
                    current[0] = seeds[id(a)]
            for a in flat:
                if id(a) in ids and id(a) not in seeds and id(a) not in owner:
                    owner[id(a)] = current[0] if current[0] is not None else 0
            return func(*args, **kwargs)

    handles = []
    modules = dict(model.named_modules())
    for path, layer in entries.items():
        def pre(_m: nn.Module, _a: tuple, layer: int = layer) -> None:
            current[0] = layer
        handles.append(modules[path].register_forward_pre_hook(pre))
    was = model.training
    try:
        reset_state(model)
        with torch.no_grad(), Mode():
            model.eval()(example)
    except Exception as exc:  # noqa: BLE001 - the user's model, reported in one line
        raise ModelError(f"{type(model).__name__} failed on its example input of shape {tuple(example.shape)}: "
                         f"{type(exc).__name__}: {exc}") from None
    finally:
        model.train(was)
        reset_state(model)
        for h in handles:
            h.remove()
    return owner


def layer_map(model: nn.Module, example: torch.Tensor | None, layers: Sequence[LayerSpec] | None = None) -> LayerMap:
    """Which parameters make up each layer (see the module docstring). `layers` is the front end's trace of the
    model; not needed for a model with the block protocol."""
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    by_id = {id(p): n for n, p in named.items()}
    modules = dict(model.named_modules())
    seeds: dict[int, int] = {}
    entries: list[str | None] = []
    if has_blocks(model):
        n_layers = len(model.blocks)
        for i, b in enumerate(model.blocks):
            for p in b.parameters():
                if id(p) in by_id:
                    seeds[id(p)] = i
            entries.append(f"blocks.{i}")
        producers = tuple(tuple(s for s in (model.sources[i], model.residuals[i]) if s is not None)
                          for i in range(n_layers))
        inner_adds = False  # a block's residual is one of its inputs: at the block's boundary
    else:
        if not layers:
            raise ModelError(f"{type(model).__name__}: the front end found no layers to train")
        n_layers = len(layers)
        functional: list[tuple[str, ...]] = [()] * n_layers
        for spec in layers:
            mod = modules.get(spec.name)
            if mod is not None and spec.name != "":
                own = list(mod.parameters())
                entries.append(spec.name)
            else:  # a functional call: the name is the weight's parameter path without ".weight"
                own = [named[k] for k in (spec.name, f"{spec.name}.weight", f"{spec.name}.bias") if k in named]
                entries.append(None)
                functional[spec.index] = tuple(k for k in (spec.name, f"{spec.name}.weight") if k in named)[:1]
            for p in own:
                if id(p) in by_id:
                    seeds.setdefault(id(p), spec.index)
        producers = tuple(tuple(sorted({i for i in s.inputs} | {p.source for p in s.post_ops
                                                                if p.kind == "add" and p.source is not None}))
                          for s in layers)
        inner_adds = any(p.kind == "add" for s in layers for p in s.post_ops)
    owner = dict(seeds)
    if any(id(p) not in seeds for p in named.values()):
        if example is None:
            raise ModelError(f"{type(model).__name__} has parameters outside its layers' synaptic ops; give an "
                             f"example input so the trainer can see which layer uses them")
        entry_of = {e: i for i, e in enumerate(entries) if e is not None}
        owner = {**_first_use(model, example, seeds, entry_of), **seeds}
    params: list[list[str]] = [[] for _ in range(n_layers)]
    for name, p in named.items():
        if id(p) not in owner:
            log.info("parameter %s is never used on the example input; it stays in layer 0 and never changes", name)
        params[owner.get(id(p), 0)].append(name)
    return LayerMap(tuple(tuple(p) for p in params), tuple(entries), producers, inner_adds,
                    tuple(functional) if not has_blocks(model) else ())


def reset_state(model: nn.Module) -> None:
    """Forget every neuron's state (SpikingJelly MemoryModule.reset, snnTorch reset_mem), as before a minibatch."""
    for m in model.modules():
        reset_module(m)


def reset_module(m: nn.Module) -> None:
    """Forget one module's own neuron state (nothing for a module without any)."""
    mro = {c.__name__ for c in type(m).__mro__}
    if "MemoryModule" in mro and callable(getattr(m, "reset", None)):
        m.reset()
    elif type(m).__module__.startswith("snntorch") and callable(getattr(m, "reset_mem", None)):
        m.reset_mem()


def readout(out: object) -> torch.Tensor:
    """Logits [B, C] from the model's output (see the module docstring)."""
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.dim() not in (2, 3):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"the model's output {shape} is neither logits [B, classes] nor [T, B, classes]")
    return out.mean(0) if out.dim() == 3 else out


def _raw(model: nn.Module, x: torch.Tensor) -> object:
    """The model's output on x, in eval mode, without gradients, neurons reset before and after."""
    was = model.training
    try:
        reset_state(model)
        with torch.no_grad():
            return model.eval()(x)
    finally:
        model.train(was)
        reset_state(model)


@dataclass(frozen=True)
class Feeding:
    """How the trainer feeds the model, from the front end's reading of its layout (spikepipe.tracer.layout)."""

    time_major: bool  # the trainer's input is [T, B, ...]
    single_step: bool  # one call of the model is one timestep: the trainer runs the T calls
    timesteps: int
    layout: str  # the front end's word (multi-step, loop-over-input, loop-in-forward, single-step, ...)


def feeding(model: nn.Module, example: torch.Tensor, layout: object | None = None) -> Feeding:
    """The Feeding of `model` from `layout` (a spikepipe.tracer.layout.Layout; None: the front end reads it now).
    A model with the block protocol is multi-step by definition."""
    if has_blocks(model):
        return Feeding(True, False, int(example.shape[0]), "multi-step")
    if layout is None:
        from spikepipe.frontend import trace_model

        layout = trace_model(model, example).layout
    style, t = layout.style, int(layout.timesteps)  # type: ignore[attr-defined]
    if style == "single-step":
        return Feeding(True, True, t, style)
    # [T, B, ...] when the front end found B at input dim 1 (multi-step, or a loop over x[t]); else [B, ...]
    return Feeding(layout.batch_source == "input dim 1", False, t, style)  # type: ignore[attr-defined]


def _classes(model: nn.Module, example: torch.Tensor) -> int:
    """The number of outputs (classes) from one run of the model on its example input."""
    try:
        raw = _raw(model, example)
    except Exception as exc:  # noqa: BLE001 - the user's model, reported in one line
        raise ModelError(f"{type(model).__name__} failed on its example input of shape {tuple(example.shape)}: "
                         f"{type(exc).__name__}: {exc}") from None
    return int(readout(raw).shape[1])


class ModelFn:
    """The user's model with its weights held outside it, one dict per layer."""

    def __init__(self, model: nn.Module, example: torch.Tensor | None,
                 layers: Sequence[LayerSpec] | None = None, layout: object | None = None) -> None:
        """`example` may be None only for a model with the block protocol (multi-step by definition). `layout`:
        the front end's reading (trace_model(...).layout) of how the model uses time; None: read it here."""
        if example is None and not has_blocks(model):
            raise ModelError(f"{type(model).__name__} needs an example input to be trained")
        if example is not None and (not isinstance(example, torch.Tensor) or example.dim() < 2):
            raise ModelError("the example input must be a tensor [T, B, ...] or [B, ...]")
        self.model = model
        if example is None:
            self.feeding = Feeding(True, False, int(getattr(model, "timesteps", 0)), "multi-step")
            self.num_classes = 0
        else:
            self.feeding = feeding(model, example, layout)
            self.num_classes = _classes(model, example)
        self.time_major, self.timesteps = self.feeding.time_major, self.feeding.timesteps
        self.single_step = self.feeding.single_step
        self.map = layer_map(model, example, layers)
        self.num_layers = self.map.num_layers
        self.example = example

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample at one timestep (time-major) or of one sample (batch first)."""
        if self.example is None:
            raise ModelError("no example input: the sample shape is unknown")
        lead = 2 if self.time_major and not self.single_step else 1  # a single-step example is one step [B, ...]
        return tuple(int(s) for s in self.example.shape[lead:])

    def initial_weights(self) -> list[Weights]:
        named = dict(self.model.named_parameters())
        return [{k: named[k].detach().clone() for k in names} for names in self.map.params]

    def call(self, weights: Sequence[Weights], x: torch.Tensor, buffers: dict[str, torch.Tensor] | None = None
             ) -> torch.Tensor:
        """Logits of a fresh run (neurons reset) with layer l's weights from weights[l]."""
        flat: dict[str, torch.Tensor] = {}
        for w in weights:
            flat.update(w)
        if buffers:
            flat.update(buffers)
        reset_state(self.model)
        if self.single_step:  # the model is one timestep per call: the trainer runs its time loop over x [T, ...]
            return torch.stack([readout(functional_call(self.model, flat, (x[t],))) for t in range(x.shape[0])]
                               ).mean(0)
        return readout(functional_call(self.model, flat, (x,)))

    def buffer_copies(self) -> dict[str, torch.Tensor]:
        """Copies of the module's buffers: a second forward of one minibatch must not update BatchNorm twice."""
        return {k: b.clone() for k, b in self.model.named_buffers()}

    @torch.no_grad()
    def eval_logits(self, weights: Sequence[Weights], x: torch.Tensor) -> torch.Tensor:
        was = self.model.training
        self.model.eval()
        try:
            return self.call(weights, x)
        finally:
            self.model.train(was)

    def load_into(self, weights: Sequence[Weights]) -> None:
        """Copy weights into the module's own parameters (so model.state_dict() is the trained model)."""
        named = dict(self.model.named_parameters())
        with torch.no_grad():
            for w in weights:
                for k, v in w.items():
                    named[k].copy_(v)
