"""Built-in networks as real torch modules, used both for costing and for training.

Every network is an `SNNNet`: block i IS layer i of the task graph (one synaptic op plus what follows it up to the
next synaptic op), so the trainer can run and time layer by layer and the front end's LayerSpecs line up with it.
Inputs are [T, B, C, H, W] (or [T, B, F] for snn-mlp); the logits are the mean over T of the last block's output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from spikepipe.ir import SpikePipeError
from spikepipe.snn import LIF


class UnknownNetworkError(SpikePipeError):
    """A network name is not in the zoo."""


class SpikingBlock(nn.Module):
    """synapse -> norm -> (+ residual) -> LIF -> pool -> dropout, each applied to all T steps at once."""

    def __init__(self, synapse: nn.Module, *, norm: nn.Module | None = None, neuron: LIF | None = None,
                 pool: nn.Module | None = None, flatten_input: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.flatten_input = flatten_input
        self.synapse = synapse
        self.norm = norm
        self.neuron = neuron
        self.pool = pool
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None

    @staticmethod
    def _td(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[0], x.shape[1]
        y = module(x.reshape(t * b, *x.shape[2:]))
        return y.reshape(t, b, *y.shape[1:])

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if self.flatten_input:
            x = x.flatten(2)
        y = self._td(self.synapse, x)
        if self.norm is not None:
            y = self._td(self.norm, y)
        if residual is not None:
            y = y + residual
        if self.neuron is not None:
            y = self.neuron(y)
        if self.pool is not None:
            y = self._td(self.pool, y)
        if self.dropout is not None:
            y = self.dropout(y)
        return y


class SNNNet(nn.Module):
    """A layer-structured SNN: `blocks[i]` reads the output of `sources[i]` (-1: the network input) and adds
    the output of `residuals[i]` (if not None) before its neuron."""

    def __init__(self, name: str, blocks: Sequence[SpikingBlock], sources: Sequence[int],
                 residuals: Sequence[int | None], timesteps: int, input_shape: tuple[int, ...],
                 num_classes: int) -> None:
        super().__init__()
        if not (len(blocks) == len(sources) == len(residuals)):
            raise ValueError("blocks, sources and residuals must have the same length")
        for i, (s, r) in enumerate(zip(sources, residuals, strict=True)):
            if not -1 <= s < i or (r is not None and not -1 <= r < i):
                raise ValueError(f"block {i} reads from a later block (source {s}, residual {r})")
        self.name = name
        self.blocks = nn.ModuleList(blocks)
        self.sources = tuple(sources)
        self.residuals = tuple(residuals)
        self.timesteps = timesteps
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        for block, src, res in zip(self.blocks, self.sources, self.residuals, strict=True):
            inp = x if src == -1 else outs[src]
            r = None if res is None else (x if res == -1 else outs[res])
            outs.append(block(inp, r))
        return outs[-1].mean(0)


# ---------------------------------------------------------------- builders


@dataclass(frozen=True)
class NetworkInfo:
    name: str
    description: str
    input_shape: tuple[int, ...]
    num_classes: int
    timesteps: int
    batch: int  # default minibatch for costing


def _lif(**kw: object) -> LIF:
    return LIF(beta=0.9, threshold=1.0, reset="subtract", surrogate="atan", **kw)  # type: ignore[arg-type]


def _conv_block(c_in: int, c_out: int, *, pool: bool = False, stride: int = 1, neuron: bool = True,
                kernel: int = 3) -> SpikingBlock:
    return SpikingBlock(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        norm=nn.BatchNorm2d(c_out),
        neuron=_lif() if neuron else None,
        pool=nn.MaxPool2d(2) if pool else None,
    )


def _fc(f_in: int, f_out: int, *, neuron: bool = True, flatten: bool = False, dropout: float = 0.0) -> SpikingBlock:
    return SpikingBlock(nn.Linear(f_in, f_out, bias=not neuron), neuron=_lif() if neuron else None,
                        flatten_input=flatten, dropout=dropout)


def _chain(name: str, blocks: list[SpikingBlock], info: NetworkInfo, timesteps: int, classes: int) -> SNNNet:
    n = len(blocks)
    return SNNNet(name, blocks, tuple(range(-1, n - 1)), (None,) * n, timesteps, info.input_shape, classes)


def _snn_mlp(info: NetworkInfo, timesteps: int, classes: int) -> SNNNet:
    return _chain(info.name, [_fc(64, 128), _fc(128, classes, neuron=False)], info, timesteps, classes)


def _snn_cnn(info: NetworkInfo, timesteps: int, classes: int) -> SNNNet:
    blocks = [
        _conv_block(1, 32, pool=True),  # 32x14x14
        _conv_block(32, 64, pool=True),  # 64x7x7
        _fc(64 * 7 * 7, 256, flatten=True),
        _fc(256, classes, neuron=False),
    ]
    return _chain(info.name, blocks, info, timesteps, classes)


VGG_CFG = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
}


def _vgg(cfg: Sequence[int | str], c_in: int, spatial: int, width: float, hidden: int, info: NetworkInfo,
         timesteps: int, classes: int) -> SNNNet:
    blocks: list[SpikingBlock] = []
    c = c_in
    for i, v in enumerate(cfg):
        if v == "M":
            continue
        pool = i + 1 < len(cfg) and cfg[i + 1] == "M" and spatial > 1
        c_out = max(8, int(int(v) * width))
        blocks.append(_conv_block(c, c_out, pool=pool))
        c = c_out
        if pool:
            spatial //= 2
    flat = c * spatial * spatial
    blocks += [_fc(flat, hidden, flatten=True), _fc(hidden, hidden), _fc(hidden, classes, neuron=False)]
    return _chain(info.name, blocks, info, timesteps, classes)


def _resnet18(info: NetworkInfo, timesteps: int, classes: int) -> SNNNet:
    blocks: list[SpikingBlock] = [_conv_block(3, 64)]
    sources: list[int] = [-1]
    residuals: list[int | None] = [None]
    prev, c_in = 0, 64
    for stage, c_out in enumerate((64, 128, 256, 512)):
        for b in range(2):
            stride = 2 if (stage > 0 and b == 0) else 1
            blocks.append(_conv_block(c_in, c_out, stride=stride))
            sources.append(prev)
            residuals.append(None)
            conv1 = len(blocks) - 1
            shortcut = prev
            if stride != 1 or c_in != c_out:  # projection shortcut: 1x1 conv + BN, no neuron of its own
                blocks.append(_conv_block(c_in, c_out, stride=stride, neuron=False, kernel=1))
                sources.append(prev)
                residuals.append(None)
                shortcut = len(blocks) - 1
            last = stage == 3 and b == 1
            blk = _conv_block(c_out, c_out)
            if last:
                blk.pool = nn.AdaptiveAvgPool2d(1)
            blocks.append(blk)
            sources.append(conv1)
            residuals.append(shortcut)
            prev, c_in = len(blocks) - 1, c_out
    blocks.append(_fc(512, classes, neuron=False, flatten=True))
    sources.append(prev)
    residuals.append(None)
    return SNNNet(info.name, blocks, sources, residuals, timesteps, info.input_shape, classes)


_BUILDERS: dict[str, tuple[NetworkInfo, Callable[[NetworkInfo, int, int], SNNNet]]] = {
    "snn-mlp": (NetworkInfo("snn-mlp", "2-layer MLP for 8x8 digits", (64,), 10, 8, 32), _snn_mlp),
    "snn-cnn": (NetworkInfo("snn-cnn", "2 conv + 2 FC for 28x28 Fashion-MNIST", (1, 28, 28), 10, 4, 32), _snn_cnn),
    "vgg11": (NetworkInfo("vgg11", "VGG-11 (8 conv + 3 FC), CIFAR-shaped", (3, 32, 32), 10, 4, 32),
              lambda i, t, c: _vgg(VGG_CFG["vgg11"], 3, 32, 1.0, 512, i, t, c)),
    "vgg16": (NetworkInfo("vgg16", "VGG-16 (13 conv + 3 FC), CIFAR-shaped", (3, 32, 32), 10, 4, 32),
              lambda i, t, c: _vgg(VGG_CFG["vgg16"], 3, 32, 1.0, 512, i, t, c)),
    "vgg11-28": (NetworkInfo("vgg11-28", "VGG-11 at quarter width for 28x28 Fashion-MNIST (trainable on a CPU)",
                             (1, 28, 28), 10, 4, 32),
                 lambda i, t, c: _vgg(VGG_CFG["vgg11"], 1, 28, 0.25, 256, i, t, c)),
    "resnet18": (NetworkInfo("resnet18", "ResNet-18 (CIFAR stem, projection shortcuts), CIFAR-shaped",
                             (3, 32, 32), 10, 4, 32), _resnet18),
}


def names() -> list[str]:
    return list(_BUILDERS)


def info(name: str) -> NetworkInfo:
    try:
        return _BUILDERS[name][0]
    except KeyError:
        raise UnknownNetworkError(
            f"unknown network {name!r}; built-in networks: {', '.join(_BUILDERS)} (or give file.py:function)"
        ) from None


def build(name: str, *, timesteps: int | None = None, batch: int = 1, num_classes: int | None = None,
          seed: int = 0) -> tuple[SNNNet, torch.Tensor]:
    """The network (initialised deterministically from `seed`) and an example input [T, B, ...]."""
    meta = info(name)
    t = timesteps or meta.timesteps
    if t < 1 or batch < 1:
        raise UnknownNetworkError(f"timesteps and batch must be positive, got T={t}, B={batch}")
    classes = num_classes or meta.num_classes
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = _BUILDERS[name][1](meta, t, classes)
        example = (torch.rand(t, batch, *meta.input_shape) < 0.3).float()
    finally:
        torch.random.set_rng_state(gen_state)
    return model, example
