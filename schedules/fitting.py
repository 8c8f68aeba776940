"""Every partition of whole tasks over P interchangeable processors whose loads fit a period, listed in full when
that is cheap, and the partitions a phase-2 seed is best started from (schedules.spikepipe_phases.seeds).

Why: at the shortest period every processor is full to within a few cycles (vgg11 at P=4: 59 idle cycles in all,
out of 8.27 M), so the assignments that fit are rare exact fits. Which of them the scheduler starts from decides
the delay: on vgg11 P=4 the CP-SAT chain model (fewest F/B chain hops, cpsat_build.build_chain_assignment) stops
at 12 hops within its budget, while 12 partitions with 8 hops exist, one of which reaches a total delay of 11
(experiments/README.md section 3, eleventh pass). A depth-first search over the tasks does not finish at P=4 in
15 minutes; the listing here takes a quarter of a second.

How (exact): with idle I = P x period - work, each processor's idle is at least 0, so each is at most I, and every
processor's task set is a *bin*: a subset with load in [period - I, period]. The bins are found by meet in the
middle (all subset sums of the bigger half of the tasks against the sorted subset sums of the other half). A
partition is then P - 1 disjoint bins, each holding the lowest-numbered task not yet covered (so each partition
comes once, labelled in order of its biggest task), with idle adding up to at most I: the last processor takes
the rest, whose load is period - (I - the idle so far) <= period, so it always fits.

The listing is refused (None) rather than cut when it would be big (more than MAX_TASKS tasks, MAX_BINS bins,
max_nodes search nodes or MAX_PARTITIONS partitions), so what it returns is always every partition, and the
same on any machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwmodels import Cluster
from schedules.common import assignment_link_load, make_schedule, slot_cycles, training_order
from schedules.deadline import Deadline
from schedules.order_search import search_orders
from schedules.workers import run_jobs
from spikepipe.ir import TaskGraph, TaskKind

# meet in the middle holds 2^(n/2) subset sums per half: 1 M int64 values each at 40 tasks
MAX_TASKS = 40
MAX_BINS = 400_000
# search nodes (one per bin tried) and partitions. vgg11 at P=4's shortest period: 23,778 bins, 50,050 nodes, 16,583
# partitions (0.4 s); at P=8: 73,062 bins, 244,141 nodes for 528 partitions (2.9 s). A refusal by nodes costs
# 10 to 30 us a node, and the scheduler lists at every solve (each frontier point): so its default stops at
# 100,000 (vgg11 P=8's probes gave no better seed than CP-SAT's chain model there anyway); the proof script
# (experiments/schedulers/no_schedule.py) asks for more
MAX_NODES = 100_000
MAX_PARTITIONS = 100_000
# best_partition: the fewest-hop partitions given a short order search each, with search_evaluations / PROBE_SHARE
# moves; the chosen one then gets the caller's full search. On vgg11 P=4 the 12 partitions with 8 hops score 14
# to 18 at 300 moves, and the one at 14 reaches 11 at 3,000 (experiments/README.md section 3, eleventh pass)
PROBES = 16
PROBE_SHARE = 10


def _subset_sums(sizes: np.ndarray) -> np.ndarray:
    """Sums of every subset, index = bitmask of the subset (bit j: sizes[j])."""
    out = np.zeros(1, dtype=np.int64)
    for x in sizes:
        out = np.concatenate([out, out + x])
    return out


def _lowest_bit(masks: np.ndarray) -> np.ndarray:
    low = masks & -masks
    return np.rint(np.log2(low.astype(np.float64))).astype(np.int64)  # exact: powers of two below 2^53


@dataclass(frozen=True)
class Bins:
    """Every non-empty subset of the tasks (bit k: the k-th task) whose load fits a period within `idle` cycles,
    and the idle cycles each leaves."""
    masks: np.ndarray
    idle_cycles: np.ndarray


def fitting_bins(size: Sequence[int], period: int, idle: int) -> Bins | None:
    """The subsets with load in [period - idle, period]; None when more than MAX_BINS."""
    n = len(size)
    h = (n + 1) // 2
    s = np.asarray(size, dtype=np.int64)
    a, b = _subset_sums(s[:h]), _subset_sums(s[h:])
    order = np.argsort(b, kind="stable")
    bs = b[order]
    lo = np.searchsorted(bs, period - idle - a, "left")
    hi = np.searchsorted(bs, period - a, "right")
    counts = hi - lo
    total = int(counts.sum())
    if total > MAX_BINS:
        return None
    ai = np.repeat(np.arange(len(a), dtype=np.int64), counts)
    # position of each bin's second half in bs: lo of its first half, plus its rank among that first half's
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    pos = np.repeat(lo, counts) + within
    masks = ai | (order[pos].astype(np.int64) << h)
    keep = masks != 0  # an empty processor is no bin: the partitions leave it out (fitting_partitions)
    return Bins(masks[keep], (period - (a[ai] + bs[pos]))[keep])


def fitting_partitions(sizes: Mapping[str, int], processors: int, period: int,
                       deadline: Deadline | None = None, *, max_nodes: int = MAX_NODES) -> list[dict[str, int]] | None:
    """Every partition of the tasks into at most `processors` loads of at most `period` cycles, once each, as
    task -> processor (processor 0 holds the biggest task, 1 the biggest of the rest, ...); None when the
    listing would exceed the limits above, or when `deadline` (a wall-clock limit) expires first."""
    tasks = sorted(sizes, key=lambda t: (-sizes[t], t))
    n = len(tasks)
    size = [sizes[t] for t in tasks]
    idle = processors * period - sum(size)
    if idle < 0 or (size and size[0] > period) or processors < 1:
        return []
    if n > MAX_TASKS:
        return None
    if n == 0:
        return [{}]
    found = fitting_bins(size, period, idle)
    if found is None:
        return None
    masks, idles = found.masks, found.idle_cycles
    low = _lowest_bit(masks)
    by_low = {k: (masks[low == k], idles[low == k]) for k in range(n)}
    out: list[tuple[int, ...]] = []
    nodes = 0

    def place(rest: int, chosen: tuple[int, ...], spare: int) -> bool:
        nonlocal nodes
        if rest == 0:
            out.append(chosen)
            return len(out) <= MAX_PARTITIONS
        if len(chosen) == processors - 1:
            out.append((*chosen, rest))  # the rest fits: its idle is `spare` >= 0 (module docstring)
            return len(out) <= MAX_PARTITIONS
        cand, cidle = by_low[(rest & -rest).bit_length() - 1]
        ok = ((cand & ~rest) == 0) & (cidle <= spare)
        for m, i in zip(cand[ok].tolist(), cidle[ok].tolist(), strict=True):
            nodes += 1
            if nodes > max_nodes or (deadline is not None and nodes % 1024 == 0 and deadline.expired()):
                return False
            if not place(rest ^ m, (*chosen, m), spare - i):
                return False
        return True

    if not place((1 << n) - 1, (), idle):
        return None
    result = []
    for part in out:
        assign = {}
        for p, m in enumerate(part):
            for k in range(n):
                if m >> k & 1:
                    assign[tasks[k]] = p
        result.append(assign)
    return result


def chain_hops(graph: TaskGraph, assign: Mapping[str, int]) -> int:
    """Edges into an F or B task (one minibatch's chain) whose ends are on different processors."""
    return sum(assign[u] != assign[v] for u, v, _ in graph.edges if graph.task(v).kind is not TaskKind.W)


def blocks(assign: Mapping[str, int]) -> frozenset[frozenset[str]]:
    """The partition of an assignment, processor labels forgotten (they are interchangeable here)."""
    by: dict[int, set[str]] = {}
    for t, p in assign.items():
        by.setdefault(p, set()).add(t)
    return frozenset(frozenset(b) for b in by.values())


def best_partition(graph: TaskGraph, cluster: Cluster, period: int, search_period: int, evaluations: int,
                   seed: int, stats: dict[str, Any], deadline: Deadline | None = None,
                   exclude: Mapping[str, int] | None = None, workers: int = 1) -> dict[str, int] | None:
    """Among every partition that fits `period` (and loads no link past it) other than `exclude`'s (the
    caller searches that one already), the one of the PROBES with the fewest chain hops whose short order
    search at `search_period` gives the least (total delay, largest lag); None when the processors are not
    interchangeable (heterogeneous or not all-to-all) or the listing is refused. Counted in moves, so the same
    on any machine; `deadline` (the caller's wall-clock limit or guard) cuts the listing and the probes, and
    stats["cut_for_time"] says so. `stats` gets what was listed and probed. The probes are independent:
    `workers` processes run them (schedules.workers), with the same answer as one."""
    if cluster.size < 2 or not cluster.homogeneous_ or cluster.interconnect.topology != "all-to-all":
        return None
    order = graph.topological_order()
    parts = fitting_partitions({t: slot_cycles(graph, cluster, t, 0) for t in order}, cluster.size, period,
                               deadline)
    stats["listed"] = None if parts is None else len(parts)
    stats["cut_for_time"] = deadline is not None and deadline.expired()
    if not parts:
        return None
    hops = [chain_hops(graph, a) for a in parts]
    # partitions that place the F/B chain alike and differ only in where W tasks go (equal-sized W tasks
    # swapped: vgg11 P=4's twelve 8-hop partitions are three chain placements, four ways each) come after one
    # of each, so the probes see more placements of the chain
    chain = [t for t in order if graph.task(t).kind is not TaskKind.W]
    seen: dict[frozenset[frozenset[str]], int] = {}
    repeat = []
    for a in parts:
        k = blocks({t: a[t] for t in chain})
        repeat.append(seen.get(k, 0))
        seen[k] = repeat[-1] + 1
    skip = blocks(exclude) if exclude is not None else None
    probes: list[int] = []
    for i in sorted(range(len(parts)), key=lambda i: (hops[i], repeat[i], i)):
        if len(probes) == PROBES:
            break
        if assignment_link_load(graph, cluster, parts[i]) <= period and blocks(parts[i]) != skip:
            probes.append(i)
    moves = max(1, evaluations // PROBE_SHARE)
    probe = _Probe(graph, cluster, search_period, seed, moves, deadline)
    scored = []
    for score in run_jobs(probe, [parts[i] for i in probes], workers):  # as one worker: up to the first cut
        if score is None:
            break
        scored.append((*score, probes[len(scored)]))
    if deadline is not None and deadline.expired():  # probes skipped, or the last one's search cut
        stats["cut_for_time"] = True
    if not scored:
        return None
    total, _, best = min(scored)
    stats.update(probed=len(scored), probe_moves=moves, fewest_hops=hops[probes[0]], chosen_hops=hops[best],
                 chosen_probe_total_delay=total)
    return parts[best]


@dataclass(frozen=True)
class _Probe:
    """One probe of best_partition as a job for another process: assignment -> (total delay, largest lag) of
    its short order search, or None when the deadline has passed."""
    graph: TaskGraph
    cluster: Cluster
    period: int
    seed: int
    moves: int
    deadline: Deadline | None

    def __call__(self, assignment: dict[str, int]) -> tuple[int, int] | None:
        if self.deadline is not None and self.deadline.expired():
            return None
        g, c = self.graph, self.cluster
        slots = search_orders(g, c, assignment, self.period, training_order(g), seed=self.seed,
                              evaluations=self.moves, deadline=self.deadline)
        s = make_schedule("spikepipe", "periodic", g, c, slots, self.period, derive_lags=True)
        return sum(s.gradient_delays), s.max_lag
