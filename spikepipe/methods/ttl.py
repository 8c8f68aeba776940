"""Temporally-truncated local BPTT (TTL; Guo et al., 2022): truncation in time and local losses in depth.

The T steps of a minibatch are cut into windows of k steps. In each window, every block of layers runs forward
from the (detached) membrane state the previous window left, computes its local loss (a local classifier on its
output over the window; the last block uses the network's own output) and backpropagates at once, so only one
block's graph over k steps is alive at any time. No gradient crosses a window border or a block border.
Gradients of all windows are summed (each loss weighted by its share of T) and applied once per minibatch.

The forward is exact: the logits (mean over all T of the last block) are the network's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spikepipe.methods.local import Heads, block_output_shapes, head_logits, partition
from spikepipe.methods.memory import NO_PROBE, Probe
from spikepipe.methods.stepped import (
    MethodError,
    State,
    check_steppable,
    detach_entry,
    logits,
    run_chunk,
    state_tensors,
)
from spikepipe.train.bptt import EpochStats, TrainerBase
from spikepipe.train.optim import OptimConfig

GetBatch = Callable[[int], tuple[torch.Tensor, torch.Tensor]]


class TTL(TrainerBase):
    mode = "ttl"

    def __init__(self, net: nn.Module, optim: OptimConfig, *, total_steps: int, example: torch.Tensor,
                 window: int = 2, blocks: int | Sequence[int] = 2, seed: int = 0,
                 delays: Sequence[int] | None = None, weights: list | None = None) -> None:
        check_steppable(net)
        super().__init__(net, optim, total_steps=total_steps, weights=weights)
        if window < 1:
            raise MethodError(f"TTL window must be at least 1 timestep, got {window}")
        self.window = window
        self.probe: Probe = NO_PROBE  # set by a memory measurement to see the state held outside autograd
        self.ranges = partition(self.num_layers, blocks)
        shapes = block_output_shapes(net, self.weights, example)
        classes = int(torch.Size(shapes[-1]).numel())
        self.heads = Heads([b - 1 for _, b in self.ranges[:-1]], shapes, classes, optim, seed)
        # a pipeline's per-layer gradient delays, applied as a gradient queue (APPROXIMATION, like
        # spikepipe.train.GradientQueue: gradients at the current weights, applied d_l updates later)
        self.delays = tuple(delays) if delays is not None else (0,) * self.num_layers
        if len(self.delays) != self.num_layers or min(self.delays) < 0:
            raise MethodError(f"need one non-negative delay per layer ({self.num_layers}), got {self.delays}")

    def grads(self, x: torch.Tensor, y: torch.Tensor):
        t_total = x.shape[0]
        n = self.num_layers
        acc: list[dict[str, torch.Tensor | None]] = [{k: None for k in ws} for ws in self.weights]
        head_acc: dict[int, dict[str, torch.Tensor | None]] = {e: {k: None for k in p}
                                                               for e, p in self.heads.params.items()}
        state: State = [None] * n
        out_sum = None
        loss_sum = torch.zeros(())
        state_token: object = None
        for t0 in range(0, t_total, self.window):
            xw = x[t0:t0 + self.window]
            share = xw.shape[0] / t_total
            given: dict[int, torch.Tensor] = {}
            new_state: State = [None] * n
            window_tokens = []  # this window's block outputs and new states, alive until the window ends
            for a, b in self.ranges:
                leaves = [{k: w.detach().requires_grad_() for k, w in ws.items()} if a <= i < b else ws
                          for i, ws in enumerate(self.weights)]
                s0 = [detach_entry(s) for s in state]
                outs, s1 = run_chunk(self.net, leaves, xw, s0, layers=range(a, b), inputs=given)
                last = b == n
                if last:
                    local = outs[-1].mean(0)
                    part = outs[-1].detach().sum(0)
                    out_sum = part if out_sum is None else out_sum + part
                    head = None
                else:
                    head = self.heads.leaves(b - 1)
                    local = head_logits(head, outs[b - 1])
                loss = F.cross_entropy(local, y) * share
                if last:
                    loss_sum = loss_sum + loss.detach()
                params = [w for i in range(a, b) for w in leaves[i].values()]
                hp = list(head.values()) if head else []
                gs = torch.autograd.grad(loss, params + hp, allow_unused=True)
                it = iter(gs)
                for i in range(a, b):
                    for k in leaves[i]:
                        g = next(it)
                        if g is not None:
                            acc[i][k] = g if acc[i][k] is None else acc[i][k] + g
                if head:
                    for k in head:
                        g = next(it)
                        if g is not None:
                            ha = head_acc[b - 1]
                            ha[k] = g if ha[k] is None else ha[k] + g
                for i in range(a, b):
                    if outs[i] is not None:  # a user's module run whole gives its last layer's output only
                        given[i] = outs[i].detach()
                    new_state[i] = detach_entry(s1[i])
                del outs, s1, loss, gs, it
                window_tokens.append(self.probe.hold([given[i] for i in range(a, b) if i in given]
                                                     + state_tensors(new_state[a:b])))
            for tok in window_tokens:
                self.probe.drop(tok)
            self.probe.drop(state_token)
            state = new_state
            state_token = self.probe.hold(state_tensors(state))
        self.probe.drop(state_token)
        out = out_sum / t_total
        return F.cross_entropy(out, y).detach(), out, acc, head_acc

    def run_epoch(self, get_batch: GetBatch, num_batches: int, progress: Callable[[], None] | None = None,
                  ) -> EpochStats:
        stats = EpochStats()
        queues: list[deque] = [deque() for _ in range(self.num_layers)]
        for n in range(num_batches):
            x, y = get_batch(n)
            loss, out, grads, head_grads = self.grads(x, y)
            stats.add(loss, out, y, self.step)
            for layer in range(self.num_layers):
                queues[layer].append((self.step, grads[layer], head_grads.get(layer)))
                if len(queues[layer]) > self.delays[layer]:
                    self._apply(layer, *queues[layer].popleft())
            self.step += 1
            if progress:
                progress()
        for layer in range(self.num_layers):  # drain at the end of the epoch, as the pipelined trainers do
            while queues[layer]:
                self._apply(layer, *queues[layer].popleft())
        return stats

    def _apply(self, layer: int, step: int, grads: dict, head: dict | None) -> None:
        self.apply(layer, grads, step)
        if head is not None:
            self.heads.apply(layer, head, self.lr(layer, step))

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self.net, "eval_logits"):  # a user's module: its own forward in eval mode
            return self.net.eval_logits(self.weights, x)
        return logits(self.net, self.weights, x, self.window)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "heads": self.heads.state_dict()}

    def load_state_dict(self, d: dict) -> None:
        super().load_state_dict(d)
        self.heads.load_state_dict(d["heads"])
