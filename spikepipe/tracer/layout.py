"""How a model uses time and batch, read from how it actually ran on its example input: never guessed silently.

The first layer (the synaptic op reading the network input) was called `calls` times in one forward, each call on
`lead` leading elements (samples x steps). With the example's leading dims (those before the first layer's
per-sample shape):
  [T, B, ...]  called once on T*B            multi-step (the project's convention; T and B from the input)
  [T, B, ...]  called T times on B each      loop-over-input: forward loops over dim 0 (T from the input)
  [B, T, ...]  called T times on B each      loop-over-input, batch first: forward loops over x[:, t]
  [B, ...]     called n > 1 times on B each  loop-in-forward: T = n steps run inside forward (fixed by the model)
  [B, ...]     called once on n*B            time-in-forward: the model repeats its input n times (Spikformer)
  [B, ...]     called once on B              single-step: one call is one step; T must be given (--timesteps)
Anything else cannot be decided from the example: an error asks for --timesteps and --batch, which are then
accepted when T*B equals the sample-steps the layer really ran. Every other layer runs the same number of
sample-steps per forward as the first, or B of them (once per sample, after a mean over time: LayerSpec.per_step
False); any other count is refused, named.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from math import prod
from typing import Any

from spikepipe.tracer.errors import TraceError

_ASK = "pass --timesteps and --batch (or give an example input [T, B, ...])"


class LayoutError(TraceError):
    """Time and batch cannot be read from the example input, or an override contradicts the model."""


@dataclass(frozen=True)
class Layout:
    style: str  # multi-step | loop-over-input | loop-in-forward | time-in-forward | single-step | given
    timesteps: int
    batch: int
    timesteps_source: str
    batch_source: str
    time_fixed: bool = False  # T is set inside the model's forward: --timesteps cannot change it
    once_per_sample: tuple[str, ...] = ()  # layers after a reduction over time: they run once per sample

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layout"] = d.pop("style")
        return d


@dataclass(frozen=True)
class LayerRun:
    """How one layer ran in the traced forward."""

    name: str
    in_shape: tuple[int, ...]
    calls: int
    leads: frozenset[int]
    first_shape: tuple[int, ...] = ()  # full shape of the tensor the op received on its first call
    sample_rank: int = 1  # trailing dims of that tensor that are one sample's (conv2d 3, conv1d 2, linear 1)
    neuron_lead_rank: int = 0  # leading dims of the tensor its neuron received (2: [T, B, ...], 1: [B, ...])


def infer(runs: list[LayerRun], example_shape: tuple[int, ...], *, timesteps: int | None = None,
          batch: int | None = None) -> Layout:
    """The layout of a traced model; `timesteps` / `batch` are the user's overrides (checked, never ignored)."""
    first = runs[0]
    for r in runs:
        if len(r.leads) != 1:
            raise LayoutError(f"module {r.name} was called on inputs of different batch sizes "
                              f"({sorted(r.leads)} samples x steps per call)")
    lead, n = next(iter(first.leads)), first.calls
    steps = n * lead  # sample-steps per forward
    rank = next((r.neuron_lead_rank for r in runs if r.neuron_lead_rank), 0)
    layout = _from_example(first, example_shape, n, lead, rank)
    if layout is not None:
        layout = replace(layout, once_per_sample=_once(runs, steps, steps // max(1, layout.batch), first))
        return _override(layout, timesteps, batch)
    if timesteps is None or batch is None:
        raise LayoutError(f"cannot tell time from batch in the example input {list(example_shape)}: the first "
                          f"layer {first.name} ran {n} call(s) of {lead} samples x steps; {_ASK}")
    if timesteps * batch != steps:
        raise LayoutError(f"--timesteps {timesteps} x --batch {batch} = {timesteps * batch}, but the first "
                          f"layer {first.name} ran {steps} samples x steps on the example input")
    return Layout("given", timesteps, batch, "--timesteps", "--batch",
                  once_per_sample=_once(runs, steps, timesteps, first))


def _once(runs: list[LayerRun], steps: int, t: int, first: LayerRun) -> tuple[str, ...]:
    """Layers that run once per sample (steps / T sample-steps: after a mean or sum over time); any other
    count means a layer the costs cannot place, refused by name."""
    once = []
    for r in runs[1:]:
        other = r.calls * next(iter(r.leads))
        if other == steps:
            continue
        if t > 1 and other * t == steps and not r.name.startswith("<"):
            once.append(r.name)
            continue
        raise LayoutError(f"module {r.name} runs {other} sample-steps per forward while the first layer "
                          f"{first.name} runs {steps}: it is neither at every step nor once per sample "
                          f"(outside the time loop)")
    return tuple(once)


def _from_example(first: LayerRun, shape: tuple[int, ...], n: int, lead: int, rank: int) -> Layout | None:
    """The layout read from the example, or None if it does not decide. The number k of leading (time and
    batch) dims of the input is exact when the first layer received the input tensor unchanged; otherwise (the
    model reshaped or sliced it first) every split whose trailing elements make one sample is tried, [T, B]
    before [B]. A neuron that received [B, ...] (rank 1) steps once per call, so one call is then not T steps."""
    if tuple(first.first_shape) == tuple(shape):
        ks = [len(shape) - first.sample_rank]
    else:
        sample = prod(first.in_shape)
        ks = [k for k in (2, 1) if k <= len(shape) and prod(shape[k:]) == sample]
    for k in ks:
        layout = _split(first, shape, k, n, lead, rank)
        if layout is not None:
            return layout
    return None


def _split(first: LayerRun, shape: tuple[int, ...], k: int, n: int, lead: int, rank: int) -> Layout | None:
    where = f"layer {first.name}"
    if k == 2:
        t, b = shape[0], shape[1]
        if n == 1 and lead == t * b and rank != 1:
            return Layout("multi-step", t, b, f"input dim 0 ({where} called once on [T, B, ...])", "input dim 1")
        if n == t and lead == b:
            return Layout("loop-over-input", t, b, f"input dim 0 (forward loops over it: {where} called {n} "
                                                  f"times)", "input dim 1")
        if n == b and lead == t and n > 1:  # batch first, [B, T, ...], with forward looping over x[:, t]
            return Layout("loop-over-input", b, t, f"input dim 1 (forward loops over it: {where} called {n} "
                                                  f"times)", "input dim 0")
        return None
    if k == 1:
        b = shape[0]
        if lead == b and n > 1:
            return Layout("loop-in-forward", n, b, f"forward runs {n} steps ({where} called {n} times per "
                                                   f"forward)", "input dim 0", time_fixed=True)
        if n == 1 and lead % b == 0 and lead > b:
            return Layout("time-in-forward", lead // b, b, f"forward repeats the input {lead // b} times ({where}"
                                                           f" sees {lead} samples x steps)", "input dim 0",
                          time_fixed=True)
        if n == 1 and lead == b:
            return Layout("single-step", 1, b, f"one call is one step ({where} called once on [B, ...])",
                          "input dim 0")
    return None


def _override(layout: Layout, timesteps: int | None, batch: int | None) -> Layout:
    if batch is not None and batch != layout.batch:
        layout = replace(layout, batch=batch, batch_source="--batch")
    if layout.style == "single-step":
        if timesteps is None:
            raise LayoutError("the model runs one timestep per call on [B, ...] (a single-step network); pass "
                              "--timesteps T for the number of steps it is run for")
        return replace(layout, timesteps=timesteps, timesteps_source="--timesteps (single-step model called T "
                                                                     "times)")
    if timesteps is not None and timesteps != layout.timesteps:
        if layout.time_fixed:
            raise LayoutError(f"the model fixes T={layout.timesteps} inside its forward "
                              f"({layout.timesteps_source}); --timesteps {timesteps} cannot change it: change "
                              f"the model's number of steps instead")
        layout = replace(layout, timesteps=timesteps, timesteps_source="--timesteps")
    return layout
