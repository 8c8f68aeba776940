"""Turn static samples [B, ...] in [0, 1] into SNN input over time [T, B, ...]."""

from __future__ import annotations

import torch

from spikepipe.ir import SpikePipeError

ENCODERS = ("direct", "rate")


class EncoderError(SpikePipeError):
    """Unknown encoder or bad encoder input."""


def direct(x: torch.Tensor, timesteps: int) -> torch.Tensor:
    """The analog sample repeated at every timestep (the first layer acts as the spike encoder)."""
    return x.unsqueeze(0).expand(timesteps, *x.shape)


def rate(x: torch.Tensor, timesteps: int, generator: torch.Generator) -> torch.Tensor:
    """Bernoulli spikes with probability equal to the intensity, drawn from an explicit generator (seeded)."""
    p = x.clamp(0.0, 1.0).unsqueeze(0).expand(timesteps, *x.shape)
    return torch.bernoulli(p, generator=generator)


def encode(name: str, x: torch.Tensor, timesteps: int, *, seed: int = 0) -> torch.Tensor:
    """Encode one minibatch; `seed` (derived from run seed, epoch and batch index by the caller) fixes the spikes."""
    if name == "direct":
        return direct(x, timesteps)
    if name == "rate":
        return rate(x, timesteps, torch.Generator().manual_seed(seed))
    raise EncoderError(f"unknown encoder {name!r}; valid names: {', '.join(ENCODERS)}")
