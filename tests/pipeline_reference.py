"""The block-wise exact pipelined trainer that spikepipe used before the whole-model one, kept as an independent
reference: it cuts a block-protocol network (blocks/sources/residuals) into autograd segments and runs F_l, B_l
and W_l of every minibatch at their own times, with the weights current then (DESIGN.md section 4):
  F_l(n)  reads layer l's weights as they are then, runs block l on minibatch n
  B_l(n)  the loss (last layer) or the summed gradients from l's consumers, backpropagated through block l; with
          weight stashing through the graph F_l(n) built, without stashing through block l recomputed with the
          weights current at B time
  W_l(n)  applies the weight gradient of minibatch n.
The product's trainer (spikepipe.train.pipelined.ExactPipeline) must agree with it to float tolerance.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from spikepipe.ir import Schedule, TaskKind, slot_lag_delays
from spikepipe.train import netfn
from spikepipe.train.bptt import EpochStats, GetBatch, TrainerBase
from spikepipe.train.optim import OptimConfig, lr_at, pipemare_scale
from spikepipe.train.pipelined import COMPENSATIONS, TrainerError, layer_timings

_RANK = {TaskKind.W: 0, TaskKind.F: 1, TaskKind.B: 2}


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


class BlockwisePipeline(TrainerBase):
    """The former exact trainer: executes the schedule's F/B/W events block by block, each block its own
    autograd segment (see the module docstring)."""

    mode = "exact"

    def __init__(self, net: nn.Module, optim: OptimConfig, schedule: Schedule, *, total_steps: int,
                 stash: bool = True, compensation: str = "none", anneal_steps: int | None = None,
                 weights: list[netfn.Weights] | None = None) -> None:
        super().__init__(net, optim, total_steps=total_steps, weights=weights)
        if compensation not in COMPENSATIONS:
            raise TrainerError(f"unknown compensation {compensation!r}; valid: {', '.join(COMPENSATIONS)}")
        self.schedule = schedule
        self.period = schedule.period_cycles
        self.timing = layer_timings(schedule, self.num_layers)
        self.delays = tuple(slot_lag_delays(schedule.slots, self.num_layers, self.period))
        self.stash, self.compensation = stash, compensation
        self.anneal_steps = anneal_steps if anneal_steps is not None else max(1, total_steps // 10)
        self.consumers = netfn.consumers(net)
        self.versions = [0] * self.num_layers  # updates applied per layer so far
        self.observed: list[dict[int, int]] = [{} for _ in range(self.num_layers)]  # delay -> count

    # -- learning rate and weight prediction
    def lr(self, layer: int, step: int) -> float:
        base = lr_at(self.cfg, step, self.total_steps)
        if self.compensation == "pipemare":
            base *= pipemare_scale(self.delays[layer], step, self.anneal_steps)
        return base

    def _weights_for(self, layer: int, step: int) -> netfn.Weights:
        """Layer `layer`'s weights as a task of global minibatch `step` should see them now."""
        w = self.weights[layer]
        ahead = step - self.versions[layer]  # updates still to land before this minibatch's own
        if self.compensation != "spectrain" or ahead <= 0:
            return w
        vel = self.opts[layer].velocity(w, self.lr(layer, self.versions[layer]))
        if vel is None:
            return w
        return {k: w[k] - ahead * vel[k] for k in w}

    # -- events
    def _events(self, num_batches: int) -> list[tuple[int, int, int, int, TaskKind]]:
        ev = []
        for layer, t in enumerate(self.timing):
            for kind, lag, cyc in ((TaskKind.F, t.f_lag, t.f_cycles), (TaskKind.B, t.b_lag, t.b_cycles),
                                   (TaskKind.W, t.w_lag, t.w_cycles)):
                for n in range(num_batches):
                    ev.append(((n + lag) * self.period + cyc, _RANK[kind], layer, n, kind))
        heapq.heapify(ev)
        return [heapq.heappop(ev) for _ in range(len(ev))]

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
        if self.versions[layer] != step:
            raise TrainerError(f"layer {layer}: update of minibatch {n} out of order")
        d = self.versions[layer] - mb.v_read[layer]
        self.observed[layer][d] = self.observed[layer].get(d, 0) + 1
        self.apply(layer, mb.wgrad[layer], step)
        self.versions[layer] += 1
        mb.wgrad[layer] = None

    def run_epoch(self, get_batch: GetBatch, num_batches: int, progress: Callable[[], None] | None = None) -> EpochStats:
        stats = EpochStats()
        base = self.step
        live: dict[int, _Minibatch] = {}
        done = [0] * num_batches
        for _, _, layer, n, kind in self._events(num_batches):
            mb = live.get(n)
            if mb is None:
                x, y = get_batch(n)
                mb = live[n] = _Minibatch(x, y, self.num_layers, self.consumers)
            if kind is TaskKind.F:
                self._forward(mb, layer, n, base + n)
            elif kind is TaskKind.B:
                self._backward(mb, layer, n, base + n, stats)
            else:
                self._update(mb, layer, n, base + n)
                done[n] += 1
                if done[n] == self.num_layers:
                    del live[n]
                    if progress:
                        progress()
        self.step = base + num_batches
        return stats

    @property
    def measured_delays(self) -> tuple[int, ...]:
        return tuple(max(o) if o else 0 for o in self.observed)

    def check_delays(self) -> None:
        """Raise if the versions counted differ from the schedule's delays (once the pipeline was full)."""
        measured = self.measured_delays
        if any(not o for o in self.observed):
            return
        if measured != self.delays:
            raise TrainerError(f"trainer measured gradient delays {measured}, schedule {self.schedule.name} says "
                               f"{self.delays}; the epoch may be shorter than the pipeline depth")

    def state_dict(self) -> dict:
        return {**super().state_dict(), "versions": self.versions, "observed": self.observed}

    def load_state_dict(self, d: dict) -> None:
        super().load_state_dict(d)
        self.versions = list(d["versions"])
        self.observed = [dict(o) for o in d["observed"]]
