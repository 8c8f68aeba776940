"""Tie-break on communication: move a periodic schedule's slots next to their data without costing period or delay.

Phase 1 minimises the period and phase 2 the total gradient delay; neither looks at how many bytes cross links, so
among the many equally good placements they often put W_l on another processor than B_l and ship dY_l across
(vgg11 at P=8: 54 MB per iteration). This pass moves one slot at a time to the processor of a neighbour it exchanges
data with, into an idle gap there (at its old offset if free, else at the gap ends nearest to it). Lags are derived again from the new offsets and
transfer times, and a move is kept only if the period holds, no link carries more than a period's load, the total
delay does not rise and fewer bytes cross: communication is the third key after period and delay.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hwmodels import Cluster
from schedules.common import assignment_link_load, make_schedule, slot_cycles
from schedules.deadline import Deadline
from spikepipe.ir import Schedule, ScheduleError, Slot, TaskGraph


def crossing_bytes(graph: TaskGraph, assignment: Mapping[str, int]) -> int:
    """Bytes per iteration on edges whose ends sit on different processors."""
    return sum(b for u, v, b in graph.edges if assignment[u] != assignment[v])


def _starts(busy: list[tuple[int, int]], period: int, want: int, dur: int, most: int = 3) -> list[int]:
    """Offsets where a slot of `dur` cycles fits on a processor busy in `busy` (disjoint in-period intervals,
    Slot.pieces), nearest to `want` first: `want` itself if free, else the ends of each idle gap (the nearer the
    old offset, the likelier the delays hold). The slot is placed inside one gap, never wrapping: a gap across the
    period end is not used (conservative; the moves are a tie-break)."""
    edges = [0, *sorted(x for iv in busy for x in iv), period]
    gaps = [(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= dur]
    found = set()
    for a, b in gaps:
        found.add(min(max(want, a), b - dur))  # want, or the gap end nearest to it
        found.update((a, b - dur))
    return sorted(found, key=lambda x: (abs(x - want), x))[:most]


@dataclass(frozen=True)
class Colocated:
    """The schedule after the tie-break and what it did (the scheduler report's `colocate` entry)."""

    schedule: Schedule
    report: Mapping[str, Any]  # cross_bytes_before, cross_bytes_after, moves, tried, cut_for_time


def colocate(graph: TaskGraph, cluster: Cluster, sched: Schedule, deadline: Deadline) -> Colocated:
    """Greedy moves until none helps or the deadline passes. Returns the schedule and a report."""
    whole = all(s.part == 0 and s.microbatch == 0 and s.fraction == 1.0 for s in sched.slots)
    assign = {s.task: s.processor for s in sched.slots}
    before = crossing_bytes(graph, assign)
    report = {"cross_bytes_before": before, "cross_bytes_after": before, "moves": 0, "tried": 0,
              "cut_for_time": False}
    if sched.kind != "periodic" or not whole or len(assign) != len(sched.slots) or cluster.size == 1:
        return Colocated(sched, report)
    neighbours: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for u, v, b in graph.edges:
        if b > 0:
            neighbours[u].append((v, b))
            neighbours[v].append((u, b))
    key = (sched.period_cycles, sum(sched.gradient_delays))
    improved = True
    while improved:
        improved = False
        busy: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for s in sched.slots:  # a slot that wraps past the period end is busy at the period's end and start
            busy[s.processor].extend(s.pieces(sched.period_cycles))
        # biggest savings first: tasks whose crossing edges carry the most bytes
        order = sorted(assign, key=lambda t: -sum(b for n, b in neighbours[t] if assign[n] != assign[t]))
        for task in order:
            here = assign[task]
            cost_here = sum(b for n, b in neighbours[task] if assign[n] != here)
            if cost_here == 0:
                continue
            slot = next(s for s in sched.slots if s.task == task)
            gains = []
            for q in {assign[n] for n, _ in neighbours[task]} - {here}:
                cost_q = sum(b for n, b in neighbours[task] if assign[n] != q)
                dur = slot_cycles(graph, cluster, task, q)
                if cost_q < cost_here:
                    gains.extend((cost_q, abs(x - slot.start_cycles), q, x, dur)
                                 for x in _starts(busy[q], sched.period_cycles, slot.start_cycles, dur))
            for _, _, q, start, dur in sorted(gains):
                if deadline.expired():
                    report["cut_for_time"] = True
                    return Colocated(sched, report)
                report["tried"] += 1
                trial = {**assign, task: q}
                if assignment_link_load(graph, cluster, trial) > sched.period_cycles:
                    continue
                moved = Slot(task, q, start, dur)
                slots = [moved if s.task == task else Slot(s.task, s.processor, s.start_cycles, s.duration_cycles)
                         for s in sched.slots]
                try:
                    cand = make_schedule(sched.name, "periodic", graph, cluster, slots, sched.period_cycles,
                                         info=sched.info, derive_lags=True)
                except ScheduleError:
                    continue
                if (cand.period_cycles, sum(cand.gradient_delays)) <= key:
                    sched, assign, improved = cand, trial, True
                    key = (cand.period_cycles, sum(cand.gradient_delays))
                    report["moves"] += 1
                    break
            if improved:
                break
    report["cross_bytes_after"] = crossing_bytes(graph, assign)
    return Colocated(sched, report)
