"""Modulo list scheduling: the fallback heuristic of the CP-SAT scheduler and the placer of the pipelines.

Given an assignment of tasks to processors and a period, tasks are placed one minibatch at a time, in a
topological order, at the earliest absolute time at which their data has arrived and a gap of the period is free
on their processor (no wrap-around). The in-period offset is that time modulo the period, the lag its quotient.
Placing as soon as possible keeps round trips, and so gradient delays, short.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from hwmodels import Cluster
from schedules.common import (
    assignment_link_load,
    make_schedule,
    pack_back_to_back,
    slot_cycles,
    training_order,
    transfer_cycles,
)
from schedules.options import ListOptions
from spikepipe.ir import Schedule, Slot, TaskGraph

log = logging.getLogger(__name__)


def modulo_place(graph: TaskGraph, cluster: Cluster, assignment: Mapping[str, int], period: int,
                 order: Sequence[str]) -> list[Slot] | None:
    """ASAP modulo placement; None if some task finds no free gap of its length (fragmentation)."""
    free: dict[int, list[tuple[int, int]]] = defaultdict(lambda: [(0, period)])
    abs_end: dict[str, int] = {}
    slots = []
    for tid in order:
        p = assignment[tid]
        d = slot_cycles(graph, cluster, tid, p)
        ready = 0
        for u in graph.predecessors(tid):
            c = transfer_cycles(cluster, assignment[u], p, graph.edge_bytes(u, tid))
            ready = max(ready, abs_end[u] + c)
        t = _earliest(free[p], ready, d, period)
        if t is None:
            return None
        off = t % period
        _reserve(free[p], off, off + d)
        abs_end[tid] = t + d
        slots.append(Slot(tid, p, off, d, lag=t // period))
    return slots


def _earliest(gaps: list[tuple[int, int]], ready: int, d: int, period: int) -> int | None:
    base, off = ready - ready % period, ready % period
    for a, b in gaps:
        st = max(a, off)
        if st + d <= b:
            return base + st
    for a, b in gaps:
        if b - a >= d:
            return base + period + a
    return None


def _reserve(gaps: list[tuple[int, int]], a: int, b: int) -> None:
    for i, (x, y) in enumerate(gaps):
        if x <= a and b <= y:
            new = [g for g in ((x, a), (b, y)) if g[1] > g[0]]
            gaps[i:i + 1] = new
            return
    raise AssertionError("reserved a gap that is not free")


def greedy_assignment(graph: TaskGraph, cluster: Cluster) -> dict[str, int]:
    """Longest task first onto the processor that keeps max(processor load, link load) smallest, preferring the
    processor of a neighbour (fewer transfers) on ties."""
    procs = cluster.size
    load = [0] * procs
    link: dict[tuple[int, int], int] = defaultdict(int)
    assign: dict[str, int] = {}
    tasks = sorted(graph.topological_order(), key=lambda t: -min(slot_cycles(graph, cluster, t, p)
                                                                 for p in range(procs)))
    occ = cluster.interconnect.occupancy_cycles
    for tid in tasks:
        best = None
        for p in range(procs):
            extra: dict[tuple[int, int], int] = defaultdict(int)
            for u in graph.predecessors(tid):
                if u in assign and assign[u] != p and graph.edge_bytes(u, tid) > 0:
                    for lk in cluster.route(assign[u], p):
                        extra[lk] += occ(graph.edge_bytes(u, tid))
            for v in graph.successors(tid):
                if v in assign and assign[v] != p and graph.edge_bytes(tid, v) > 0:
                    for lk in cluster.route(p, assign[v]):
                        extra[lk] += occ(graph.edge_bytes(tid, v))
            worst_link = max((link[lk] + x for lk, x in extra.items()), default=0)
            score = (max(load[p] + slot_cycles(graph, cluster, tid, p), worst_link, max(load)),
                     sum(extra.values()), load[p], p)
            if best is None or score < best[0]:
                best = (score, p, extra)
        _, p, extra = best
        assign[tid] = p
        load[p] += slot_cycles(graph, cluster, tid, p)
        for lk, x in extra.items():
            link[lk] += x
    return assign


def schedule_assignment(name: str, graph: TaskGraph, cluster: Cluster, assignment: Mapping[str, int],
                        info: Mapping[str, Any] | None = None, period: int | None = None) -> Schedule:
    """The best of ASAP modulo placement and back-to-back packing for a fixed assignment, at the smallest period
    the assignment allows (busiest processor or link) unless a period is given."""
    order = training_order(graph)
    back = pack_back_to_back(graph, cluster, assignment, order)
    packed = back.slots
    period = max(period or 0, back.busiest_load_cycles, assignment_link_load(graph, cluster, assignment), 1)
    candidates = [make_schedule(name, "periodic", graph, cluster, packed, period, derive_lags=True,
                                info={**(info or {}), "placement": "back-to-back"})]
    placed = modulo_place(graph, cluster, assignment, period, order)
    if placed is not None:
        candidates.append(make_schedule(name, "periodic", graph, cluster, placed, period, derive_lags=True,
                                        info={**(info or {}), "placement": "modulo-asap"}))
    return min(candidates, key=lambda s: (sum(s.gradient_delays), s.max_lag))


def list_schedule(graph: TaskGraph, cluster: Cluster, options: ListOptions | None = None, **kwargs: Any) -> Schedule:
    """Any task on any processor by a greedy load/link balance, placed by modulo list scheduling."""
    ListOptions.coerce(options, kwargs)  # it takes none: anything given is an error
    assign = greedy_assignment(graph, cluster)
    return schedule_assignment("list", graph, cluster, assign, info={"assignment": "greedy LPT with links"})
