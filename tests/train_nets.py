"""Stand-in networks with SNNNet's structure (blocks, sources, residuals) for the trainer tests."""

from __future__ import annotations

import math

import torch
from torch import nn


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u):  # noqa: ANN001
        ctx.save_for_backward(u)
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, g):  # noqa: ANN001
        (u,) = ctx.saved_tensors
        return g / (1 + (math.pi * u) ** 2)


class LIFBlock(nn.Module):
    def __init__(self, fin: int, fout: int, beta: float = 0.8, spiking: bool = True) -> None:
        super().__init__()
        self.fc = nn.Linear(fin, fout)
        self.beta, self.spiking = beta, spiking
        self.gain = 1.0  # tests set it to nan to make a run diverge on purpose

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        z = self.fc(x) * self.gain
        if residual is not None:
            z = z + residual
        if not self.spiking:
            return z
        u = torch.zeros_like(z[0])
        out = []
        for t in range(z.shape[0]):
            u = self.beta * u + z[t]
            s = _Spike.apply(u - 1.0)
            u = u - s
            out.append(s)
        return torch.stack(out)


class TinySNN(nn.Module):
    """inputs -> LIF hidden -> LIF hidden (+ residual from block 0) -> linear readout."""

    def __init__(self, seed: int = 0, timesteps: int = 4, inputs: int = 8, hidden: int = 16,
                 classes: int = 4) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.blocks = nn.ModuleList([LIFBlock(inputs, hidden), LIFBlock(hidden, hidden),
                                     LIFBlock(hidden, classes, spiking=False)])
        with torch.no_grad():
            self.blocks[0].fc.weight.mul_(3.0)
        self.sources = (-1, 0, 1)
        self.residuals = (None, 0, None)
        self.timesteps = timesteps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for i, b in enumerate(self.blocks):
            xin = x if self.sources[i] == -1 else outs[self.sources[i]]
            r = self.residuals[i]
            outs.append(b(xin) if r is None else b(xin, residual=outs[r]))
        return outs[-1].mean(0)


class ScalarChain(nn.Module):
    """h0 = w0 x, h1 = w1 h0, logits = w2 h1 (w2: 2x1); no neurons, float64, for hand-computed oracles."""

    def __init__(self, w0: float, w1: float, w2: tuple[float, float]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(1, 1, bias=False, dtype=torch.float64),
                                     nn.Linear(1, 1, bias=False, dtype=torch.float64),
                                     nn.Linear(1, 2, bias=False, dtype=torch.float64)])
        with torch.no_grad():
            self.blocks[0].weight.fill_(w0)
            self.blocks[1].weight.fill_(w1)
            self.blocks[2].weight.copy_(torch.tensor([[w2[0]], [w2[1]]], dtype=torch.float64))
        self.sources = (-1, 0, 1)
        self.residuals = (None, None, None)
        self.timesteps = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        return x.mean(0)


def digits_model() -> tuple[nn.Module, torch.Tensor]:
    """For `spikepipe train --network tests/train_nets.py:digits_model` (64 inputs, 10 classes)."""
    return TinySNN(timesteps=3, inputs=64, hidden=24, classes=10), torch.zeros(3, 1, 64)


class ConvLIF(nn.Module):
    """conv -> LIF -> optional 2x2 max-pool on [T, B, C, H, W] (the shape of zoo's snn-cnn blocks)."""

    def __init__(self, cin: int, cout: int, pool: bool, beta: float = 0.8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.pool, self.beta = pool, beta

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        t, b = x.shape[:2]
        z = self.conv(x.flatten(0, 1)).unflatten(0, (t, b))
        u = torch.zeros_like(z[0])
        out = []
        for i in range(t):
            u = self.beta * u + z[i]
            s = _Spike.apply(u - 1.0)
            u = u - s
            out.append(s)
        y = torch.stack(out)
        if self.pool:
            y = nn.functional.max_pool2d(y.flatten(0, 1), 2).unflatten(0, (t, b))
        return y


class Readout(nn.Module):
    def __init__(self, fin: int, classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(fin, classes)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(x.flatten(2))


class SmallCNN(nn.Module):
    """1x28x28 -> conv16 pool -> conv32 pool -> linear 10: a stand-in for zoo's snn-cnn."""

    def __init__(self, timesteps: int = 4, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.blocks = nn.ModuleList([ConvLIF(1, 16, True), ConvLIF(16, 32, True), Readout(32 * 7 * 7, 10)])
        self.sources, self.residuals, self.timesteps = (-1, 0, 1), (None, None, None), timesteps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        return x.mean(0)
