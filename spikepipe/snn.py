"""Our spiking neuron: a multi-step leaky integrate-and-fire (LIF) layer with surrogate gradients.

Multi-step form: one call takes a whole [T, B, ...] tensor and returns spikes [T, B, ...]. The membrane potential
lives only inside the call, never in the module, so a pipelined trainer can interleave minibatches without one
corrupting another (docs/design.md section 7).

    u_t = beta * u_{t-1} + x_t          (first-order IIR)
    s_t = H(u_t - threshold)            (u > threshold fires; optionally u >= threshold, as SpikingJelly)
    u_t <- u_t - s_t * threshold        (reset by subtraction) or u_t * (1 - s_t) (reset to zero)
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from spikepipe.ir import SpikePipeError

SURROGATES = ("atan", "fast-sigmoid", "sigmoid", "triangle")


class NeuronConfigError(SpikePipeError):
    """A neuron was configured with an unknown option."""


def surrogate_grad(kind: str, x: torch.Tensor, alpha: float) -> torch.Tensor:
    """d spike / d u evaluated at x = u - threshold."""
    if kind == "atan":  # snnTorch's / SpikingJelly's ATan: alpha/2 / (1 + (pi/2 * alpha * x)^2)
        return (alpha / 2) / (1 + (math.pi / 2 * alpha * x) ** 2)
    if kind == "fast-sigmoid":  # Zenke & Ganguli's SuperSpike: 1 / (1 + slope*|x|)^2
        return 1.0 / (1.0 + alpha * x.abs()) ** 2
    if kind == "sigmoid":
        s = torch.sigmoid(alpha * x)
        return alpha * s * (1 - s)
    if kind == "triangle":
        return torch.clamp(1.0 - x.abs() * alpha, min=0.0) * alpha
    raise NeuronConfigError(f"unknown surrogate {kind!r}; use one of {', '.join(SURROGATES)}")


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, kind: str, alpha: float, fire_on_equal: bool) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.kind, ctx.alpha = kind, alpha
        return (x >= 0).to(x.dtype) if fire_on_equal else (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * surrogate_grad(ctx.kind, x, ctx.alpha), None, None, None


def spike(x: torch.Tensor, surrogate: str = "atan", alpha: float = 2.0, fire_on_equal: bool = False) -> torch.Tensor:
    return _Spike.apply(x, surrogate, alpha, fire_on_equal)


class LIF(nn.Module):
    """Multi-step LIF neuron over the leading time dimension."""

    def __init__(self, beta: float = 0.9, threshold: float = 1.0, reset: Literal["subtract", "zero"] = "subtract",
                 surrogate: str = "atan", alpha: float = 2.0, learn_beta: bool = False,
                 fire_on_equal: bool = False, detach_reset: bool = False) -> None:
        super().__init__()
        if reset not in ("subtract", "zero"):
            raise NeuronConfigError(f"unknown reset {reset!r}; use 'subtract' or 'zero'")
        if surrogate not in SURROGATES:
            raise NeuronConfigError(f"unknown surrogate {surrogate!r}; use one of {', '.join(SURROGATES)}")
        if not 0.0 <= beta <= 1.0:
            raise NeuronConfigError(f"beta must be in [0, 1], got {beta}")
        beta_t = torch.tensor(float(beta))
        if learn_beta:
            self.beta = nn.Parameter(beta_t)
        else:
            self.register_buffer("beta", beta_t)
        self.threshold = float(threshold)
        self.reset = reset
        self.surrogate = surrogate
        self.alpha = float(alpha)
        self.learn_beta = learn_beta
        self.fire_on_equal = fire_on_equal
        self.detach_reset = detach_reset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = self.beta.clamp(0.0, 1.0) if self.learn_beta else self.beta
        u = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            u = beta * u + x[t]
            s = spike(u - self.threshold, self.surrogate, self.alpha, self.fire_on_equal)
            r = s.detach() if self.detach_reset else s
            u = u - r * self.threshold if self.reset == "subtract" else u * (1.0 - r)
            out.append(s)
        return torch.stack(out)

    def extra_repr(self) -> str:
        return (f"beta={float(self.beta):.3g}, threshold={self.threshold}, reset={self.reset}, "
                f"surrogate={self.surrogate}, learn_beta={self.learn_beta}")


class TimeDistributed(nn.Module):
    """Apply a stateless module to every timestep at once by folding T into the batch."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[0], x.shape[1]
        y = self.module(x.reshape(t * b, *x.shape[2:]))
        return y.reshape(t, b, *y.shape[1:])
