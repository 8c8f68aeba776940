"""Training that executes a periodic Schedule exactly, and a cheaper gradient-queue approximation.

Exact mode (docs/design.md section 4). A slot with lag r and start s runs, for minibatch n, at absolute time
(n + r) * period + s. Every task of every minibatch of an epoch becomes an event at that time:
  F_l(n)  at the start of F_l:  reads layer l's weights as they are then, runs block l on minibatch n
  B_l(n)  at the start of B_l:  the loss (last layer) or the summed gradients from l's consumers, backpropagated
                                through block l; with weight stashing through the graph F_l(n) built with the
                                weights it read, without stashing through block l recomputed with the weights
                                current at B time. Input gradients go to the blocks that fed l.
  W_l(n)  at the end of W_l:    the weight gradient of minibatch n is applied (layer l's optimiser steps).
An update that ends exactly when a read starts is visible to it (as in ir.slot_lag_delays). Events run in time
order, so updates land in period order and each read sees exactly the versions the schedule implies. Each layer
is its own autograd segment: its inputs are detached leaves, so F_l, B_l and W_l may sit in different periods.
At the end of an epoch the pipeline drains (the remaining tasks of that epoch's minibatches run in schedule
order), so the next epoch starts from a flushed pipeline and checkpoints need no in-flight state.

Delays are counted, not assumed: the trainer records the version F_l(n) read and the version W_l(n) updates and
`measured_delays` is the largest difference, which must equal schedule.gradient_delays.

Compensation: `spectrain` (F, and B without stashing, use weights extrapolated by the number of updates still to
land before their own times the optimiser's velocity, after SpecTrain) and `pipemare` (the learning rate of a
layer with delay d is divided by d**p, p annealed from 1 to 0 over the first epoch, PipeMare's T1).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from spikepipe.ir import Schedule, SpikePipeError, TaskKind, slot_lag_delays
from spikepipe.train import netfn
from spikepipe.train.bptt import EpochStats, GetBatch, PlainBPTT, TrainerBase
from spikepipe.train.optim import OptimConfig, lr_at, pipemare_scale

COMPENSATIONS = ("none", "spectrain", "pipemare")
_RANK = {TaskKind.W: 0, TaskKind.F: 1, TaskKind.B: 2}  # at equal times an ending update precedes the reads


class TrainerError(SpikePipeError):
    """The trainer cannot execute this schedule (or its measured delays disagree with the schedule's)."""


@dataclass(frozen=True)
class LayerTiming:
    """Where layer l's tasks sit in the period: lag and cycle of F's read, B's read and W's update."""

    f_lag: int
    f_cycles: int
    b_lag: int
    b_cycles: int
    w_lag: int
    w_cycles: int  # end of W: when the update lands


def layer_timings(schedule: Schedule, num_layers: int) -> tuple[LayerTiming, ...]:
    """Collapse the schedule's slots per layer. Split tasks read when their first part starts and update when the
    last part ends (the convention of ir.slot_lag_delays)."""
    if schedule.kind != "periodic":
        raise TrainerError(f"schedule {schedule.name} is a {schedule.kind} schedule; only periodic schedules have "
                           f"delays (flush schedules train as plain BPTT)")
    period = schedule.period_cycles
    first: dict[tuple[str, int], tuple[int, int]] = {}
    last_w: dict[int, tuple[int, int]] = {}
    for s in schedule.slots:
        if s.microbatch:
            raise TrainerError(f"slot {s.id} of periodic schedule {schedule.name} has a micro-batch index")
        if s.kind is TaskKind.W:
            t = (s.lag, s.end_cycles)
            if s.layer not in last_w or t[0] * period + t[1] > last_w[s.layer][0] * period + last_w[s.layer][1]:
                last_w[s.layer] = t
        else:
            key, t = (s.kind.value, s.layer), (s.lag, s.start_cycles)
            if key not in first or t[0] * period + t[1] < first[key][0] * period + first[key][1]:
                first[key] = t
    out = []
    for layer in range(num_layers):
        try:
            f, b, w = first[("F", layer)], first[("B", layer)], last_w[layer]
        except KeyError:
            raise TrainerError(f"schedule {schedule.name} has no F, B or W slot for layer {layer}; it was built "
                               f"for a different network (it covers {schedule.gradient_delays!r} layers)") from None
        out.append(LayerTiming(f[0], f[1], b[0], b[1], w[0], w[1]))
    if len(schedule.gradient_delays) != num_layers:
        raise TrainerError(f"schedule {schedule.name} has delays for {len(schedule.gradient_delays)} layers, the "
                           f"network has {num_layers} blocks")
    return tuple(out)


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


class ExactPipeline(TrainerBase):
    """Executes the schedule's F/B/W events in time order (see the module docstring)."""

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


class GradientQueue(PlainBPTT):
    """APPROXIMATION: gradients computed by plain BPTT at the current weights, applied d_l updates later.
    Cheaper than the exact mode, but the forward and backward of a minibatch see the same (newest) weights, which
    no real pipeline does; compare it with ExactPipeline before trusting it."""

    mode = "queue"

    def __init__(self, net: nn.Module, optim: OptimConfig, delays: tuple[int, ...], *, total_steps: int,
                 weights: list[netfn.Weights] | None = None) -> None:
        super().__init__(net, optim, total_steps=total_steps, weights=weights)
        if len(delays) != self.num_layers:
            raise TrainerError(f"{len(delays)} delays for {self.num_layers} layers")
        self.delays = tuple(delays)

    def run_epoch(self, get_batch: GetBatch, num_batches: int, progress: Callable[[], None] | None = None) -> EpochStats:
        stats = EpochStats()
        queues: list[deque] = [deque() for _ in range(self.num_layers)]
        for n in range(num_batches):
            x, y = get_batch(n)
            loss, logits, grads = self.grads(x, y)
            stats.add(loss, logits, y, self.step + n)
            for layer in range(self.num_layers):
                queues[layer].append((self.step + n, grads[layer]))
                if len(queues[layer]) > self.delays[layer]:
                    s, g = queues[layer].popleft()
                    self.apply(layer, g, s)
            if progress:
                progress()
        for layer in range(self.num_layers):  # drain at the end of the epoch, like the exact mode
            while queues[layer]:
                s, g = queues[layer].popleft()
                self.apply(layer, g, s)
        self.step += num_batches
        return stats

    @property
    def measured_delays(self) -> tuple[int, ...]:
        return self.delays
