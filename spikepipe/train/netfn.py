"""The block protocol (used by spikepipe.methods and the built-in networks), and a functional forward over it.

A trainable network (spikepipe.zoo's SNNNet or anything shaped like it) has
  blocks     nn.ModuleList; block i is layer i of the TaskGraph, callable block(x, residual=None) on [T, B, ...]
  sources    tuple: the block whose output is block i's main input (-1: the network input)
  residuals  tuple: the block whose output block i adds before its neuron (None: no residual)
  forward    logits [B, classes] = mean over T of the last block's output.
Weights live outside the module as one dict per block (name -> tensor); torch.func.functional_call runs a block
with any version of them. The neurons must keep no state between calls (one call covers a whole minibatch over T),
so interleaving minibatches cannot mix their membrane potentials (docs/design.md section 7).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call

from spikepipe.ir import SpikePipeError

Weights = dict[str, torch.Tensor]


class NetworkProtocolError(SpikePipeError):
    """The model does not expose the block structure the trainer needs."""


def check_net(net: nn.Module) -> None:
    for attr in ("blocks", "sources", "residuals"):
        if not hasattr(net, attr):
            raise NetworkProtocolError(
                f"model {type(net).__name__} has no `{attr}`; the trainer needs blocks/sources/residuals as "
                f"spikepipe.zoo.SNNNet provides")
    n = len(net.blocks)
    if len(net.sources) != n or len(net.residuals) != n:
        raise NetworkProtocolError(f"model has {n} blocks but {len(net.sources)} sources and "
                                   f"{len(net.residuals)} residuals; give one of each per block")
    for i, (s, r) in enumerate(zip(net.sources, net.residuals, strict=True)):
        if not -1 <= s < i or (r is not None and not -1 <= r < i):
            raise NetworkProtocolError(f"block {i} reads from block {s} / residual {r}; inputs must come from "
                                       f"earlier blocks (or -1, the network input)")
    in_blocks = {id(p) for b in net.blocks for p in b.parameters()}
    stray = [name for name, p in net.named_parameters() if id(p) not in in_blocks]
    if stray:
        raise NetworkProtocolError(f"parameters outside `blocks` ({', '.join(stray[:3])}); the trainer updates "
                                   f"weights per block, so every parameter must belong to one block")


def initial_weights(net: nn.Module) -> list[Weights]:
    check_net(net)
    return [{k: p.detach().clone() for k, p in b.named_parameters()} for b in net.blocks]


def consumers(net: nn.Module) -> list[int]:
    """How many gradient contributions each block's output receives (the loss counts for the last block)."""
    n = len(net.blocks)
    c = [0] * n
    for i in range(n):
        for s in (net.sources[i], net.residuals[i]):
            if s is not None and s >= 0:
                c[s] += 1
    c[n - 1] += 1
    return c


def call_block(block: nn.Module, weights: Weights, x: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
    if residual is None:
        return functional_call(block, weights, (x,))
    return functional_call(block, weights, (x,), {"residual": residual})


def forward(net: nn.Module, weights: Sequence[Weights], x: torch.Tensor) -> torch.Tensor:
    """Logits of the whole network with the given weights (same result as net.forward with them loaded)."""
    outs: list[torch.Tensor] = []
    for i, block in enumerate(net.blocks):
        src, res = net.sources[i], net.residuals[i]
        xin = x if src == -1 else outs[src]
        rin = None if res is None else (x if res == -1 else outs[res])
        outs.append(call_block(block, weights[i], xin, rin))
    return outs[-1].mean(0)


def load_into(net: nn.Module, weights: Sequence[Weights]) -> None:
    """Copy weights into the module's own parameters (for saving or handing the model back)."""
    with torch.no_grad():
        for block, w in zip(net.blocks, weights, strict=True):
            for k, p in block.named_parameters():
                p.copy_(w[k])
