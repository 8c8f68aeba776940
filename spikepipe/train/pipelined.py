"""Training that executes a periodic Schedule exactly, and a cheaper gradient-queue approximation.

Exact mode (docs/design.md section 4), on the user's whole module, never cut into pieces (spikepipe.train.model holds
the weights outside it, one dict per layer). A slot with lag r and start s runs, for minibatch n, at absolute
time (n + r) * period + s. Every task of every minibatch of an epoch becomes an event at that time
(`event_order`), and events run in time order:
  F_l(n)  at the start of F_l:  records the weight version layer l holds now (SpecTrain: the predicted one).
  B_l(n)  at the start of B_l:  the first B of minibatch n computes its loss; without stashing, B_l records the
                                weights layer l holds now.
  W_l(n)  at the end of W_l:    the weight gradient of minibatch n is applied (layer l's optimiser steps).
A layer without a W task (a product of two activations: no weights) has F and B events only, is never updated
and has delay 0; a layer with weights must have a W slot.
An update that ends exactly when a read starts is visible to it (as in ir.slot_lag_delays), so updates land in
period order and each read sees exactly the versions the schedule implies.

With weight stashing, B_l differentiates through the weights F_l read, so the gradient of minibatch n is one
ordinary forward and backward of the whole model with layer l at the version its F_l read: computed once, at
the first B of n (all F of n have run by then), and applied layer by layer at the W times.

Without stashing, B_l differentiates through the weights current at B_l's time, at the activations F computed:
a straight-through substitution. The model runs once with the F-time weights (no graph; the inputs of every
layer are recorded at its entry module) and again with the B-time weights, where every layer's entry module
gets value = its recorded F-time input, gradient = through the B-time run (x_B + (x_F - x_B).detach()); the
logits get the same treatment, so the loss gradient is taken at the F-time output. A tensor one layer adds inside
another (a residual add that is not a module input) is swapped the same way (spikepipe.train.replay). Layer l's gradient depends
only on the B-time weights of l and the layers after it, whose B have all run before B_l; it is computed at
W_l's time if not yet known (each such computation serves every layer whose B has run). Dropout masks and
BatchNorm statistics come from the F-time run (the B-time run replays the RNG and updates copies of buffers).

At the end of an epoch the pipeline drains (the remaining tasks of that epoch's minibatches run in schedule
order), so the next epoch starts from a flushed pipeline and checkpoints need no in-flight state.

Delays are counted, not assumed: the trainer records the version F_l(n) read and the version W_l(n) updates and
`measured_delays` is the largest difference, which must equal schedule.gradient_delays.

Compensation: `spectrain` (F, and B without stashing, use weights extrapolated by the number of updates still to
land before their own times the optimiser's velocity, after SpecTrain) and `pipemare` (the learning rate of a
layer with delay d is divided by d**p, p annealed from 1 to 0 over the first epoch, PipeMare's T1).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from spikepipe.ir import Schedule, SpikePipeError, TaskKind, slot_lag_delays
from spikepipe.train import netfn
from spikepipe.train.bptt import EpochStats, GetBatch, PlainBPTT, TrainerBase
from spikepipe.train.model import ModelFn, Weights
from spikepipe.train.optim import OptimConfig, lr_at, pipemare_scale
from spikepipe.train.replay import EntryHooks

COMPENSATIONS = ("none", "spectrain", "pipemare")
_RANK = {TaskKind.W: 0, TaskKind.F: 1, TaskKind.B: 2}  # at equal times an ending update precedes the reads


class TrainerError(SpikePipeError):
    """The trainer cannot execute this schedule (or its measured delays disagree with the schedule's)."""


@dataclass(frozen=True)
class LayerTiming:
    """Where layer l's tasks sit in the period: lag and cycle of F's read, B's read and W's update. A layer without
    a W task (no weights) has w_lag and w_cycles None: it is never updated and has gradient delay 0."""

    f_lag: int
    f_cycles: int
    b_lag: int
    b_cycles: int
    w_lag: int | None
    w_cycles: int | None  # end of W: when the update lands

    @property
    def has_update(self) -> bool:
        return self.w_lag is not None


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
            f, b = first[("F", layer)], first[("B", layer)]
        except KeyError:
            raise TrainerError(f"schedule {schedule.name} has no F, B or W slot for layer {layer} (every layer "
                               f"needs F and B, one with weights W too); it was built for a different network (it "
                               f"covers {schedule.gradient_delays!r} layers)") from None
        w = last_w.get(layer, (None, None))  # no W slot: a layer without weights
        out.append(LayerTiming(f[0], f[1], b[0], b[1], w[0], w[1]))
    if len(schedule.gradient_delays) != num_layers:
        raise TrainerError(f"schedule {schedule.name} has delays for {len(schedule.gradient_delays)} layers, the "
                           f"network has {num_layers} blocks")
    return tuple(out)


@dataclass(frozen=True)
class Event:
    """One task of one minibatch: at absolute cycle `time` (period index * period + start), task `kind` of
    `layer` works on minibatch `minibatch` of the epoch."""

    time_cycles: int
    kind: TaskKind
    layer: int
    minibatch: int


def event_order(timing: Sequence[LayerTiming], period_cycles: int, num_batches: int) -> list[Event]:
    """Every F, B and W of minibatches 0..num_batches-1 in the order the schedule runs them: by time, and at equal
    times an ending update (W) before reads (F, then B), then by layer and minibatch. Combined with
    `layer_timings` this is the whole event semantics the trainer (and a distributed backend) executes. A layer
    without W has F and B events only."""
    ev = []
    for layer, t in enumerate(timing):
        for kind, lag, cyc in ((TaskKind.F, t.f_lag, t.f_cycles), (TaskKind.B, t.b_lag, t.b_cycles),
                               (TaskKind.W, t.w_lag, t.w_cycles)):
            if lag is None or cyc is None:
                continue
            for n in range(num_batches):
                ev.append(((n + lag) * period_cycles + cyc, _RANK[kind], layer, n, kind))
    ev.sort()
    return [Event(t, kind, layer, n) for t, _, layer, n, kind in ev]


class _Minibatch:
    __slots__ = ("x", "y", "w_f", "w_b", "v_read", "pending", "b_done", "grads", "logits_f", "rng", "inputs",
                 "adds", "loss_done")

    def __init__(self, x: torch.Tensor, y: torch.Tensor, layers: int, consumers: list[int]) -> None:
        self.x, self.y = x, y
        self.w_f: list[Weights | None] = [None] * layers  # the version F_l read
        self.w_b: list[Weights | None] = [None] * layers  # without stashing: the version B_l read
        self.v_read = [-1] * layers
        self.pending = list(consumers)
        self.b_done = [False] * layers
        self.grads: list[dict | None] = [None] * layers
        self.logits_f: torch.Tensor | None = None
        self.rng: torch.Tensor | None = None
        self.inputs: list[list] | None = None
        self.adds: list[list] | None = None  # tensors added inside a layer from another (inner adds)
        self.loss_done = False


def as_model_fn(net: nn.Module | ModelFn) -> ModelFn:
    """A ModelFn for `net`; a module with the block protocol needs no example (its layers are its blocks)."""
    if isinstance(net, ModelFn):
        return net
    netfn.check_net(net)
    return ModelFn(net, None)


class DelayedUpdates(TrainerBase):
    """The bookkeeping of a trainer that executes a schedule's events: per-layer learning rates (PipeMare),
    weight prediction (SpecTrain), the versions each layer's weights went through and the delays counted, the event
    loop. Subclasses say what F, B and W do (`_forward`, `_backward`, `_update`, `_minibatch`)."""

    def __init__(self, net: nn.Module | ModelFn, optim: OptimConfig, schedule: Schedule, *, total_steps: int,
                 compensation: str = "none", anneal_steps: int | None = None,
                 weights: list[Weights] | None = None) -> None:
        super().__init__(net, optim, total_steps=total_steps, weights=weights)
        if compensation not in COMPENSATIONS:
            raise TrainerError(f"unknown compensation {compensation!r}; valid: {', '.join(COMPENSATIONS)}")
        self.schedule = schedule
        self.period = schedule.period_cycles
        self.timing = layer_timings(schedule, self.num_layers)
        for layer, t in enumerate(self.timing):
            if not t.has_update and self.weights[layer]:
                raise TrainerError(f"schedule {schedule.name} has no W slot for layer {layer}, which has weights "
                                   f"({', '.join(sorted(self.weights[layer]))}); it was built for another network")
        self.delays = tuple(slot_lag_delays(schedule.slots, self.num_layers, self.period))
        self.compensation = compensation
        self.anneal_steps = anneal_steps if anneal_steps is not None else max(1, total_steps // 10)
        self.versions = [0] * self.num_layers  # updates applied per layer so far
        self.observed: list[dict[int, int]] = [{} for _ in range(self.num_layers)]  # delay -> count

    # -- learning rate and weight prediction
    def lr(self, layer: int, step: int) -> float:
        base = lr_at(self.cfg, step, self.total_steps)
        if self.compensation == "pipemare":
            base *= pipemare_scale(self.delays[layer], step, self.anneal_steps)
        return base

    def _weights_for(self, layer: int, step: int) -> Weights:
        """Layer `layer`'s weights as a task of global minibatch `step` should see them now."""
        w = self.weights[layer]
        ahead = step - self.versions[layer]  # updates still to land before this minibatch's own
        if self.compensation != "spectrain" or ahead <= 0:
            return w
        vel = self.opts[layer].velocity(w, self.lr(layer, self.versions[layer]))
        if vel is None:
            return w
        return {k: w[k] - ahead * vel[k] for k in w}

    def _count_update(self, layer: int, n: int, step: int, v_read: int) -> None:
        """Before W_l(n) applies: it must be layer l's next update; count the delay it lands with."""
        if self.versions[layer] != step:
            raise TrainerError(f"layer {layer}: update of minibatch {n} out of order")
        d = self.versions[layer] - v_read
        self.observed[layer][d] = self.observed[layer].get(d, 0) + 1

    # -- what F, B and W do, and a minibatch's in-flight state
    def _minibatch(self, x: torch.Tensor, y: torch.Tensor) -> object:
        raise NotImplementedError

    def _forward(self, mb: object, layer: int, n: int, step: int) -> None:
        raise NotImplementedError

    def _backward(self, mb: object, layer: int, n: int, step: int, stats: EpochStats) -> None:
        raise NotImplementedError

    def _update(self, mb: object, layer: int, n: int, step: int) -> None:
        raise NotImplementedError

    def run_epoch(self, get_batch: GetBatch, num_batches: int, progress: Callable[[], None] | None = None) -> EpochStats:
        stats = EpochStats()
        base = self.step
        live: dict[int, object] = {}
        done = [0] * num_batches
        events = event_order(self.timing, self.period, num_batches)
        per_minibatch = len(events) // max(1, num_batches)  # F and B of every layer, W of those with weights
        for ev in events:
            n, layer = ev.minibatch, ev.layer
            mb = live.get(n)
            if mb is None:
                x, y = get_batch(n)
                mb = live[n] = self._minibatch(x, y)
            if ev.kind is TaskKind.F:
                self._forward(mb, layer, n, base + n)
            elif ev.kind is TaskKind.B:
                self._backward(mb, layer, n, base + n, stats)
            else:
                self._update(mb, layer, n, base + n)
            done[n] += 1
            if done[n] == per_minibatch:  # its last event: nothing of minibatch n is in flight any more
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
        if any(not o for o, t in zip(self.observed, self.timing, strict=True) if t.has_update):
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


class ExactPipeline(DelayedUpdates):
    """Executes the schedule's F/B/W events in time order on the whole model (see the module docstring)."""

    mode = "exact"

    def __init__(self, net: nn.Module | ModelFn, optim: OptimConfig, schedule: Schedule, *, total_steps: int,
                 stash: bool = True, compensation: str = "none", anneal_steps: int | None = None,
                 weights: list[Weights] | None = None) -> None:
        fn = as_model_fn(net)
        super().__init__(fn, optim, schedule, total_steps=total_steps, compensation=compensation,
                         anneal_steps=anneal_steps, weights=weights)
        if not stash and any(e is None and not f for e, f in zip(fn.map.entries, fn.map.functional or
                                                                  [()] * self.num_layers, strict=True)):
            raise TrainerError("--no-stash needs every layer's synaptic op to be a module or a functional call on "
                               "the layer's own weight parameter (its input is where the B-time recomputation "
                               "starts)")
        self.stash = stash
        self.consumers = fn.map.consumers()

    def _minibatch(self, x: torch.Tensor, y: torch.Tensor) -> _Minibatch:
        return _Minibatch(x, y, self.num_layers, self.consumers)

    # -- events
    def _forward(self, mb: _Minibatch, layer: int, n: int, step: int) -> None:
        for p in self.fn.map.producers[layer]:
            if p >= 0 and mb.w_f[p] is None:
                raise TrainerError(f"schedule runs F{layer} of minibatch {n} before F{p} produced its input")
        mb.v_read[layer] = self.versions[layer]
        mb.w_f[layer] = self._weights_for(layer, step)

    def _loss(self, mb: _Minibatch, n: int, step: int, stats: EpochStats) -> None:
        """The first B of minibatch n: every F of n has run, so its forward (and with stashing its gradient) is
        determined."""
        missing = [i for i, w in enumerate(mb.w_f) if w is None]
        if missing:
            raise TrainerError(f"schedule runs a B task of minibatch {n} before F{missing[0]}")
        if self.stash:
            loss, logits, grads = self.loss_grads(mb.w_f, mb.x, mb.y)  # type: ignore[arg-type]
            mb.grads = grads
        else:
            mb.rng = torch.get_rng_state()
            mb.inputs = [[] for _ in range(self.num_layers)]
            mb.adds = [[] for _ in range(self.num_layers)] if self.fn.map.inner_adds else None
            with torch.no_grad(), EntryHooks(self.net, self.fn.map.entries, mb.inputs, None, mb.adds,
                                             *self._functional(mb.w_f)):
                logits = self.fn.call(mb.w_f, mb.x)  # type: ignore[arg-type]
            loss = F.cross_entropy(logits, mb.y)
            mb.logits_f = logits
        stats.add(loss.detach(), logits.detach(), mb.y, step)
        mb.loss_done = True

    def _backward(self, mb: _Minibatch, layer: int, n: int, step: int, stats: EpochStats) -> None:
        if mb.w_f[layer] is None:
            raise TrainerError(f"schedule runs B{layer} of minibatch {n} before F{layer}")
        last = layer == self.num_layers - 1
        if mb.pending[layer] != (1 if last else 0):
            raise TrainerError(f"schedule runs B{layer} of minibatch {n} before all layers fed by layer {layer} "
                               f"returned their gradients")
        if not mb.loss_done:
            self._loss(mb, n, step, stats)
        if not self.stash:
            mb.w_b[layer] = self._weights_for(layer, step)
        for p in self.fn.map.producers[layer]:
            if p >= 0:
                mb.pending[p] -= 1
        mb.b_done[layer] = True

    def _functional(self, weights: Sequence[Weights | None]) -> tuple[dict[int, int], set[int]]:
        """(id of each functional layer's synaptic weight in this run -> layer, ids of every weight in it)."""
        syn = {id(weights[i][k]): i for i, names in enumerate(self.fn.map.functional)  # type: ignore[index]
               for k in names}
        return syn, ({id(t) for ws in weights if ws for t in ws.values()} if syn else set())

    def _grads_no_stash(self, mb: _Minibatch) -> None:
        """Gradients of every layer whose B has run and whose gradient is not known yet (module docstring)."""
        todo = [i for i in range(self.num_layers) if mb.b_done[i] and mb.grads[i] is None]
        weights = []
        for i in range(self.num_layers):
            w = mb.w_b[i] if mb.w_b[i] is not None else mb.w_f[i]
            weights.append({k: v.detach().requires_grad_() for k, v in w.items()} if i in todo else w)
        after = torch.get_rng_state()
        torch.set_rng_state(mb.rng)  # the same dropout masks as the F-time run
        try:
            with EntryHooks(self.net, self.fn.map.entries, None, mb.inputs, mb.adds, *self._functional(weights)):
                logits = self.fn.call(weights, mb.x, buffers=self.fn.buffer_copies())
        finally:
            torch.set_rng_state(after)
        logits = logits + (mb.logits_f - logits).detach()
        loss = F.cross_entropy(logits, mb.y)
        flat = [t for i in todo for t in weights[i].values()]
        gs = iter(torch.autograd.grad(loss, flat, allow_unused=True))
        for i in todo:
            mb.grads[i] = {k: next(gs) for k in weights[i]}

    def _update(self, mb: _Minibatch, layer: int, n: int, step: int) -> None:
        if not mb.b_done[layer]:
            raise TrainerError(f"schedule runs W{layer} of minibatch {n} before B{layer}")
        self._count_update(layer, n, step, mb.v_read[layer])
        if mb.grads[layer] is None:
            self._grads_no_stash(mb)
        self.apply(layer, mb.grads[layer], step)  # type: ignore[arg-type]
        self.versions[layer] += 1
        mb.grads[layer] = None

class GradientQueue(PlainBPTT):
    """APPROXIMATION: gradients computed by plain BPTT at the current weights, applied d_l updates later.
    Cheaper than the exact mode, but the forward and backward of a minibatch see the same (newest) weights, which
    no real pipeline does; compare it with ExactPipeline before trusting it."""

    mode = "queue"

    def __init__(self, net: nn.Module, optim: OptimConfig, delays: tuple[int, ...], *, total_steps: int,
                 weights: list[Weights] | None = None) -> None:
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
