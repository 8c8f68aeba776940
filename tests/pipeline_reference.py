"""The block-wise exact pipelined trainer that spikepipe used before the whole-model one, kept as an independent
reference: it cuts a block-protocol network (blocks/sources/residuals) into autograd segments and runs F_l, B_l
and W_l of every minibatch at their own times, with the weights current then (docs/design.md section 4):
  F_l(n)  reads layer l's weights as they are then, runs block l on minibatch n
  B_l(n)  the loss (last layer) or the summed gradients from l's consumers, backpropagated through block l; with
          weight stashing through the graph F_l(n) built, without stashing through block l recomputed with the
          weights current at B time
  W_l(n)  applies the weight gradient of minibatch n.
The product's trainer (spikepipe.train.pipelined.ExactPipeline) must agree with it to float tolerance. Both share
the bookkeeping (event order, versions, learning rates, SpecTrain's prediction: DelayedUpdates, itself checked
against the schedule's delays and hand-computed weights in test_train_pipeline); what differs, and is compared,
is how F, B and W compute: block by block here, on the whole module there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spikepipe.ir import Schedule
from spikepipe.train import netfn
from spikepipe.train.bptt import EpochStats
from spikepipe.train.optim import OptimConfig
from spikepipe.train.pipelined import DelayedUpdates, TrainerError


class _Minibatch:
    __slots__ = ("x", "y", "out", "leaves", "wleaves", "gout", "pending", "wgrad", "logits", "v_read")

    def __init__(self, x: torch.Tensor, y: torch.Tensor, layers: int, consumers: list[int]) -> None:
        self.x, self.y = x, y
        self.out: list[torch.Tensor | None] = [None] * layers
        self.leaves: list[tuple[torch.Tensor, torch.Tensor | None] | None] = [None] * layers
        self.wleaves: list[dict | None] = [None] * layers
        self.gout: list[torch.Tensor | None] = [None] * layers
        self.pending = list(consumers)
        self.wgrad: list[dict | None] = [None] * layers
        self.logits: torch.Tensor | None = None
        self.v_read = [-1] * layers


class BlockwisePipeline(DelayedUpdates):
    """The former exact trainer: executes the schedule's F/B/W events block by block, each block its own
    autograd segment (see the module docstring)."""

    mode = "exact"

    def __init__(self, net: nn.Module, optim: OptimConfig, schedule: Schedule, *, total_steps: int,
                 stash: bool = True, compensation: str = "none", anneal_steps: int | None = None) -> None:
        super().__init__(net, optim, schedule, total_steps=total_steps, compensation=compensation,
                         anneal_steps=anneal_steps)
        self.stash = stash
        self.consumers = netfn.consumers(net)

    def _minibatch(self, x: torch.Tensor, y: torch.Tensor) -> _Minibatch:
        return _Minibatch(x, y, self.num_layers, self.consumers)

    def _input(self, mb: _Minibatch, src: int | None, task: str, n: int) -> torch.Tensor | None:
        if src is None:
            return None
        if src == -1:
            return mb.x
        out = mb.out[src]
        if out is None:
            raise TrainerError(f"schedule runs {task} of minibatch {n} before F{src} produced its input")
        return out.detach().requires_grad_()

    def _forward(self, mb: _Minibatch, layer: int, n: int, step: int) -> None:
        block = self.net.blocks[layer]
        xin = self._input(mb, self.net.sources[layer], f"F{layer}", n)
        rin = self._input(mb, self.net.residuals[layer], f"F{layer}", n)
        mb.v_read[layer] = self.versions[layer]
        w = self._weights_for(layer, step)
        if self.stash:
            wl = {k: v.detach().requires_grad_() for k, v in w.items()}
            out = netfn.call_block(block, wl, xin, rin)
            mb.wleaves[layer] = wl
        else:
            with torch.no_grad():
                out = netfn.call_block(block, w, xin, rin)
        mb.out[layer], mb.leaves[layer] = out, (xin, rin)

    def _backward(self, mb: _Minibatch, layer: int, n: int, step: int, stats: EpochStats) -> None:
        if mb.leaves[layer] is None:
            raise TrainerError(f"schedule runs B{layer} of minibatch {n} before F{layer}")
        last = layer == self.num_layers - 1
        if mb.pending[layer] != (1 if last else 0):
            raise TrainerError(f"schedule runs B{layer} of minibatch {n} before all blocks fed by layer {layer} "
                               f"returned their gradients")
        xin, rin = mb.leaves[layer]
        out = mb.out[layer]
        if last:  # the loss is computed from what F_last produced for this minibatch
            o = out if self.stash else out.detach().requires_grad_()
            logits = o.mean(0)
            loss = F.cross_entropy(logits, mb.y)
            stats.add(loss.detach(), logits.detach(), mb.y, step)
            gout = torch.autograd.grad(loss, o, retain_graph=self.stash)[0]
        else:
            gout = mb.gout[layer]
        if self.stash:
            wl = mb.wleaves[layer]
        else:  # recompute block l with the weights current now
            wl = {k: v.detach().requires_grad_() for k, v in self._weights_for(layer, step).items()}
            out = netfn.call_block(self.net.blocks[layer], wl, xin, rin)
        names = list(wl)
        inputs = [wl[k] for k in names]
        xs = [t for t in (xin, rin) if t is not None and t.requires_grad]
        grads = torch.autograd.grad(out, xs + inputs, grad_outputs=gout, allow_unused=True)
        gx = dict(zip([id(t) for t in xs], grads[:len(xs)], strict=True))
        for src, t in ((self.net.sources[layer], xin), (self.net.residuals[layer], rin)):
            if src is not None and src >= 0:
                g = gx[id(t)]
                mb.gout[src] = g if mb.gout[src] is None else mb.gout[src] + g
                mb.pending[src] -= 1
        mb.wgrad[layer] = dict(zip(names, grads[len(xs):], strict=True))
        mb.out[layer] = mb.leaves[layer] = mb.wleaves[layer] = mb.gout[layer] = None

    def _update(self, mb: _Minibatch, layer: int, n: int, step: int) -> None:
        if mb.wgrad[layer] is None:
            raise TrainerError(f"schedule runs W{layer} of minibatch {n} before B{layer}")
        self._count_update(layer, n, step, mb.v_read[layer])
        self.apply(layer, mb.wgrad[layer], step)
        self.versions[layer] += 1
        mb.wgrad[layer] = None
