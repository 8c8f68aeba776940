"""The phases of the spikepipe scheduler (schedules.spikepipe_sched runs them in order; docs/design.md section 7).

start   the baselines, the bound, the phase-1 hint (the best of stage and greedy assignments) and its period
phase1  CP-SAT: an assignment of whole tasks that minimises the period (again with link capacities if one binds)
seeds   phase 2's candidates at the period: list scheduling, the order search (on phase 1's assignment and on a
        second one at the same period with fewer chain hops: from the full list of fitting partitions when it is
        cheap, schedules.fitting, else CP-SAT's chain model), the periodic baselines re-lagged
phase2  CP-SAT: order and lags for the least total delay, on the best candidate's assignment
polish  the chosen slots' orders searched again with the link waits counted

Each takes the options (schedules.spikepipe_options) and the call's PhaseTimer, which holds the one Deadline of
the call and records the wall time per phase and what was cut for time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from ortools.sat.python import cp_model

from hwmodels import Cluster
from schedules.common import (
    assignment_link_load,
    expected_dependencies,
    lower_bound,
    make_schedule,
    pack_back_to_back,
    slot_cycles,
    training_order,
)
from schedules.cpsat_build import (
    build_chain_assignment,
    build_phase1,
    build_phase2,
    build_phase2_free,
    candidate_processors,
    link_indicator_count,
)
from schedules.cpsat_extract import extract_assignment, extract_slots
from schedules.cpsat_solve import Solved, SolveReport, solve
from schedules.deadline import Deadline
from schedules.delay_bounds import delay_lower_bounds
from schedules.fitting import best_partition
from schedules.listsched import greedy_assignment, schedule_assignment
from schedules.order_search import OrderSearch, polish_slots, search_orders_batch
from schedules.report import BudgetReport
from schedules.spikepipe_baselines import build_baselines
from schedules.spikepipe_options import SpikePipeOptions
from spikepipe.ir import Schedule, Slot, TaskGraph

log = logging.getLogger(__name__)

# share of the time limit phase 1 may use, and the chain assignment (seeds); the rest (minus the baselines'
# time) goes to phase 2
PHASE1_SHARE = 0.35
CHAIN_SHARE = 0.35
# the shares of the deterministic budget (schedules.spikepipe_options.DEFAULT_DETERMINISTIC_S, 8.5 s: 0.7 s each
# for phase 1 and the chain assignment, where they prove or nearly prove their optimum, 2.5 s for the window search
# after the polish (schedules.window_search), the rest, 4.6 s, for phase 2's one model)
PHASE1_DET_SHARE = CHAIN_DET_SHARE = 0.7 / 8.5
WINDOW_DET_SHARE = 2.5 / 8.5
# phase 2 starts from a good seed with its processors packed to within a few cycles of the period: CP-SAT's
# neighbourhood searches and its LP-based full searches spend the deterministic time without improving it. From
# the same seeds at 5 deterministic s, total delay with CP-SAT's default set / no_lp and quick_restart_no_lp /
# no_lp alone: vgg11 P=4 21 / 16 / 16, resnet18 P=4 52 / 46 / 33 (experiments/README.md section 3)
PHASE2_SUBSOLVERS = ("no_lp",)
# the re-assigning model (with period slack) runs CP-SAT's own set
PHASE2_FREE_SUBSOLVERS: tuple[str, ...] | None = None
# a graph of fewer tasks than this gets that fraction of phase 2's deterministic share: small models settle in
# the first second (snn-cnn, 12 tasks, P=2 to 8: the same total delays at 0.6 and 4.6 s, 10 s of wall time
# for the longer)
PHASE2_FULL_SHARE_TASKS = 32
# share of what is left after phase 1 that the order search (phase 2's seed) may use
ORDER_SEARCH_SHARE = 0.4
# keep this much of the time limit unused: building models and extracting answers takes wall time too
MARGIN = 0.1
# deterministic time runs slower than the wall clock on this (shared, 2-core) machine: limit it to this share of
# the wall budget so the wall guard rarely cuts a reproducible search short (info says when it did)
_DET_SHARE = 0.6
# a solve with less wall time than this left is skipped rather than started
MIN_SOLVE_S = 0.02
# above this many task x processor booleans each task gets only some candidate processors: at 600 tasks x 64
# processors the full model takes seconds to build and phase 1 found nothing in 7 s
_MAX_ASSIGNMENT_VARS = 6000
_MIN_CANDIDATES = 4
# the link re-solve's crossing indicators grow with P^2 per edge: above this it is skipped
_MAX_LINK_INDICATORS = 150_000
# share of the time limit kept after phase 2 for the communication tie-break (schedules.colocate)
COLOCATE_SHARE = 0.05
# phase 2's nominal wall time, from which its deterministic limit is set: what a call whose phase 1 used its whole
# share leaves after the chain assignment, the margin, the tie-break and the order search's part
# (0.15 x 0.6 = 0.09 of the limit)
_PHASE2_NOMINAL_SHARE = (1 - PHASE1_SHARE - CHAIN_SHARE - MARGIN - COLOCATE_SHARE) * (1 - ORDER_SEARCH_SHARE)
# the polish (the same moves, from the chosen schedule) gets search_evaluations / this many moves
_POLISH_PER_EVALUATIONS = 2


def key(s: Schedule) -> tuple[int, int, int]:
    """How schedules are compared: period, then total delay, then the largest lag."""
    return (s.period_cycles, sum(s.gradient_delays), s.max_lag)


@dataclass
class PhaseTimer:
    """The call's Deadline, the wall seconds per phase and what was cut for time (becomes info["budget"])."""
    deadline: Deadline
    phases_s: dict[str, float] = field(default_factory=dict)
    baselines_s: dict[str, float] = field(default_factory=dict)  # the "baselines" phase, per baseline
    skipped: list[str] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.phases_s[name] = self.phases_s.get(name, 0.0) + time.perf_counter() - t0

    def left(self) -> float:
        """Seconds until the deadline minus the margin kept for the work after the last phase."""
        return self.deadline.remaining() - MARGIN * self.deadline.limit_s

    def share_of_left(self, share: float) -> Deadline:
        """A deadline `share` of what is left from now."""
        return Deadline.within(max(0.0, self.left()) * share)

    def skip(self, note: str) -> None:
        log.warning("spikepipe: %s (time limit %.3g s)", note, self.deadline.limit_s)
        self.skipped.append(note)

    def report(self) -> BudgetReport:
        return BudgetReport(self.deadline.limit_s, dict(self.phases_s), dict(self.baselines_s),
                            self.deadline.elapsed(), tuple(self.skipped))


def skipped_report(opts: SpikePipeOptions) -> SolveReport:
    return SolveReport("SKIPPED_FOR_TIME", None, None, None, 0.0, opts.workers, opts.seed, 0.0)


@dataclass(frozen=True)
class Solver:
    """Runs one CP-SAT solve within the call's budget."""
    opts: SpikePipeOptions
    timer: PhaseTimer

    def __call__(self, model: cp_model.CpModel, cap_s: float, phase_share: float, reserve_s: float = 0.0,
                 nominal_s: float | None = None, subsolvers: tuple[str, ...] | None = None) -> Solved:
        """Skipped (None) when too little time is left to start a search."""
        o = self.opts
        wall = min(cap_s, self.timer.left() - reserve_s)
        if wall < MIN_SOLVE_S:
            return Solved(None, skipped_report(o))
        # The deterministic limit is a fixed share of the budget, never of the wall time left: that depends on
        # the clock, and two runs would stop their searches at different points (same seed, other schedule). If
        # the wall guard ends a search first, the result says it is not reproducible. Interleaved workers share
        # one deterministic clock, hence the division by the worker count.
        nominal = cap_s if nominal_s is None else min(cap_s, nominal_s)
        det = (o.deterministic_time_s * phase_share if o.deterministic_time_s is not None
               else _DET_SHARE * nominal / o.workers)
        return solve(model, time_limit_s=wall, workers=o.workers, seed=o.seed,
                     deterministic_s=det if o.deterministic else None, subsolvers=subsolvers)


# --- start ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Start:
    baselines: dict[str, Schedule]
    best_base: Schedule | None
    lower_bound_cycles: int
    hint_name: str
    hint: dict[str, int]
    hint_period_cycles: int
    candidates_per_task: int


def period_of(graph: TaskGraph, cluster: Cluster, assign: Mapping[str, int]) -> int:
    load = pack_back_to_back(graph, cluster, assign, training_order(graph)).busiest_load_cycles
    return max(load, assignment_link_load(graph, cluster, assign))


def start(graph: TaskGraph, cluster: Cluster, opts: SpikePipeOptions, timer: PhaseTimer,
          built: dict[str, Schedule]) -> Start:
    """`built`: baselines of this graph and cluster from an earlier solve, reused (the ones built here are added to
    it): a baseline depends on neither the period slack nor the seeds, so the solves of period_slack="auto" and of
    the frontier build each one once."""
    with timer.phase("baselines"):
        baselines = build_baselines(graph, cluster, opts.compare, timer, built)
    best_base = min(baselines.values(), key=key) if baselines else None
    with timer.phase("hints"):
        lb = lower_bound(graph, cluster, (1,))  # CP-SAT places whole tasks: this is the bound of its search
        hints = {"greedy": greedy_assignment(graph, cluster)}
        if "pipedream" in baselines:
            hints["stages"] = {s.task: s.processor for s in baselines["pipedream"].slots}
        periods = {n: period_of(graph, cluster, h) for n, h in hints.items()}
        name = min(hints, key=lambda n: (periods[n], n))
    return Start(baselines, best_base, lb, name, hints[name], periods[name], _candidates_per_task(graph, cluster))


def _candidates_per_task(graph: TaskGraph, cluster: Cluster) -> int:
    n = max(1, len(graph.tasks))
    if n * cluster.size <= _MAX_ASSIGNMENT_VARS:
        return cluster.size
    return min(cluster.size, max(_MIN_CANDIDATES, _MAX_ASSIGNMENT_VARS // n))


# --- phase 1 -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Assignment:
    """Phase 1's answer (or the hint's when phase 1 found nothing better) and how it was found."""
    assign: dict[str, int]
    period_cycles: int
    report: SolveReport
    link_constraints: int
    links_bind: bool
    fallback: str | None


def phase1(graph: TaskGraph, cluster: Cluster, st: Start, timer: PhaseTimer, solver: Solver) -> Assignment:
    limit = timer.deadline.limit_s
    rep, link_constraints, links_bind = skipped_report(solver.opts), 0, False
    assign, period = st.hint, st.hint_period_cycles
    per_task = st.candidates_per_task
    if timer.left() > MIN_SOLVE_S:
        with timer.phase("phase1_build"):
            cands = candidate_processors(graph, cluster, st.hint, per_task) if per_task < cluster.size else None
            p1 = build_phase1(graph, cluster, st.lower_bound_cycles, st.hint_period_cycles, st.hint, links=False,
                              candidates=cands)
        with timer.phase("phase1_solve"):
            solved = solver(p1.model, PHASE1_SHARE * limit, PHASE1_DET_SHARE)
            cp, rep = solved.solver, solved.report
        if rep.found:
            with timer.phase("phase1_extract"):
                assign, period = extract_assignment(cp, p1), int(cp.value(p1.period))
            links_bind = assignment_link_load(graph, cluster, assign) > period
            if links_bind:
                if (link_indicator_count(graph, cluster, cands) > _MAX_LINK_INDICATORS
                        or timer.left() < 2 * MIN_SOLVE_S):
                    timer.skip("phase 1 link re-solve skipped (model too big for the time left); the answer's "
                               "period counts its link load")
                else:
                    log.info("spikepipe: a link binds; solving phase 1 again with link capacities")
                    with timer.phase("phase1_links_build"):
                        p1 = build_phase1(graph, cluster, st.lower_bound_cycles, st.hint_period_cycles, st.hint,
                                          candidates=cands)
                    with timer.phase("phase1_links_solve"):
                        solved = solver(p1.model, PHASE1_SHARE * limit / 2, PHASE1_DET_SHARE / 2)
                        cp, rep_links = solved.solver, solved.report
                    if rep_links.found:
                        rep, link_constraints = rep_links, p1.link_constraints
                        with timer.phase("phase1_extract"):
                            assign, period = extract_assignment(cp, p1), int(cp.value(p1.period))
    else:
        timer.skip("phase 1 skipped")
    fallback = None
    if not rep.found:
        log.warning("spikepipe: phase 1 found no assignment (%s); falling back to list scheduling", rep.status)
        fallback = f"phase 1 {rep.status}: greedy/stage assignment ({st.hint_name})"
        assign, period = st.hint, st.hint_period_cycles
    with timer.phase("hints"):
        period = max(period, period_of(graph, cluster, assign))
    if period > st.hint_period_cycles:  # links the model left out, or a restricted model: the hint is better
        fallback = (f"phase 1 assignment's period {period} (with link load) > the hint's {st.hint_period_cycles}: "
                    f"{st.hint_name} assignment")
        assign, period = st.hint, st.hint_period_cycles
    return Assignment(assign, period, rep, link_constraints, links_bind, fallback)


# --- seeds ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Seeds:
    """Phase 2's candidates at its period, the tight period's ones (with period_slack) and the search's counts."""
    candidates: dict[str, Schedule]
    tight: dict[str, Schedule]
    stats: dict[str, Any]


def seeds(graph: TaskGraph, cluster: Cluster, a: Assignment, period: int, slack: bool,
          baselines: Mapping[str, Schedule], opts: SpikePipeOptions, timer: PhaseTimer, solver: Solver,
          per_task: int, given: Sequence[Schedule] = ()) -> Seeds:
    """With `slack` (period longer than the assignment's) also the tight period's seeds, stretched. Also the
    order search on the chain assignment (chain_assignment), when there is one, and the caller's `given`
    schedules that fit (stretched too, as given-0, given-1, ...)."""
    stats: dict[str, Any] = {}
    tight: dict[str, Schedule] = {}
    chain, chain_name = partition_assignment(graph, cluster, a, period, opts, timer, stats), "partition"
    if chain is None:
        chain, chain_name = chain_assignment(graph, cluster, a, per_task, timer, solver), "chain"
    with timer.phase("order_search"):
        stop = timer.share_of_left(ORDER_SEARCH_SHARE)
        # one batch of searches (their climbs side by side), each with its share of the time
        searches, tight_stats, chain_stats = [], {}, {}
        if slack:
            # seeds found at the tight period stay valid, with their delays, when the period is stretched: the
            # slack can then only cut delay, even when the search at the longer period does worse in its time
            searches.append(OrderSearch(a.assign, a.period_cycles, Deadline.within(stop.remaining() / 3), tight_stats))
            stats["tight_period"] = tight_stats
        own = Deadline.within(stop.remaining() / (3 if slack else 2)) if chain else stop
        searches.append(OrderSearch(a.assign, period, own, stats))
        if chain:
            searches.append(OrderSearch(chain, period, stop, chain_stats))
        found = search_orders_batch(graph, cluster, searches, training_order(graph), seed=opts.seed,
                                    evaluations=opts.search_evaluations, workers=opts.workers)
        if slack:
            tight = _candidates(graph, cluster, a.assign, a.period_cycles, baselines, found.pop(0), tight_stats)
        candidates = _candidates(graph, cluster, a.assign, period, baselines, found.pop(0), stats)
        for name, c in tight.items():
            candidates[f"tight-{name}"] = _stretched(graph, cluster, c, period)
        if chain:
            candidates[f"{chain_name}-order-search"] = make_schedule("spikepipe", "periodic", graph, cluster,
                                                                     found.pop(0), period, derive_lags=True)
            stats[f"{chain_name}_assignment"] = chain_stats
            stats["cut_for_time"] = stats.get("cut_for_time", False) or chain_stats["cut_for_time"]
    for k, g in enumerate(given):
        if _fits(graph, cluster, g, period):
            candidates[f"given-{k}"] = _stretched(graph, cluster, g, period)
        else:
            log.info("spikepipe: given schedule %d (%s) does not fit period %d here; ignored", k, g.name, period)
    if stats.get("cut_for_time"):
        timer.skip(f"order search cut for time after {stats['evaluations']} of {opts.search_evaluations} moves")
    return Seeds(candidates, tight, stats)


def _fits(graph: TaskGraph, cluster: Cluster, s: Schedule, period: int) -> bool:
    """A periodic schedule of whole tasks of this graph, priced on this cluster's processors, within `period`."""
    return (s.kind == "periodic" and s.period_cycles <= period and len(s.slots) == len(graph.tasks)
            and {x.task for x in s.slots} == {t.id for t in graph.tasks}
            and all(x.part == 0 and x.microbatch == 0 and x.fraction == 1.0 and 0 <= x.processor < cluster.size
                    and x.duration_cycles == slot_cycles(graph, cluster, x.task, x.processor) for x in s.slots))


def _stretched(graph: TaskGraph, cluster: Cluster, s: Schedule, period: int) -> Schedule:
    """`s` at the (not shorter) period: in-period starts kept, smallest lags derived again. Every edge that held
    still holds and no delay grows (the lags that held still hold, and ceil(x / period) does not grow)."""
    return make_schedule("spikepipe", "periodic", graph, cluster, [replace(x, lag=0) for x in s.slots], period,
                         derive_lags=True)


def partition_assignment(graph: TaskGraph, cluster: Cluster, a: Assignment, period: int, opts: SpikePipeOptions,
                         timer: PhaseTimer, stats: dict[str, Any]) -> dict[str, int] | None:
    """The second assignment from the full list of partitions that fit phase 1's period (schedules.fitting), when
    that list is cheap: the fewest-hop ones probed by a short order search. None (then the CP-SAT chain model is
    asked) under the same conditions as chain_assignment, or when the listing is refused (schedules.fitting's
    limits: it is small where the period is packed to within a few cycles, the case it is for)."""
    if a.links_bind or a.link_constraints or not a.report.found or cluster.size == 1:
        return None
    found: dict[str, Any] = {}
    with timer.phase("partitions"):
        best = best_partition(graph, cluster, a.period_cycles, period, opts.search_evaluations, opts.seed, found,
                              timer.share_of_left(CHAIN_SHARE), exclude=a.assign, workers=opts.workers)
    stats["partitions"] = found
    if found.get("cut_for_time"):
        timer.skip(f"partition listing or probes cut for time ({found.get('probed', 0)} probed)")
    return best


def chain_assignment(graph: TaskGraph, cluster: Cluster, a: Assignment, per_task: int, timer: PhaseTimer,
                     solver: Solver) -> dict[str, int] | None:
    """A second assignment at phase 1's period with fewer hops of the F/B chain between processors
    (cpsat_build.build_chain_assignment), or None: when a link binds (that model leaves links out), when phase 1
    found nothing, or when the answer is phase 1's own or loads a link past the period."""
    if a.links_bind or a.link_constraints or not a.report.found or cluster.size == 1:
        return None
    with timer.phase("chain_build"):
        cands = candidate_processors(graph, cluster, a.assign, per_task) if per_task < cluster.size else None
        model = build_chain_assignment(graph, cluster, a.period_cycles, a.assign, cands)
    with timer.phase("chain_solve"):
        solved = solver(model.model, CHAIN_SHARE * timer.deadline.limit_s, CHAIN_DET_SHARE)
    if not solved.report.found:
        return None
    chain = extract_assignment(solved.solver, model)
    if chain == dict(a.assign) or period_of(graph, cluster, chain) > a.period_cycles:
        return None
    return chain


def _candidates(graph: TaskGraph, cluster: Cluster, assign: Mapping[str, int], period: int,
                baselines: Mapping[str, Schedule], searched: Sequence[Slot],
                stats: dict[str, Any]) -> dict[str, Schedule]:
    """Phase-2 seeds at `period`: all valid schedules, compared on (total delay, max lag): list scheduling, the
    order search's slots (`searched`) and the periodic baselines that fit. stats gets the time one
    make_schedule took."""
    out = {"list": schedule_assignment("spikepipe", graph, cluster, assign, period=period)}
    t1 = time.perf_counter()
    out["order-search"] = make_schedule("spikepipe", "periodic", graph, cluster, searched, period, derive_lags=True)
    stats["make_schedule_s"] = time.perf_counter() - t1
    for name, base in baselines.items():
        if base.kind != "periodic" or base.period_cycles > period:
            continue
        # the baseline's placement fits the (not shorter) period; smallest lags give its least delay there
        slots = [replace(s, lag=0) for s in base.slots]
        out[name] = make_schedule("spikepipe", "periodic", graph, cluster, slots, period, derive_lags=True)
    return out


# --- phase 2 -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Phase2:
    """Phase 2's result: the best of its answer and the seeds, where it came from and the delay floors."""
    schedule: Schedule
    source: str
    report: SolveReport
    assignment_of: str  # the seed whose assignment phase 2 kept (order-search: phase 1's, chain-...: the chain's)
    floor: tuple[int, ...]  # per layer, for that assignment
    free_floor: tuple[int, ...]  # per layer, for any assignment
    fallback: str | None
    seed_total_delay: int  # of the best seed, phase 2's hint
    # CP-SAT's answer when the replay's link queue (first come first served, which the model does not impose)
    # made it worse than the kept schedule although the model's objective was better: the polish tries it too
    rival: Schedule | None = None


def phase2(graph: TaskGraph, cluster: Cluster, a: Assignment, period: int, sd: Seeds, timer: PhaseTimer,
           solver: Solver, per_task: int) -> Phase2:
    """CP-SAT hinted with the best seed: on its assignment at the shortest period, re-assigning freely when the
    period is longer than phase 1's (period_slack; build_phase2_free). At the shortest period the packing is
    nearly rigid: a re-assigning model found less there (vgg11 P=4: 15 against 14). With slack it is what finds
    the short delays (vgg11 P=4 at slack 0.05: 7, proven optimal, against 13 on the seed's assignment)."""
    limit = timer.deadline.limit_s
    best_name, best = min(sd.candidates.items(), key=lambda kv: (key(kv[1]), kv[0]))
    if len(best.slots) != len(graph.tasks):  # a split seed (more slots than tasks) cannot hint whole tasks
        best_name, best = "order-search", sd.candidates["order-search"]
    assign = {s.task: s.processor for s in best.slots}
    with timer.phase("bounds"):
        free_floor = delay_lower_bounds(graph, cluster, period)
        # re-assigning assumes transfers cost the same between any two processors and no link binds
        free = (period > a.period_cycles and cluster.homogeneous_ and cluster.interconnect.topology == "all-to-all"
                and not a.link_constraints and not a.links_bind)
        floor = free_floor if free else delay_lower_bounds(graph, cluster, period, assign)
    max_lag = max(s.max_lag for s in sd.candidates.values()) + 1
    # extracting and pricing phase 2's answer costs about what pricing one candidate did
    reserve = 2 * sd.stats.get("make_schedule_s", 0.0)
    rep, cp, p2 = skipped_report(solver.opts), None, None
    if timer.left() - reserve > MIN_SOLVE_S:
        with timer.phase("phase2_build"):
            if free:
                cands = candidate_processors(graph, cluster, assign, per_task) if per_task < cluster.size else None
                p2 = build_phase2_free(graph, cluster, period, max_lag, list(best.slots), floor, cands)
            else:
                p2 = build_phase2(graph, cluster, assign, period, max_lag, list(best.slots), floor)
        with timer.phase("phase2_solve"):
            share = ((1 - PHASE1_DET_SHARE - CHAIN_DET_SHARE - WINDOW_DET_SHARE)
                     * min(1.0, len(graph.tasks) / PHASE2_FULL_SHARE_TASKS))
            solved = solver(p2.model, limit, share, reserve + COLOCATE_SHARE * limit, _PHASE2_NOMINAL_SHARE * limit,
                            PHASE2_FREE_SUBSOLVERS if free else PHASE2_SUBSOLVERS)
            cp, rep = solved.solver, solved.report
        if rep.status == "SKIPPED_FOR_TIME":
            timer.skip("phase 2 solve skipped (its model took the time left to build)")
    else:
        timer.skip("phase 2 skipped")
    sched, source, fallback, rival = replace(best, name="spikepipe"), best_name, None, None
    if rep.found:
        with timer.phase("phase2_extract"):
            slots = extract_slots(cp, p2, graph, cluster, assign)
            cand = make_schedule("spikepipe", "periodic", graph, cluster, slots, period, derive_lags=True)
        if key(cand) < key(sched):
            sched, source = cand, "cp-sat"
        elif rep.objective is not None and rep.objective < sum(sched.gradient_delays):
            rival = cand
    elif rep.status != "OPTIMAL":
        fallback = f"phase 2 {rep.status}: best seed ({best_name})"
    return Phase2(sched, source, rep, "re-assigned" if free and source == "cp-sat" else best_name, floor,
                  free_floor, fallback, sum(best.gradient_delays), rival)


# --- polish --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Polished:
    """The schedule after the polish (the given one unless the polish beat it) and the polish's statistics (the
    scheduler report's `polish` entry: evaluations, cut_for_time, improved, ...)."""

    schedule: Schedule
    stats: Mapping[str, Any]


def polish(graph: TaskGraph, cluster: Cluster, sched: Schedule, opts: SpikePipeOptions,
           timer: PhaseTimer) -> Polished:
    """The chosen schedule's per-processor orders searched again with the link waits counted (what the CP-SAT
    model and the seed search leave out); kept only when it is better at the same period."""
    stats: dict[str, Any] = {}
    with timer.phase("polish"):
        deps = expected_dependencies(graph, sched.slots)
        slots = polish_slots(sched.slots, deps, cluster, graph.num_layers, sched.period_cycles, seed=opts.seed,
                             evaluations=opts.search_evaluations // _POLISH_PER_EVALUATIONS,
                             deadline=timer.share_of_left(ORDER_SEARCH_SHARE), stats=stats, workers=opts.workers)
        cand = make_schedule("spikepipe", "periodic", graph, cluster, slots, sched.period_cycles, derive_lags=True)
    stats["improved"] = key(cand) < key(sched)
    if stats["cut_for_time"]:
        timer.skip(f"polish cut for time after {stats['evaluations']} moves")
    return Polished(cand if stats["improved"] else sched, stats)
