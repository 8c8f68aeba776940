"""Checkpointed BPTT (activation recomputation in time) and Skipper's time-skipped backward.

Checkpointed BPTT with interval c (Skipper's baseline, Singh et al., MICRO 2022):
  1. forward all T steps without an autograd graph, keeping only the membrane state of every layer at the start
     of each segment of c steps (the checkpoints) and the logits;
  2. for the segments from last to first: re-run the segment from its checkpoint with a graph, backpropagate the
     loss terms of its timesteps plus the gradient that reached its end state from the later segment, and pass
     the gradient of its start state on. One segment's graph is alive at a time, so activation memory falls from
     O(T) to O(c + T/c) at the cost of one extra forward. The gradients equal BPTT's exactly.

Skipper (our reading of the time-skipped approximation): in every segment only the first c - s steps are
recomputed and backpropagated; the last s steps are skipped and their loss terms dropped. It cuts recomputation
and backward work by s/c. With s = 0 it is checkpointed BPTT. Two variants for the gradient that reaches a
segment's end state from the later segment (it would have to pass through the skipped steps):
  drop   it is dropped; the start-state gradient is then never needed and never computed;
  carry  (the registry's default) it is applied at the last kept step, as if the skipped steps passed it on
         unchanged (identity), so temporal credit crosses every segment border; costs one membrane-sized
         gradient per segment.
The segments, and so the work the task-graph transform prices, are `registry.segments`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from spikepipe.methods.memory import NO_PROBE, Probe
from spikepipe.methods.registry import segments
from spikepipe.methods.stepped import (
    MethodError,
    State,
    check_steppable,
    detach_entry,
    entry_dot,
    entry_grads,
    logits,
    run_chunk,
    state_tensors,
)
from spikepipe.train.bptt import EpochStats, TrainerBase
from spikepipe.train.optim import OptimConfig

GetBatch = Callable[[int], tuple[torch.Tensor, torch.Tensor]]


def _leaves(weights: list[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
    return [{k: w.detach().requires_grad_() for k, w in ws.items()} for ws in weights]


def _collect(leaves: list[dict[str, torch.Tensor]], grads: list[torch.Tensor | None],
             acc: list[dict[str, torch.Tensor | None]] | None) -> list[dict[str, torch.Tensor | None]]:
    it = iter(grads)
    fresh = [{k: next(it) for k in ws} for ws in leaves]
    if acc is None:
        return fresh
    for a, f in zip(acc, fresh, strict=True):
        for k, g in f.items():
            if g is not None:
                a[k] = g if a[k] is None else a[k] + g
    return acc


@contextlib.contextmanager
def _rerun(net: object, rng: torch.Tensor) -> Iterator[None]:
    """A segment's re-run draws the random numbers its first run drew (dropout masks) and leaves a user model's
    buffers (BatchNorm statistics) as the first run left them."""
    frozen = getattr(net, "frozen_buffers", None)
    with torch.random.fork_rng(devices=[]), (frozen() if frozen else contextlib.nullcontext()):
        torch.set_rng_state(rng)
        yield


def checkpointed_grads(net: nn.Module, weights: list[dict[str, torch.Tensor]], x: torch.Tensor, y: torch.Tensor,
                       every: int | None, skip: int = 0, probe: Probe = NO_PROBE, carry: bool = False,
                       ) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, torch.Tensor | None]]]:
    """(loss, logits, per-block gradients) with checkpoints every `every` steps (None: one graph, plain BPTT on
    the time-chunked network) and the last `skip` steps of every segment skipped in the backward
    (registry.segments). `carry`: the gradient reaching a segment's end state is applied at its last kept step,
    as if the skipped steps passed it on unchanged; otherwise it is dropped. What is held outside autograd
    (checkpoints, the gradient passed between segments) is reported to `probe`."""
    t_total = x.shape[0]
    leaves = _leaves(weights)
    flat = [w for ws in leaves for w in ws.values()]
    if every is None:
        if skip:
            raise MethodError("skip needs checkpoints: give checkpoint_every as well")
        out = logits(net, leaves, x)
        loss = F.cross_entropy(out, y)
        grads = torch.autograd.grad(loss, flat, allow_unused=True)
        return loss.detach(), out.detach(), _collect(leaves, list(grads), None)
    segs = segments(t_total, every, skip)
    checkpoints: list[State | None] = []
    held: list[object] = []  # probe tokens of the checkpoints, released as their segments are done
    rngs: list[torch.Tensor] = []  # the random-number state at each segment's start, for its re-run
    state: State | None = None
    acc_out = None
    with torch.no_grad():
        for t0 in (sg.start for sg in segs):
            checkpoints.append(state)
            held.append(probe.hold(state_tensors(state)))
            rngs.append(torch.get_rng_state())
            outs, state = run_chunk(net, weights, x[t0:t0 + every], state)
            part = outs[-1].sum(0)
            acc_out = part if acc_out is None else acc_out + part
    del state  # the end state is not needed: nothing flows back from after the last step
    out = (acc_out / t_total).requires_grad_()
    loss = F.cross_entropy(out, y)
    (g_out,) = torch.autograd.grad(loss, out)
    g_out = g_out / t_total  # d loss / d (last block output at any one timestep)
    g_out_token = probe.hold([g_out])
    acc: list[dict[str, torch.Tensor | None]] | None = None
    g_state: State | None = None  # gradient reaching the end state of the segment being processed
    g_token: object = None
    # the gradient of a segment's start state is wanted when the earlier segment uses it: always without
    # skipping or when carrying; with skip > 0 and dropping, every earlier segment (full length) skips and drops it
    want = skip == 0 or carry
    for k in reversed(range(len(segs))):
        t0, keep, t1 = segs[k].start, segs[k].kept_end, segs[k].end
        s0 = checkpoints[k]
        checkpoints[k] = None
        s0_leaf = None if s0 is None else [detach_entry(s, want) for s in s0]
        with _rerun(net, rngs[k]):
            outs, s1 = run_chunk(net, leaves, x[t0:keep], s0_leaf)
        objective = (outs[-1].sum(0) * g_out).sum()
        if g_state is not None and (keep == t1 or carry):  # dropped across skipped steps unless carried
            for s, g in zip(s1, g_state, strict=True):
                objective = objective + entry_dot(s, g)
        state_leaves = [s for s in state_tensors(s0_leaf) if s.requires_grad]
        grads = torch.autograd.grad(objective, flat + state_leaves, allow_unused=True)
        acc = _collect(leaves, list(grads[:len(flat)]), acc)
        del outs, s1, objective
        probe.drop(g_token)
        g_state, g_token = None, None
        if s0_leaf is not None and want:
            by_id = {id(s): g for s, g in zip(state_leaves, grads[len(flat):], strict=True)}
            g_state = [entry_grads(s, by_id) for s in s0_leaf]
            g_token = probe.hold(state_tensors(g_state))
        del s0, s0_leaf, grads
        probe.drop(held[k])
    probe.drop(g_token)
    probe.drop(g_out_token)
    assert acc is not None
    return loss.detach(), out.detach(), acc


class CheckpointedBPTT(TrainerBase):
    """BPTT with activation recomputation every `checkpoint_every` steps (None: no recomputation)."""

    mode = "checkpoint"

    def __init__(self, net: nn.Module, optim: OptimConfig, *, total_steps: int, checkpoint_every: int | None = 2,
                 skip: int = 0, weights: list | None = None, carry: bool = False) -> None:
        check_steppable(net)
        super().__init__(net, optim, total_steps=total_steps, weights=weights)
        self.every = checkpoint_every
        self.skip = skip
        self.carry = carry
        self.probe: Probe = NO_PROBE  # set by a memory measurement to see the state held outside autograd
        if checkpoint_every is not None and not 0 <= skip < checkpoint_every:
            raise MethodError(f"skip must be in [0, checkpoint_every), got skip={skip}, every={checkpoint_every}")

    def grads(self, x: torch.Tensor, y: torch.Tensor):
        return checkpointed_grads(self.net, self.weights, x, y, self.every, self.skip, self.probe, self.carry)

    def run_epoch(self, get_batch: GetBatch, num_batches: int, progress: Callable[[], None] | None = None,
                  ) -> EpochStats:
        stats = EpochStats()
        for n in range(num_batches):
            x, y = get_batch(n)
            loss, out, grads = self.grads(x, y)
            stats.add(loss, out, y, self.step)
            for layer in range(self.num_layers):
                self.apply(layer, grads[layer], self.step)
            self.step += 1
            if progress:
                progress()
        return stats

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self.net, "eval_logits"):  # a user's module: its own forward in eval mode
            return self.net.eval_logits(self.weights, x)
        return logits(self.net, self.weights, x, self.every)


class Skipper(CheckpointedBPTT):
    """Checkpointed BPTT whose backward skips the last `skip` steps of every segment."""

    mode = "skipper"

    def __init__(self, net: nn.Module, optim: OptimConfig, *, total_steps: int, checkpoint_every: int = 4,
                 skip: int = 1, weights: list | None = None, carry: bool = False) -> None:
        super().__init__(net, optim, total_steps=total_steps, checkpoint_every=checkpoint_every, skip=skip,
                         weights=weights, carry=carry)
