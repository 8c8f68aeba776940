"""Contiguous-stage partitioning by dynamic programming on the real task costs.

Layers are numbered in topological order, so a contiguous range of layers is a pipeline stage. Stage k runs on
processor k (heterogeneous clusters price each stage on its own processor). The DP minimises the busiest stage
(F + B + W of its layers): dp[k][j] = min over i of max(dp[k-1][i], cost_k(i..j)), O(stages * L^2).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate

from hwmodels import Cluster
from schedules.common import slot_cycles
from spikepipe.ir import TaskGraph, task_id


def layer_costs(graph: TaskGraph, cluster: Cluster, processor: int) -> list[int]:
    """F + B + W cycles of every layer on one processor (whole minibatch; F + B for a layer without W)."""
    return [sum(slot_cycles(graph, cluster, task_id(k, layer), processor) for k in graph.kinds(layer))
            for layer in range(graph.num_layers)]


def balance(costs_per_stage: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """Split layers 0..L-1 into len(costs_per_stage) non-empty contiguous ranges [a, b) minimising the largest
    stage cost; costs_per_stage[k][l] is layer l's cost on stage k's processor."""
    stages = len(costs_per_stage)
    n = len(costs_per_stage[0]) if stages else 0
    if stages < 1 or n < stages:
        raise ValueError(f"cannot split {n} layers into {stages} non-empty stages")
    prefix = [[0, *accumulate(c)] for c in costs_per_stage]
    inf = float("inf")
    dp = [[inf] * (n + 1) for _ in range(stages + 1)]
    cut = [[0] * (n + 1) for _ in range(stages + 1)]
    dp[0][0] = 0
    for k in range(1, stages + 1):
        pre = prefix[k - 1]
        for j in range(k, n - (stages - k) + 1):
            best, arg = inf, k - 1
            for i in range(k - 1, j):
                v = max(dp[k - 1][i], pre[j] - pre[i])
                if v < best:
                    best, arg = v, i
            dp[k][j], cut[k][j] = best, arg
    ranges, j = [], n
    for k in range(stages, 0, -1):
        i = cut[k][j]
        ranges.append((i, j))
        j = i
    return ranges[::-1]


def stage_ranges(graph: TaskGraph, cluster: Cluster, stages: int | None = None,
                 processor_of_stage: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """Balanced contiguous stages; at most one per layer and per processor unless processor_of_stage says so."""
    n = graph.num_layers
    k = min(stages or cluster.size, n)
    procs = list(processor_of_stage) if processor_of_stage is not None else list(range(k))
    procs = procs[:k]
    costs = {p: layer_costs(graph, cluster, p) for p in set(procs)}
    return balance([costs[p] for p in procs])


def stage_of_layer(ranges: Sequence[tuple[int, int]]) -> list[int]:
    out = []
    for k, (a, b) in enumerate(ranges):
        out.extend([k] * (b - a))
    return out
