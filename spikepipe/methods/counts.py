"""The arithmetic each method really executes, split the way the SNN papers count it.

A GEMM with a binary spike operand does accumulates, not multiplies: the forward W.s and the weight gradient
delta.s of a layer whose input is spikes (the rule of docs/design.md section 4: the weight-gradient GEMM reads the
layer's input spikes, the input-gradient GEMM is dense). `executed_counts` gives, for one minibatch of a method as
its trainer runs it (checkpoint segments, Skipper's kept steps, TTL's windows and local classifiers):
  multiplies    real-valued multiply-accumulates (both operands real)
  accumulates   operations with one binary operand, counted densely (x spike activity for the expected count)
The split rule is the same as the energy model's per-GEMM binary operand (issue 18); the counts here follow the
trainers' schedules, which a plain task graph does not (TTL's classifiers run once per window).
"""

from __future__ import annotations

from dataclasses import dataclass

from spikepipe.ir import TaskGraph, TaskKind, task_id
from spikepipe.methods.local import HEAD_POOL, head_features, head_input_shape, partition
from spikepipe.methods.registry import MethodError, MethodOptions, segments


@dataclass(frozen=True)
class OpCounts:
    multiplies: int = 0
    accumulates: int = 0

    def __add__(self, other: OpCounts) -> OpCounts:
        return OpCounts(self.multiplies + other.multiplies, self.accumulates + other.accumulates)

    @property
    def total(self) -> int:
        return self.multiplies + self.accumulates


def _ops(macs: int, binary: bool) -> OpCounts:
    return OpCounts(0, macs) if binary else OpCounts(macs, 0)


class _Layers:
    """Per layer of a BPTT task graph: the MACs of its forward, input-gradient and weight-gradient GEMMs over
    all T steps, and whether its input is spikes."""

    def __init__(self, graph: TaskGraph) -> None:
        self.graph = graph
        fires = [layer.neuron is not None for layer in graph.layers]
        self.spiking_input = [all(s >= 0 and fires[s] for s in layer.inputs) for layer in graph.layers]
        self.fwd = [sum(g.macs for g in graph.task(task_id(TaskKind.F, i)).gemms) for i in range(graph.num_layers)]
        self.igrad = [sum(g.macs for g in graph.task(task_id(TaskKind.B, i)).gemms) for i in range(graph.num_layers)]
        # a layer without weights has no W task and no weight-gradient GEMM
        self.wgrad = [sum(g.macs for g in graph.task(task_id(TaskKind.W, i)).gemms)
                      if graph.has_task(i, TaskKind.W) else 0 for i in range(graph.num_layers)]

    def layer(self, i: int, fwd_steps: int, bwd_steps: int, igrad: bool = True) -> OpCounts:
        t = self.graph.timesteps
        b = self.spiking_input[i]
        out = _ops(self.fwd[i] * fwd_steps // t, b) + _ops(self.wgrad[i] * bwd_steps // t, b)
        if igrad:
            out += _ops(self.igrad[i] * bwd_steps // t, False)
        return out


def _head(graph: TaskGraph, e: int, steps: int) -> OpCounts:
    """A local classifier on layer e's output over `steps` steps: forward, input gradient, weight gradient.
    Its input (time mean, 2x2 average pool) is binary only over one step with nothing to pool."""
    shape = head_input_shape(graph.layers[e])
    pooled = len(shape) == 3 and (shape[1] > HEAD_POOL or shape[2] > HEAD_POOL)
    fin = head_features(shape)
    classes = int(graph.layers[-1].output_shape[0])
    macs = graph.batch * fin * classes
    binary = steps == 1 and not pooled and graph.layers[e].neuron is not None
    return _ops(macs, binary) + _ops(macs, False) + _ops(macs, binary)


def executed_counts(graph: TaskGraph, method: MethodOptions) -> OpCounts:
    """Multiplies and accumulates of one minibatch trained with `method` (bptt, checkpoint, skipper, ttl)."""
    layers = _Layers(graph)
    t = graph.timesteps
    n = graph.num_layers
    total = OpCounts()
    if method.name == "bptt":
        for i in range(n):
            total += layers.layer(i, t, t)
        return total
    if method.name in ("checkpoint", "skipper"):
        kept = sum(s.kept for s in segments(t, method.every(t), method.skipped(t)))
        for i in range(n):
            total += layers.layer(i, t + kept, kept)  # the no-graph forward, then the kept steps again
        return total
    if method.name == "ttl":
        ranges = partition(n, method.blocks)
        for w0 in range(0, t, method.window):
            steps = min(method.window, t - w0)
            for a, b in ranges:
                for i in range(a, b):
                    # a block's first layer reads a detached input (or the network's): no input gradient
                    inside = any(a <= s < b for s in graph.layers[i].inputs)
                    total += layers.layer(i, steps, steps, igrad=inside and layers.igrad[i] > 0)
                if b < n:
                    total += _head(graph, b - 1, steps)
        return total
    raise MethodError(f"executed_counts covers bptt, checkpoint, skipper and ttl, not {method.name!r}")


def reduction(base: int, other: int) -> float:
    """Relative change other vs base (-0.25 = 25% fewer)."""
    return (other - base) / base if base else 0.0

