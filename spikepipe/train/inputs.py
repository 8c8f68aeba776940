"""How a data set's samples become the model's input, checked against the model before any training.

A sample of the data set may be
  - shaped like one sample of the model's example input (per timestep for a multi-step [T, B, ...] model): it is
    encoded over the model's T steps (`direct` repeats it, `rate` draws Bernoulli spikes);
  - [T, ...] with one sample per timestep (event data already binned), for a multi-step model: T is the data's;
  - for a model whose input is [B, ...] (time loop and encoding inside the model): passed as it is.
A sample with the same number of values but another shape is reshaped (8x8 digits into a 64-input MLP), as the
built-in data always was. Labels must lie in 0 .. classes-1 of the model's output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from spikepipe.ir import SpikePipeError
from spikepipe.train.data import Dataset
from spikepipe.train.encoders import encode
from spikepipe.train.model import ModelFn


class DataFitError(SpikePipeError):
    """The data set does not fit the model (sample shape, labels, or the model fails on it)."""


@dataclass(frozen=True)
class InputPlan:
    time_major: bool  # the model takes [T, B, ...]
    timesteps: int
    events: bool  # samples are [T, ...] already (no encoding)
    sample_shape: tuple[int, ...]  # what every sample is reshaped to before encoding / batching
    encoder: str

    def make(self, xb: torch.Tensor, seed: int) -> torch.Tensor:
        """The model's input for a batch of samples [B, ...] as the data set holds them."""
        xb = xb.reshape(xb.shape[0], *self.sample_shape)
        if not self.time_major:
            return xb
        if self.events:
            return xb.transpose(0, 1).contiguous()
        return encode(self.encoder, xb, self.timesteps, seed=seed)


def plan_inputs(fn: ModelFn, data: Dataset, encoder: str, timesteps: int) -> InputPlan:
    """Check the data set against the model (shapes and labels) and say how its samples become inputs."""
    s = tuple(data.sample_shape)
    p = fn.sample_shape
    example = tuple(fn.example.shape) if fn.example is not None else None
    layout = "[T, B, ...]" if fn.time_major else "[B, ...]"
    if s == p or math.prod(s) == math.prod(p) and not (fn.time_major and len(s) == len(p) + 1 and s[1:] == p):
        plan = InputPlan(fn.time_major, timesteps, False, p, encoder)
    elif fn.time_major and len(s) == len(p) + 1 and s[1:] == p:
        plan = InputPlan(True, s[0], True, s, encoder)
    else:
        more = f" or [T, {', '.join(map(str, p))}] (binned events)" if fn.time_major else ""
        raise DataFitError(f"data set {data.name}: samples have shape {s}, but the model (example input "
                           f"{example}, {layout}) takes samples of shape {p}{more}")
    if plan.events and encoder != "direct":
        raise DataFitError(f"data set {data.name} holds binned events [T, ...]; --encoder {encoder} applies to "
                           f"static samples only (use the default, direct)")
    if not fn.time_major and encoder != "direct":
        raise DataFitError(f"the model takes {layout} and encodes its input itself; --encoder {encoder} needs a "
                           f"multi-step model [T, B, ...]")
    classes = fn.num_classes
    for name, split in (("train", data.train), ("val", data.val), ("test", data.test)):
        if len(split) == 0:
            raise DataFitError(f"data set {data.name}: the {name} split is empty")
        lo, hi = int(split.y.min()), int(split.y.max())
        if classes and (lo < 0 or hi >= classes):
            bad = hi if hi >= classes else lo
            raise DataFitError(f"data set {data.name}: {name} label {bad} is out of range for the model's "
                               f"{classes} outputs (labels must be 0..{classes - 1})")
    try:
        fn.eval_logits(fn.initial_weights(), plan.make(data.train.take(slice(0, 2)), seed=0))
    except SpikePipeError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's model on the user's data, reported in one line
        raise DataFitError(f"the model fails on samples of data set {data.name} (input shape "
                           f"{tuple(plan.make(data.train.take(slice(0, 2)), seed=0).shape)}): "
                           f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    return plan
