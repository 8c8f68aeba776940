"""The arithmetic each method really executes, split the way the SNN papers count it.

A GEMM with a binary spike operand does accumulates, not multiplies: the forward W.s and the weight gradient
delta.s of a layer whose input is spikes (the rule of docs/design.md section 4: the weight-gradient GEMM reads the
layer's input spikes, the input-gradient GEMM is dense). `executed_counts` gives, for one minibatch of a method as
its trainer runs it (checkpoint segments, Skipper's kept steps, TTL's windows and local classifiers), as the
cost model's spikepipe.costs.OpsSplit:
  macs    real-valued multiply-accumulates (both operands real)
  acs     operations with one binary operand, counted densely (x spike activity for the expected count)
The split is the cost model's one rule (costs.ops_split on each GEMM's `binary_operand`, at activity 1: every
spike operand counted); the counts here follow the trainers' schedules, which a plain task graph does not (TTL's
classifiers run once per window).
"""

from __future__ import annotations

from spikepipe.costs import OpsSplit, ops_split
from spikepipe.ir import Gemm, TaskGraph, TaskKind, task_id
from spikepipe.methods.local import HEAD_POOL, head_features, head_input_shape, partition
from spikepipe.methods.registry import MethodError, MethodOptions, segments

EVERY_SPIKE = 1.0  # activity at which ops_split counts a spike operand's accumulates densely


def _over_steps(gemm: Gemm, steps: int, timesteps: int) -> OpsSplit:
    """The GEMM's MACs and (dense) ACs over `steps` of its `timesteps` steps."""
    split = ops_split(gemm, EVERY_SPIKE)
    return OpsSplit(split.macs * steps // timesteps, int(split.acs) * steps // timesteps)


class _Layers:
    """Per layer of a BPTT task graph: its forward, input-gradient and weight-gradient GEMMs over all T steps."""

    def __init__(self, graph: TaskGraph) -> None:
        self.graph = graph
        self.fwd = [graph.task(task_id(TaskKind.F, i)).gemms for i in range(graph.num_layers)]
        self.igrad = [graph.task(task_id(TaskKind.B, i)).gemms for i in range(graph.num_layers)]
        # a layer without weights has no W task and no weight-gradient GEMM
        self.wgrad = [graph.task(task_id(TaskKind.W, i)).gemms if graph.has_task(i, TaskKind.W) else ()
                      for i in range(graph.num_layers)]

    def layer(self, i: int, fwd_steps: int, bwd_steps: int, igrad: bool = True) -> OpsSplit:
        t = self.graph.timesteps
        out = OpsSplit(0, 0)
        for g in self.fwd[i]:
            out += _over_steps(g, fwd_steps, t)
        for g in self.wgrad[i]:
            out += _over_steps(g, bwd_steps, t)
        if igrad:
            for g in self.igrad[i]:
                out += _over_steps(g, bwd_steps, t)
        return out


def _head(graph: TaskGraph, e: int, steps: int) -> OpsSplit:
    """A local classifier on layer e's output over `steps` steps: forward, input gradient, weight gradient.
    Its input (time mean, 2x2 average pool) is binary only over one step with nothing to pool."""
    shape = head_input_shape(graph.layers[e])
    pooled = len(shape) == 3 and (shape[1] > HEAD_POOL or shape[2] > HEAD_POOL)
    fin = head_features(shape)
    classes = int(graph.layers[-1].output_shape[0])
    binary = "a" if steps == 1 and not pooled and graph.layers[e].neuron is not None else None
    reads = Gemm(graph.batch, fin, classes, "m", binary_operand=binary)  # forward and weight gradient
    dense = Gemm(graph.batch, classes, fin, "m")  # input gradient
    return _over_steps(reads, 1, 1) + _over_steps(dense, 1, 1) + _over_steps(reads, 1, 1)


def executed_counts(graph: TaskGraph, method: MethodOptions) -> OpsSplit:
    """MACs (real-valued multiplies) and ACs (spike-driven accumulates, dense) of one minibatch trained with
    `method` (bptt, checkpoint, skipper, ttl)."""
    layers = _Layers(graph)
    t = graph.timesteps
    n = graph.num_layers
    total = OpsSplit(0, 0)
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
                    total += layers.layer(i, steps, steps, igrad=inside and bool(layers.igrad[i]))
                if b < n:
                    total += _head(graph, b - 1, steps)
        return total
    raise MethodError(f"executed_counts covers bptt, checkpoint, skipper and ttl, not {method.name!r}")


def reduction(base: int, other: int) -> float:
    """Relative change other vs base (-0.25 = 25% fewer)."""
    return (other - base) / base if base else 0.0

