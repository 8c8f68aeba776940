"""Synthetic task graphs for the scheduler tests: chains and random layer DAGs with skip edges; schedules whose
processors' cyclic orders are cut elsewhere (slots that wrap past the period end)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import replace

from hwmodels import Cluster
from schedules.common import assign_lags
from spikepipe.ir import LayerSpec, Schedule, Task, TaskGraph, TaskKind, chain_graph, slot_lag_delays, task_id


def random_dag(layers: int, seed: int, *, skip_prob: float = 0.3, max_cycles: int = 5000,
               edge_bytes: int = 2048, batch: int = 8) -> TaskGraph:
    """F_i -> F_j for the chain and random skips i < j, mirrored B_j -> B_i, F_last -> B_last, B_l -> W_l."""
    rng = random.Random(seed)
    tasks = [Task(task_id(k, layer), layer, k, cycles=rng.randint(100, max_cycles))
             for layer in range(layers) for k in TaskKind]
    fwd = {(i, i + 1) for i in range(layers - 1)}
    fwd |= {(i, j) for i in range(layers) for j in range(i + 2, layers) if rng.random() < skip_prob}
    edges = []
    for i, j in sorted(fwd):
        b = rng.randint(0, edge_bytes)
        edges += [(f"F{i}", f"F{j}", b), (f"B{j}", f"B{i}", b)]
    edges += [(f"F{layers - 1}", f"B{layers - 1}", 0)] + [(f"B{layer}", f"W{layer}", 0) for layer in range(layers)]
    specs = [LayerSpec(i, f"l{i}", "linear", (1,), (1,)) for i in range(layers)]
    return TaskGraph(specs, tasks, edges, batch=batch, timesteps=1, name=f"dag{layers}s{seed}")


def graphs() -> dict[str, TaskGraph]:
    rng = random.Random(7)
    return {
        "uniform-chain": chain_graph([(3000, 3000, 3000)] * 6, edge_bytes=1024, batch=16),
        "random-chain": chain_graph([(rng.randint(500, 9000), rng.randint(500, 9000), rng.randint(500, 9000))
                                     for _ in range(10)], edge_bytes=4096, batch=32),
        "one-big-layer": chain_graph([(200, 300, 100), (20000, 25000, 15000), (300, 200, 100)], batch=4),
        "skip-dag": random_dag(7, seed=3),
    }


def rotated(schedule: Schedule, graph: TaskGraph, cluster: Cluster, deltas: Mapping[int, int]) -> Schedule:
    """The same cyclic order on every processor with processor p's cut moved by deltas[p] cycles: every slot of p
    starts delta later (start -> (start + delta) mod period, lag += (start + delta) // period, so its absolute
    times shift by delta), and the lags are derived again from there over the schedule's own dependencies (a
    consumer elsewhere may need a later lag; a split schedule keeps its reductions). A slot that straddles the new
    cut wraps past the period end (docs/design.md section 4.2)."""
    period = schedule.period_cycles
    slots = []
    for sl in schedule.slots:
        t = sl.start_cycles + deltas.get(sl.processor, 0)
        slots.append(replace(sl, start_cycles=t % period, lag=sl.lag + t // period))
    slots = list(assign_lags(slots, schedule.dependencies, period, cluster, {sl.id: sl.lag for sl in slots}))
    return replace(schedule, name=f"{schedule.name}-rotated", slots=tuple(slots),
                   gradient_delays=slot_lag_delays(slots, graph.num_layers, period))


def straddle(schedule: Schedule, processor: int, which: float = 1.0) -> int:
    """The delta that makes one slot of `processor` straddle the period end: of its slots by duration (`which` 1.0
    the longest, 0.0 the shortest of those longer than one cycle), the one chosen then starts half its duration
    before the period end."""
    period = schedule.period_cycles
    own = sorted((sl for sl in schedule.slots if sl.processor == processor and sl.duration_cycles > 1),
                 key=lambda sl: (sl.duration_cycles, sl.id))
    sl = own[round(which * (len(own) - 1))]
    return (period - sl.duration_cycles // 2 - sl.start_cycles) % period
