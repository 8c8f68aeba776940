"""Phase 2's neighbourhood search: the tasks of a few processors at a time re-assigned and re-placed by CP-SAT.

At the shortest period every processor is packed to within a few cycles, so the delay is decided by which tasks
share a processor and where each processor's slots sit in the period; one CP-SAT model over all of it (phase 2)
spends its budget without proving or much improving anything, and exchanging tasks between processors with the
order search's moves finds little (experiments/README.md section 3, fifth pass). A window frees the tasks of k
processors: which of those k processors each runs on and its start in the period, with every other slot kept
where it is and every lag free. Such a model is small (a few processors' tasks) and CP-SAT usually solves it to
optimality in a fraction of a deterministic second, so every window is a move that is optimal within its
neighbourhood, and the neighbourhoods of two processors are also those of the partition exchanges.

Windows are visited in a fixed order, in stages (WINDOW_STAGES): every pair of processors briefly, then the
pairs that did not end optimal for longer, then the triples likewise; a stage runs while it improves, and after
a later stage improves the search starts again from the first. A window already solved to optimality on the
current schedule is not solved again. A window's answer is kept only when its derived schedule (lags from the
edges and the replay's link queue, which the model leaves out) is better at the same period. Each solve runs on
one worker within a deterministic limit and the search stops when its deterministic budget is spent, so the
same call gives the same schedule on any machine; the deadline is a guard only (stats say when it cut).

Measured on phase 2's answers at the shortest period, total delay before -> after: vgg11 P=4 17 -> 13 (1.5 s),
vgg11 P=8 39 -> 34 (1.0 s, then no window improves), resnet18 P=8 64 -> 58 (1.5 s) -> 57 (2.5 s); with one
deterministic second per window and 25 s, resnet18 P=8 reaches 51 (experiments/README.md section 3).
Only for homogeneous all-to-all clusters: a transfer then costs the same between any two processors, so one
bool per edge says whether it is paid.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from ortools.sat.python import cp_model

from hwmodels import Cluster
from schedules.common import make_schedule, transfer_cycles
from schedules.cpsat_build import _cyclic_intervals, _delay_vars
from schedules.deadline import Deadline
from schedules.spikepipe_phases import key
from spikepipe.ir import Schedule, TaskGraph

# the stages a window search climbs: (processors per window, deterministic seconds per window), cheapest first.
# Most pair windows end optimal within a few hundredths of a second and a few take seconds (resnet18 P=8: 25 of
# 28 pairs under 0.07 s, one 0.16 s, one 1.4 s, one not optimal at 2 s), so every pair is first tried briefly,
# and only when none of them improves do the unfinished ones get a longer limit; triples follow the same way.
# After a later stage improves, the search starts again from the first. Measured from phase 2's answers
# (resnet18 P=8, 64): one stage of pairs and triples at 0.4 s reaches 59 in 1.5 s and 58 after 1.6 s, still 58
# at 3 s; these stages reach 59 after 0.27 s, 57 after 2.5 s, 56 after 3 s. vgg11 at P=4 and P=8 end where they
# did (13, 34) and stop sooner.
WINDOW_STAGES = ((2, 0.05), (2, 0.4), (3, 0.1), (3, 0.4))


def applies(graph: TaskGraph, cluster: Cluster, sched: Schedule) -> bool:
    """Whole tasks, one slot each, of a periodic schedule on a homogeneous all-to-all cluster of >= 2."""
    return (cluster.size >= 2 and cluster.homogeneous_ and cluster.interconnect.topology == "all-to-all"
            and sched.kind == "periodic" and len(sched.slots) == len(graph.tasks)
            and all(s.part == 0 and s.microbatch == 0 and s.fraction == 1.0 for s in sched.slots))


@dataclass
class _Window:
    model: cp_model.CpModel
    x: dict[tuple[str, int], cp_model.IntVar]
    start: dict[str, cp_model.IntVar]
    free: list[str]


def build_window(graph: TaskGraph, cluster: Cluster, sched: Schedule, procs: Sequence[int],
                 delay_floor: tuple[int, ...] | None = None) -> _Window:
    """The model of one window: the tasks on `procs` free over `procs` (processor and start), every other slot
    fixed, every lag free; minimise the total delay. Hinted with `sched` itself, a solution of the model."""
    period = sched.period_cycles
    m = cp_model.CpModel()
    tasks = list(graph.topological_order())
    by = {s.task: s for s in sched.slots}
    inside = set(procs)
    free = [t for t in tasks if by[t].processor in inside]
    max_lag = sched.max_lag + 2
    dur = {t: by[t].duration_cycles for t in tasks}  # homogeneous: the same on any processor
    x = {(t, p): m.new_bool_var(f"x_{t}_{p}") for t in free for p in procs}
    start: dict[str, Any] = {t: by[t].start_cycles for t in tasks}
    lag = {t: m.new_int_var(0, max_lag, f"r_{t}") for t in tasks}
    ivs: dict[int, list[cp_model.IntervalVar]] = defaultdict(list)
    for t in free:
        start[t] = m.new_int_var(0, period - 1, f"s_{t}")
        m.add_exactly_one(x[t, p] for p in procs)
        for p in procs:
            ivs[p].extend(_cyclic_intervals(m, start[t], dur[t], period, f"{t}_{p}", x[t, p]))
    for p in procs:
        m.add(sum(dur[t] * x[t, p] for t in free) <= period)
        m.add_no_overlap(ivs[p])
    moving = set(free)
    for u, v, b in graph.edges:
        # the transfer the edge pays: as placed when both ends are fixed; always when one end is in the window
        # (the other stays outside it); when both are, only if they end up on two processors
        hop = transfer_cycles(cluster, 0, 1, b)  # homogeneous: any two processors
        paid: Any = transfer_cycles(cluster, by[u].processor, by[v].processor, b)
        if u in moving and v in moving and hop:
            cross = m.new_bool_var(f"c_{u}_{v}")
            for p in procs:  # on one processor unless the edge crosses
                m.add_implication(x[u, p], x[v, p]).only_enforce_if(cross.Not())
            m.add_hint(cross, int(by[u].processor != by[v].processor))
            paid = hop * cross
        elif u in moving or v in moving:
            paid = hop
        m.add(start[v] + period * lag[v] >= start[u] + dur[u] + paid + period * lag[u])
    delay = _delay_vars(m, graph, start, lag, dur, period, max_lag, delay_floor)
    m.add(lag[tasks[0]] == 0)
    for t in tasks:
        m.add_hint(lag[t], by[t].lag)
    for t in free:
        m.add_hint(start[t], by[t].start_cycles)
        for p in procs:
            m.add_hint(x[t, p], int(by[t].processor == p))
    m.minimize(sum(delay))
    return _Window(m, x, start, free)


def _solve_window(graph: TaskGraph, cluster: Cluster, sched: Schedule, procs: Sequence[int],
                  delay_floor: tuple[int, ...] | None, det_s: float, wall_s: float, seed: int,
                  solver: cp_model.CpSolver | None = None) -> tuple[Schedule | None, str, float]:
    """One window solved: (its schedule or None, CP-SAT's status, deterministic seconds used). `solver`: a
    fresh one that another thread may stop (_Ahead)."""
    w = build_window(graph, cluster, sched, procs, delay_floor)
    solver = cp_model.CpSolver() if solver is None else solver
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = seed
    solver.parameters.max_deterministic_time = max(0.001, det_s)
    solver.parameters.max_time_in_seconds = max(0.01, wall_s)
    code = solver.solve(w.model)
    status, used = solver.status_name(code), solver.deterministic_time
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None, status, used
    moved = set(w.free)
    slots = [replace(s, processor=next(p for p in procs if solver.value(w.x[s.task, p])),
                     start_cycles=solver.value(w.start[s.task]), lag=0) if s.task in moved else replace(s, lag=0)
             for s in sched.slots]  # lags derived again below
    cand = make_schedule(sched.name, "periodic", graph, cluster, slots, sched.period_cycles, derive_lags=True)
    return cand, status, used


class _Ahead:
    """Window solves with the next windows started ahead on spare threads, for the same answers sooner.

    The search is sequential: each window is solved on the best schedule so far and its deterministic limit
    depends on what the earlier windows used. While one window runs, the next `workers - 1` windows of the
    stage are solved on the same schedule at the limit they will get if nothing improves before them (CP-SAT
    releases the GIL, and each solve runs on one worker within a deterministic limit, so a window's answer is
    the same whichever thread solves it and whatever else runs). A result is used only when the window comes
    up on the same schedule with the same limit; any other (the schedule improved first, or the budget's end
    cut the limit) is stopped and the window solved again. So the search takes the same steps, and gives the
    same schedule and stats, with any number of workers; only the wall time differs."""

    def __init__(self, graph: TaskGraph, cluster: Cluster, delay_floor: tuple[int, ...] | None, seed: int,
                 workers: int) -> None:
        self.args = (graph, cluster)
        self.floor, self.seed, self.workers = delay_floor, seed, workers
        self.pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
        self.on: Schedule | None = None  # the schedule the running solves are on
        self.running: dict[tuple[tuple[int, ...], float], tuple[Future[Any], cp_model.CpSolver]] = {}

    def solve(self, sched: Schedule, procs: tuple[int, ...], det: float, wall: float,
              ahead: Sequence[tuple[tuple[int, ...], float]]) -> tuple[Schedule | None, str, float]:
        """Window `procs` solved on `sched` within `det` (and the wall guard `wall`); `ahead`: the windows
        expected next, as (procs, limit), which are started on the spare threads."""
        if self.pool is None:
            return _solve_window(*self.args, sched, procs, self.floor, det, wall, self.seed)
        if self.on is not sched:
            self.stop()
            self.on = sched
        wanted = [(procs, det), *ahead[:self.workers - 1]]
        for job in [j for j in self.running if j not in wanted]:  # a guess that missed: its thread is needed
            self._stop(job)
        for job in wanted:
            if job not in self.running:
                solver = cp_model.CpSolver()
                future = self.pool.submit(_solve_window, *self.args, sched, job[0], self.floor, job[1], wall,
                                          self.seed, solver)
                self.running[job] = (future, solver)
        return self.running.pop((procs, det))[0].result()

    def stop(self) -> None:
        """Every solve started ahead and not used: cancelled, or stopped if it runs."""
        for job in list(self.running):
            self._stop(job)

    def _stop(self, job: tuple[tuple[int, ...], float]) -> None:
        future, solver = self.running.pop(job)
        if not future.cancel():
            solver.stop_search()

    def close(self) -> None:
        self.stop()
        if self.pool is not None:
            self.pool.shutdown(wait=True)


def window_search(graph: TaskGraph, cluster: Cluster, sched: Schedule, *, det_budget_s: float | None,
                  deadline: Deadline, delay_floor: tuple[int, ...] | None = None, seed: int = 0,
                  stats: dict[str, Any] | None = None, workers: int = 1) -> Schedule:
    """`sched` improved window by window (module docstring) until no window improves it, `det_budget_s`
    deterministic seconds are spent (None: only the deadline stops it, not reproducible) or the deadline
    passes. stats gets windows solved, improvements, deterministic seconds used and whether the clock cut it.
    `workers`: threads that solve the next windows ahead (_Ahead); the answer does not depend on them."""
    st: dict[str, Any] = stats if stats is not None else {}
    st.update(windows=0, improved=0, det_s=0.0, cut_for_time=False, optimal=0, start_total_delay=None)
    if not applies(graph, cluster, sched):
        st["skipped"] = "needs whole tasks on a homogeneous all-to-all cluster"
        return sched
    st["start_total_delay"] = sum(sched.gradient_delays)
    solves = _Ahead(graph, cluster, delay_floor, seed, max(1, workers))
    try:
        return _climb(cluster, sched, det_budget_s, deadline, st, solves)
    finally:
        solves.close()


def _climb(cluster: Cluster, sched: Schedule, det_budget_s: float | None, deadline: Deadline,
           st: dict[str, Any], solves: _Ahead) -> Schedule:
    """window_search's stages (module docstring)."""
    stages = [stage for stage in WINDOW_STAGES if stage[0] <= cluster.size]
    best, level = sched, 0
    proven: set[tuple[int, ...]] = set()  # windows solved to optimality on `best` without improving it
    while level < len(stages):
        size, limit = stages[level]
        improved = False
        windows = list(itertools.combinations(range(cluster.size), size))
        for n, procs in enumerate(windows):
            if procs in proven:  # the same model again: the same optimum, already rejected
                continue
            left = None if det_budget_s is None else det_budget_s - st["det_s"]
            if left is not None and left <= 1e-3:
                return _done(best, st)
            if deadline.expired():
                st["cut_for_time"] = True
                return _done(best, st)
            det = limit if left is None else min(limit, left)
            ahead = _expected(stages, level, windows[n + 1:], proven, improved, left, cluster.size,
                              solves.workers - 1)
            cand, status, used = solves.solve(best, procs, det, deadline.remaining(), ahead)
            st["windows"] += 1
            st["det_s"] += used
            st["optimal"] += status == "OPTIMAL"
            if cand is not None and key(cand) < key(best):
                best, improved = cand, True
                st["improved"] += 1
                proven.clear()
                if level > 0:  # the cheap windows around the new schedule first
                    break
            elif status == "OPTIMAL":
                proven.add(procs)
        level = 0 if improved and level > 0 else level + (not improved)
    return _done(best, st)


def _expected(stages: Sequence[tuple[int, float]], level: int, rest: Sequence[tuple[int, ...]],
              proven: set[tuple[int, ...]], improved: bool, left: float | None, processors: int,
              count: int) -> list[tuple[tuple[int, ...], float]]:
    """The `count` windows _climb solves next, as (processors, limit), if the one it solves now improves nothing:
    the rest of the stage, then (when the stage has not improved) the next stage's. Each gets its stage's whole
    limit; none is guessed where the budget's end may cut the limit."""
    out: list[tuple[tuple[int, ...], float]] = []
    limit = stages[level][1]
    upcoming = [(w, limit) for w in rest if w not in proven]
    if not improved and level + 1 < len(stages):
        size, limit = stages[level + 1]
        upcoming += [(w, limit) for w in itertools.combinations(range(processors), size)
                     if w not in proven]
    for job in upcoming[:count]:
        if left is not None and left - sum(j[1] for j in out) - job[1] <= 1e-3:
            break
        out.append(job)
    return out


def _done(best: Schedule, st: dict[str, Any]) -> Schedule:
    st["total_delay"] = sum(best.gradient_delays)
    return best


__all__ = ["WINDOW_STAGES", "applies", "build_window", "window_search"]
