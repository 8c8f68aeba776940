"""The trainer base (weights, per-layer optimisers, learning rates) and plain synchronous BPTT, the reference."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from spikepipe.ir import SpikePipeError
from spikepipe.train import netfn
from spikepipe.train.model import ModelFn
from spikepipe.train.optim import LayerOptimizer, OptimConfig, lr_at

GetBatch = Callable[[int], tuple[torch.Tensor, torch.Tensor]]  # minibatch index in epoch -> (x [T,B,...], y [B])


class NonFiniteLossError(SpikePipeError):
    """The loss became NaN or infinite: training diverged."""


@dataclass
class EpochStats:
    loss_sum: float = 0.0
    correct: int = 0
    samples: int = 0
    minibatches: int = 0
    losses: list[float] = field(default_factory=list)

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, step: int) -> None:
        value = float(loss)
        if not math.isfinite(value):
            raise NonFiniteLossError(f"loss is {value} at minibatch {step}; training diverged (lower --lr)")
        self.loss_sum += value * len(y)
        self.correct += int((logits.argmax(1) == y).sum())
        self.samples += len(y)
        self.minibatches += 1
        self.losses.append(value)

    @property
    def loss(self) -> float:
        return self.loss_sum / max(1, self.samples)

    @property
    def accuracy(self) -> float:
        return self.correct / max(1, self.samples)


class TrainerBase:
    """Holds the current weights (one dict per layer) and one optimiser per layer. `net` is either a module with
    the block protocol (spikepipe.train.netfn, run block by block) or a ModelFn (any module, run whole)."""

    mode = "base"

    def __init__(self, net: nn.Module | ModelFn, optim: OptimConfig, *, total_steps: int,
                 weights: list[netfn.Weights] | None = None) -> None:
        self.fn = net if isinstance(net, ModelFn) else None
        self.net = net.model if isinstance(net, ModelFn) else net
        if weights is None:  # a ModelFn's, a user's module stepped by a method (usernet.UserNet), or per block
            own = self.fn or (self.net if hasattr(self.net, "initial_weights") else None)
            weights = own.initial_weights() if own is not None else netfn.initial_weights(self.net)
        self.weights = weights
        self.cfg = optim
        self.opts = [LayerOptimizer(optim, w) for w in self.weights]
        self.total_steps = total_steps
        self.step = 0  # global index of the next minibatch
        self.num_layers = len(self.weights)

    def lr(self, layer: int, step: int) -> float:
        return lr_at(self.cfg, step, self.total_steps)

    def apply(self, layer: int, grads: dict[str, torch.Tensor | None], step: int) -> None:
        self.weights[layer] = self.opts[layer].step(self.weights[layer], grads, self.lr(layer, step))

    def run_epoch(self, get_batch: GetBatch, num_batches: int) -> EpochStats:
        raise NotImplementedError

    def forward(self, weights: list[netfn.Weights], x: torch.Tensor) -> torch.Tensor:
        """Logits of x in training mode with layer l's weights from weights[l]."""
        return self.fn.call(weights, x) if self.fn is not None else netfn.forward(self.net, weights, x)

    def loss_grads(self, weights: list[netfn.Weights], x: torch.Tensor, y: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
        """Loss, logits and per-layer weight gradients of one ordinary forward and backward with `weights`."""
        leaves = [{k: w.detach().requires_grad_() for k, w in ws.items()} for ws in weights]
        logits = self.forward(leaves, x)
        loss = F.cross_entropy(logits, y)
        flat = [t for ws in leaves for t in ws.values()]
        gs = iter(torch.autograd.grad(loss, flat, allow_unused=True))
        return loss.detach(), logits.detach(), [{k: next(gs) for k in ws} for ws in leaves]

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for evaluation: a ModelFn runs in eval mode (BatchNorm statistics, no dropout)."""
        if self.fn is not None:
            return self.fn.eval_logits(self.weights, x)
        return netfn.forward(self.net, self.weights, x)

    def state_dict(self) -> dict:
        # the module's buffers too (BatchNorm's running statistics): a resumed run must evaluate identically
        buffers = {k: b.clone() for k, b in self.net.named_buffers()}
        return {"weights": self.weights, "opts": [o.state_dict() for o in self.opts], "step": self.step,
                "buffers": buffers}

    def load_state_dict(self, d: dict) -> None:
        with torch.no_grad():
            own = dict(self.net.named_buffers())
            for k, b in d.get("buffers", {}).items():
                if k in own and own[k].shape == b.shape:
                    own[k].copy_(b)
        self.weights = [dict(w) for w in d["weights"]]
        for o, s in zip(self.opts, d["opts"], strict=True):
            o.load_state_dict(s)
        self.step = int(d["step"])


class PlainBPTT(TrainerBase):
    """Synchronous backpropagation through time: forward, loss, backward and update per minibatch."""

    mode = "bptt"

    def grads(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
        return self.loss_grads(self.weights, x, y)

    def run_epoch(self, get_batch: GetBatch, num_batches: int, progress: Callable[[], None] | None = None) -> EpochStats:
        stats = EpochStats()
        for n in range(num_batches):
            x, y = get_batch(n)
            loss, logits, grads = self.grads(x, y)
            stats.add(loss, logits, y, self.step)
            for layer in range(self.num_layers):
                self.apply(layer, grads[layer], self.step)
            self.step += 1
            if progress:
                progress()
        return stats
