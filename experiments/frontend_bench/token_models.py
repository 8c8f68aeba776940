"""Spiking transformers written with per-token nn.Linear (not Conv1d), as many papers' code does: a Linear patch
embedding on [..., tokens, patch features], Linear Q / K / V / projection / MLP, attention as matmuls over heads.
Two styles: SpikingJelly multi-step on [T, B, N, P] and snnTorch with the time loop in forward on [B, N, P].
CIFAR-like sizes: 64 tokens of 4x4x3 patches, dim 64, 4 heads, depth 2."""

from __future__ import annotations

import torch
from torch import nn


class LinearAttentionBlock(nn.Module):
    """Spiking self-attention and MLP on [*lead, N, D]; `neuron()` makes each spiking neuron, `fire(i, y)`
    applies the i-th (snnTorch neurons carry their membrane in the caller's `mem` list)."""

    def __init__(self, dim: int, heads: int, neuron) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.proj = (nn.Linear(dim, dim) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.neurons = nn.ModuleList(neuron() for _ in range(7))

    def fire(self, i: int, y: torch.Tensor, mem: list | None) -> torch.Tensor:
        if mem is None:
            return self.neurons[i](y)
        s, mem[i] = self.neurons[i](y, mem[i])
        return s

    def forward(self, x: torch.Tensor, mem: list | None = None) -> torch.Tensor:
        *lead, n, d = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:  # [*lead, heads, N, d / heads]
            return y.reshape(*lead, n, self.heads, d // self.heads).transpose(-3, -2)

        q, k, v = (split(self.fire(i, f(x), mem)) for i, f in enumerate((self.q, self.k, self.v)))
        a = self.fire(3, (q @ k.transpose(-2, -1)) @ v * 0.125, mem).transpose(-3, -2).reshape(*lead, n, d)
        x = self.fire(4, self.proj(a), mem) + x
        return self.fire(6, self.fc2(self.fire(5, self.fc1(x), mem)), mem) + x


class LinearSpikingViT(nn.Module):
    """style "sj": multi-step, [T, B, N, P] in; style "snntorch": [B, N, P] in, `steps` steps inside forward."""

    def __init__(self, style: str, patch: int = 48, dim: int = 64, heads: int = 4, depth: int = 2,
                 classes: int = 10, steps: int = 4) -> None:
        super().__init__()
        if style == "sj":
            from spikingjelly.activation_based import neuron as sj

            def make() -> nn.Module:
                return sj.LIFNode(step_mode="m")
        else:
            import snntorch as snn

            def make() -> nn.Module:
                return snn.Leaky(beta=0.9)
        self.style, self.steps = style, steps
        self.embed, self.embed_neuron = nn.Linear(patch, dim), make()
        self.blocks = nn.ModuleList(LinearAttentionBlock(dim, heads, make) for _ in range(depth))
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.style == "sj":
            y = self.embed_neuron(self.embed(x))
            for blk in self.blocks:
                y = blk(y)
            return self.head(y.mean(-2)).mean(0)
        mems = [[m.init_leaky() for m in blk.neurons] for blk in self.blocks]
        mem0, out = self.embed_neuron.init_leaky(), []
        for _ in range(self.steps):
            y, mem0 = self.embed_neuron(self.embed(x), mem0)
            for blk, mem in zip(self.blocks, mems, strict=True):
                y = blk(y, mem)
            out.append(self.head(y.mean(-2)))
        return torch.stack(out).mean(0)


def sj_linear_vit() -> tuple[nn.Module, torch.Tensor]:
    return LinearSpikingViT("sj"), torch.rand(4, 2, 64, 48)


def snntorch_linear_vit() -> tuple[nn.Module, torch.Tensor]:
    return LinearSpikingViT("snntorch"), torch.rand(2, 64, 48)
