"""`spikepipe`: any F, B, W task of any layer on any processor, by CP-SAT in two phases (docs/design.md section 7).

1. The baselines are built first. The best assignment among the pipeline's contiguous stages and a greedy
   load/link balance is the phase-1 hint, and its period the horizon.
2. Phase 1 minimises the period over assignments (schedules.cpsat_build).
3. Phase 2 fixes that assignment and period (or, with period_slack s, a period (1 + s) times longer, seeded
   also by the tight period's candidates stretched into it) and minimises the total gradient
   delay over in-period order and lags. Its hint is the best of: per-processor cyclic orders from a seeded
   local search (schedules.order_search), back-to-back packing and modulo list scheduling of the assignment,
   and the slots of every periodic baseline (pipedream, layerpipe) whose period is not longer, with lags
   re-derived. So at an equal period the result never has more total delay than pipedream. Per-layer
   critical-path floors bound the delay (reported as the gap). If phase 2 finds nothing better, the best
   candidate is used; if phase 1 finds nothing, list scheduling is.
4. The result never loses to a pipelining baseline on period: if it would, that baseline is returned
   re-labelled, with the reason in info. With period_slack the comparison is on delay among baselines within
   the longer period, and a slack that buys no delay over the tight seeds keeps the tight period.

Time: by default the budget is counted in work, not seconds: DEFAULT_DETERMINISTIC_S of CP-SAT deterministic time
(fixed worker count, interleaved workers) and `search_evaluations` order-search moves, so the same call gives the
same schedule on an idle and on a loaded machine; a wall guard of WALL_GUARD_S only stops a runaway call, and
when it cuts anything info["reproducible"] is false and info["wall_guard_fired"] true. An explicit
`time_limit_s` (the CLI's --time-limit) is a wall-clock limit instead, and not reproducible under load: it bounds
the whole call (baselines, model builds, both solves, order search, extraction and,
with split=True, the split path), through one Deadline started at entry that every phase reads. What is cut
for time is said in info["budget"] (seconds per phase, "skipped_for_time" notes): the flush baselines beyond
a share of the limit (the periodic ones, which seed phase 2, are always built), the link re-solve, phase 1 or
2, the order search's remaining moves. With many tasks x processors each task may use only some processors in
the CP-SAT models (info["candidate_processors_per_task"]). Whatever is cut, the schedule stays valid and never
loses to a baseline that was built.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from math import ceil
from typing import Any

from hwmodels import Cluster
from schedules.colocate import colocate
from schedules.common import (
    ScheduleOptionError,
    assignment_link_load,
    check_options,
    lower_bound,
    make_schedule,
    pack_back_to_back,
    positive_int_option,
    training_order,
)
from schedules.cpsat_build import (
    build_phase1,
    build_phase2,
    build_phase2_free,
    candidate_processors,
    link_indicator_count,
)
from schedules.cpsat_extract import extract_assignment, extract_free, extract_slots
from schedules.cpsat_solve import Deadline, SolveReport, solve
from schedules.listsched import greedy_assignment, schedule_assignment
from schedules.order_search import delay_lower_bounds, search_orders
from spikepipe.ir import Schedule, TaskGraph

log = logging.getLogger(__name__)

_OPTIONS = ("time_limit_s", "workers", "seed", "period_slack", "compare", "deterministic", "deterministic_time_s",
            "search_evaluations", "split", "max_parts", "budget_mode")
# the default budget (no time_limit_s): CP-SAT deterministic seconds of both phases together (with the default
# 2 interleaved workers about 10 s of wall time on an idle 2-core machine, phase 1 usually proves its period)...
DEFAULT_DETERMINISTIC_S = 2.0
# ...and a wall-clock guard only a pathological case reaches (if it cuts anything, info says reproducible: false)
WALL_GUARD_S = 300.0
_COMPARE = ("sequential", "gpipe", "1f1b", "interleaved-1f1b", "zero-bubble", "zb-v", "pipedream", "layerpipe")
# cheap periodic baselines, always built whatever the time: phase 2 is seeded from them and the guarantee rests
# on them; the flush ones cost seconds at a few hundred tasks (a whole iteration is replayed per micro-batch count)
_ALWAYS = ("sequential", "pipedream", "layerpipe")
# the other baselines are built only while the call has spent less than this share of its limit...
_BASELINE_SHARE = 0.3
# ...or less than this many seconds, so tiny limits on small graphs still compare with every baseline
_MIN_BASELINE_S = 0.3
# share of the time limit phase 1 may use; the rest (minus the baselines' time) goes to phase 2
_PHASE1_SHARE = 0.35
# share of what is left after phase 1 that the order search (phase 2's seed) may use
_ORDER_SEARCH_SHARE = 0.4
# keep this much of the time limit unused: building models and extracting answers takes wall time too
_MARGIN = 0.1
# deterministic time runs slower than the wall clock on this (shared, 2-core) machine: limit it to this share of
# the wall budget so the wall guard rarely cuts a reproducible search short (info says when it did)
_DET_SHARE = 0.6
# a solve with less wall time than this left is skipped rather than started
_MIN_SOLVE_S = 0.02
# above this many task x processor booleans each task gets only some candidate processors: at 600 tasks x 64
# processors the full model takes seconds to build and phase 1 found nothing in 7 s
_MAX_ASSIGNMENT_VARS = 6000
_MIN_CANDIDATES = 4
# the link re-solve's crossing indicators grow with P^2 per edge: above this it is skipped
_MAX_LINK_INDICATORS = 150_000
# share of the time limit kept after phase 2 for the communication tie-break (schedules.colocate)
_COLOCATE_SHARE = 0.05
# phase 2's nominal wall time, from which its deterministic limit is set: what a call whose phase 1 used its whole
# share leaves after the margin, the tie-break and the order search's part (0.5 x 0.6 = 0.3 of the limit)
_PHASE2_NOMINAL_SHARE = (1 - _PHASE1_SHARE - _MARGIN - _COLOCATE_SHARE) * (1 - _ORDER_SEARCH_SHARE)
# with split=True the unsplit scheduler gets this share of the limit, the split path the rest
_SPLIT_SHARE = 0.6


@dataclass
class _Budget:
    """Wall seconds per phase of one call and what was cut for time; becomes info["budget"]."""
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
        return self.deadline.remaining() - _MARGIN * self.deadline.limit_s

    def skip(self, note: str) -> None:
        log.warning("spikepipe: %s (time limit %.3g s)", note, self.deadline.limit_s)
        self.skipped.append(note)

    def to_dict(self) -> dict[str, Any]:
        phases = {k: round(v, 4) for k, v in self.phases_s.items()}
        return {"time_limit_s": self.deadline.limit_s, "phases_s": phases,
                "baselines_s": {k: round(v, 4) for k, v in self.baselines_s.items()},
                "accounted_s": round(sum(phases.values()), 4), "elapsed_s": round(self.deadline.elapsed(), 4),
                "skipped_for_time": list(self.skipped)}


def _period_of(graph: TaskGraph, cluster: Cluster, assign: dict[str, int]) -> int:
    _, load = pack_back_to_back(graph, cluster, assign, training_order(graph))
    return max(load, assignment_link_load(graph, cluster, assign))


def _key(s: Schedule) -> tuple[int, int, int]:
    return (s.period_cycles, sum(s.gradient_delays), s.max_lag)


def _delay_key(s: Schedule) -> tuple[int, int, int]:
    """With period_slack the user trades period for delay: among schedules within the longer period, least delay
    first."""
    return (sum(s.gradient_delays), s.period_cycles, s.max_lag)


def _skipped_report(workers: int, seed: int) -> SolveReport:
    return SolveReport("SKIPPED_FOR_TIME", None, None, None, 0.0, workers, seed, 0.0)


def spikepipe(graph: TaskGraph, cluster: Cluster, **options: Any) -> Schedule:
    """Options: time_limit_s (the whole call's wall time, split path included; not reproducible under load: by
    default the budget is DEFAULT_DETERMINISTIC_S of CP-SAT deterministic time and search_evaluations moves, under
    a wall guard of WALL_GUARD_S), workers (2), seed (0), deterministic (True), deterministic_time_s,
    period_slack (a fraction, or "auto": the knee over AUTO_SLACKS), compare, search_evaluations, split (False:
    intra-layer batch splitting, schedules.split), max_parts."""
    if options.get("period_slack") == "auto":
        return _auto_slack(graph, cluster, options)
    time_limit = options.get("time_limit_s")
    if time_limit is None:
        # the default budget is counted in CP-SAT's deterministic time and search moves, not in seconds, so the
        # answer does not depend on the machine's load; the wall clock only guards against a runaway call
        options = {"deterministic": True, **options,
                   "deterministic_time_s": options.get("deterministic_time_s", DEFAULT_DETERMINISTIC_S),
                   "budget_mode": "deterministic"}
        time_limit = WALL_GUARD_S
    elif not isinstance(time_limit, (int, float)) or isinstance(time_limit, bool) or not time_limit > 0:
        raise ScheduleOptionError(f"spikepipe: time_limit_s must be a number of seconds > 0, got {time_limit!r}")
    else:
        options = {**options, "budget_mode": "wall-clock"}
    options.pop("time_limit_s", None)
    deadline = Deadline.start(float(time_limit))
    split = bool(options.pop("split", False)) if "split" in options else False
    max_parts = options.pop("max_parts", None)
    if not split:
        return _spikepipe_whole(graph, cluster, _Budget(deadline), **options)
    from schedules.split import split_schedule

    if max_parts is not None:
        positive_int_option("spikepipe", "max_parts", max_parts)
    budget = _Budget(deadline.first(_SPLIT_SHARE))
    whole = _spikepipe_whole(graph, cluster, budget, **options)
    budget.deadline = deadline
    stats: dict[str, Any] = {}
    t0 = time.perf_counter()
    with budget.phase("split"):
        cut = split_schedule(graph, cluster, seed=int(options.get("seed", 0)), max_parts=max_parts,
                             stop_at_s=deadline.end_s - _MARGIN * deadline.limit_s, stats=stats)
    if stats.get("cut_for_time"):
        budget.skip(f"split path cut for time: {stats['split_steps_priced']} of {stats['split_steps']} split "
                    f"steps priced, {stats['evaluations']} of {stats['evaluations_asked']} order moves")
    info = {"unsplit_period_cycles": whole.period_cycles, "split_period_cycles": cut.period_cycles,
            "unsplit_total_delay": sum(whole.gradient_delays), "split_s": time.perf_counter() - t0,
            "split_search": stats, "budget": budget.to_dict()}
    if stats.get("cut_for_time"):
        info["reproducible"] = False
    if _key(cut) < _key(whole):
        return replace(cut, info={**whole.info, **cut.info, **info,
                                  "solve_s": whole.info["solve_s"] + info["split_s"]})
    return replace(whole, info={**whole.info, **info, "split": False})


# the slacks period_slack="auto" solves at; the knee of their period/delay staircase is returned
AUTO_SLACKS = (0.0, 0.02, 0.05, 0.1, 0.2)


def _auto_slack(graph: TaskGraph, cluster: Cluster, options: Mapping[str, Any]) -> Schedule:
    """One full solve per slack of AUTO_SLACKS (each with the whole budget: five times the time), then the knee of
    the monotone staircase of (period, total delay): where more period stops buying much delay."""
    from schedules.pareto import knee, staircase

    runs = {s: spikepipe(graph, cluster, **{**options, "period_slack": s}) for s in AUTO_SLACKS}
    front = staircase(list(runs.items()), lambda kv: (kv[1].period_cycles, sum(kv[1].gradient_delays),
                                                      max(kv[1].gradient_delays, default=0), kv[0]))
    slack, best = front[knee([(s.period_cycles, sum(s.gradient_delays)) for _, s in front])]
    tried = [{"period_slack": s, "period_cycles": x.period_cycles, "total_delay": sum(x.gradient_delays)}
             for s, x in runs.items()]
    return replace(best, info={**best.info, "period_slack_auto": {"picked": slack, "tried": tried}})


def _spikepipe_whole(graph: TaskGraph, cluster: Cluster, budget: _Budget, **options: Any) -> Schedule:
    check_options("spikepipe", options, _OPTIONS)
    time_limit = budget.deadline.limit_s
    mode = options.get("budget_mode", "wall-clock")
    workers = int(options.get("workers", 2))
    seed = int(options.get("seed", 0))
    slack = float(options.get("period_slack", 0.0))
    deterministic = bool(options.get("deterministic", True))
    evaluations = int(options.get("search_evaluations", 3000))
    det_total = options.get("deterministic_time_s")  # CP-SAT deterministic time of both phases together
    if workers < 1 or not 0 <= slack < 1 or evaluations < 0:
        raise ScheduleOptionError("spikepipe: need time_limit_s > 0, workers >= 1, 0 <= period_slack < 1 and "
                                  "search_evaluations >= 0")
    compare = tuple(options.get("compare", _COMPARE))
    t0 = time.perf_counter()

    def solve_for(model, cap_s: float, phase_share: float, reserve_s: float = 0.0, nominal_s: float | None = None):
        """None when too little time is left to start a search."""
        wall = min(cap_s, budget.left() - reserve_s)
        if wall < _MIN_SOLVE_S:
            return None, _skipped_report(workers, seed)
        # The deterministic limit is a fixed share of the time limit, never of the wall time left: that depends on
        # the clock, and two runs would stop their searches at different points (same seed, other schedule). If
        # the wall guard ends a search first, the result says it is not reproducible. Interleaved workers share
        # one deterministic clock, hence the division by the worker count.
        nominal = cap_s if nominal_s is None else min(cap_s, nominal_s)
        det = (float(det_total) * phase_share if det_total is not None else _DET_SHARE * nominal / workers)
        return solve(model, time_limit_s=wall, workers=workers, seed=seed,
                     deterministic_s=det if deterministic else None)

    with budget.phase("baselines"):
        baselines = _baselines(graph, cluster, compare, budget)
    best_base = min(baselines.values(), key=_key) if baselines else None
    with budget.phase("hints"):
        lb = lower_bound(graph, cluster, (1,))  # CP-SAT places whole tasks: this is the bound of its search
        hints = {"greedy": greedy_assignment(graph, cluster)}
        if "pipedream" in baselines:
            hints["stages"] = {s.task: s.processor for s in baselines["pipedream"].slots}
        hint_periods = {n: _period_of(graph, cluster, h) for n, h in hints.items()}
        hint_name = min(hints, key=lambda n: (hint_periods[n], n))
        hint, upper = hints[hint_name], hint_periods[hint_name]
    info: dict[str, Any] = {"lower_bound_cycles": lb, "hint": hint_name, "hint_period_cycles": upper,
                            "best_baseline": best_base.name if best_base else None,
                            "best_baseline_period_cycles": best_base.period_cycles if best_base else None,
                            "baselines_compared": sorted(baselines),
                            "time_limit_s": time_limit, "workers": workers, "seed": seed, "budget_mode": mode,
                            "deterministic_time_s": det_total,
                            "deterministic": deterministic, "fallback": None}
    per_task = _candidates_per_task(graph, cluster)
    info["candidate_processors_per_task"] = per_task
    if per_task < cluster.size:
        info["model_restricted"] = (f"{len(graph.tasks)} tasks x {cluster.size} processors: each task may use "
                                    f"{per_task} processors in the CP-SAT models (its hint's, its neighbours', "
                                    "the least loaded)")

    rep1, link_constraints, links_bind = _skipped_report(workers, seed), 0, False
    assign, period = hint, upper
    if budget.left() > _MIN_SOLVE_S:
        with budget.phase("phase1_build"):
            cands = candidate_processors(graph, cluster, hint, per_task) if per_task < cluster.size else None
            p1 = build_phase1(graph, cluster, lb, upper, hint, links=False, candidates=cands)
        with budget.phase("phase1_solve"):
            solver, rep1 = solve_for(p1.model, _PHASE1_SHARE * time_limit, _PHASE1_SHARE)
        if rep1.found:
            with budget.phase("phase1_extract"):
                assign, period = extract_assignment(solver, p1), int(solver.value(p1.period))
            links_bind = assignment_link_load(graph, cluster, assign) > period
            if links_bind:
                if (link_indicator_count(graph, cluster, cands) > _MAX_LINK_INDICATORS
                        or budget.left() < 2 * _MIN_SOLVE_S):
                    budget.skip("phase 1 link re-solve skipped (model too big for the time left); the answer's "
                                "period counts its link load")
                else:
                    log.info("spikepipe: a link binds; solving phase 1 again with link capacities")
                    with budget.phase("phase1_links_build"):
                        p1 = build_phase1(graph, cluster, lb, upper, hint, candidates=cands)
                    with budget.phase("phase1_links_solve"):
                        solver, rep_links = solve_for(p1.model, _PHASE1_SHARE * time_limit / 2,
                                                      _PHASE1_SHARE / 2)
                    if rep_links.found:
                        rep1 = rep_links
                        link_constraints = p1.link_constraints
                        with budget.phase("phase1_extract"):
                            assign, period = extract_assignment(solver, p1), int(solver.value(p1.period))
    else:
        budget.skip("phase 1 skipped")
    info["phase1"] = rep1.to_dict()
    info["phase1"]["link_constraints"] = link_constraints
    if not rep1.found:
        log.warning("spikepipe: phase 1 found no assignment (%s); falling back to list scheduling", rep1.status)
        info["fallback"] = f"phase 1 {rep1.status}: greedy/stage assignment ({hint_name})"
        assign, period = hint, upper
    with budget.phase("hints"):
        period = max(period, _period_of(graph, cluster, assign))
    if period > upper:  # links the model left out, or a restricted model: the hint is better
        info["fallback"] = (f"phase 1 assignment's period {period} (with link load) > the hint's {upper}: "
                            f"{hint_name} assignment")
        assign, period = hint, upper
    tight = period
    if slack:
        period = int(ceil(period * (1 + slack)))
    info["period_slack"] = slack
    info["period_before_slack_cycles"] = tight

    stats: dict[str, Any] = {}
    with budget.phase("order_search"):
        stop = time.perf_counter() + max(0.0, budget.left()) * _ORDER_SEARCH_SHARE
        if slack:
            # seeds found at the tight period stay valid, with their delays, when the period is stretched: the
            # slack can then only cut delay, even when the search at the longer period does worse in its time
            half = time.perf_counter() + (stop - time.perf_counter()) / 2
            tight_stats: dict[str, Any] = {}
            seeds = _candidates(graph, cluster, assign, tight, baselines, seed, evaluations, half, tight_stats)
            stats["tight_period"] = tight_stats
        candidates = _candidates(graph, cluster, assign, period, baselines, seed, evaluations, stop, stats)
        if slack:
            for name, c in seeds.items():
                candidates[f"tight-{name}"] = make_schedule("spikepipe", "periodic", graph, cluster,
                                                            [replace(x, lag=0) for x in c.slots], period,
                                                            derive_lags=True)
    info["order_search"] = stats
    if stats.get("cut_for_time"):
        budget.skip(f"order search cut for time after {stats['evaluations']} of {evaluations} moves")
    best_name, best = min(candidates.items(), key=lambda kv: (_key(kv[1]), kv[0]))
    info["candidates_total_delay"] = {n: sum(s.gradient_delays) for n, s in candidates.items()}
    info["seed_total_delay"] = sum(best.gradient_delays)
    with budget.phase("bounds"):
        floor = delay_lower_bounds(graph, cluster, period, assign)
        free_floor = delay_lower_bounds(graph, cluster, period)
    info["delay_lower_bound"] = sum(free_floor)
    info["delay_lower_bound_for_assignment"] = sum(floor)
    max_lag = max(s.max_lag for s in candidates.values()) + 1
    # re-assigning freely assumes no link binds (build_phase2_free)
    free = (cluster.homogeneous_ and cluster.interconnect.topology == "all-to-all" and not link_constraints
            and not links_bind)
    info["phase2_reassigns"] = free
    # extracting and pricing phase 2's answer costs about what pricing one candidate did
    reserve = 2 * stats.get("make_schedule_s", 0.0)
    rep2, solver2, p2 = _skipped_report(workers, seed), None, None
    if budget.left() - reserve > _MIN_SOLVE_S:
        with budget.phase("phase2_build"):
            if free:  # lexicographic: period fixed, then any processor, offset and lag for the least delay
                seed_assign = {s.task: s.processor for s in best.slots}
                cands2 = (candidate_processors(graph, cluster, seed_assign, per_task)
                          if per_task < cluster.size else None)
                p2 = build_phase2_free(graph, cluster, period, max_lag, list(best.slots), free_floor,
                                       candidates=cands2)
            else:
                same_assignment = all(s.processor == assign[s.task] for s in best.slots)
                hint_slots = list(best.slots) if same_assignment else list(candidates["order-search"].slots)
                p2 = build_phase2(graph, cluster, assign, period, max_lag, hint_slots, floor)
        with budget.phase("phase2_solve"):
            solver2, rep2 = solve_for(p2.model, time_limit, 1 - _PHASE1_SHARE,
                                      reserve + _COLOCATE_SHARE * time_limit, _PHASE2_NOMINAL_SHARE * time_limit)
        if rep2.status == "SKIPPED_FOR_TIME":
            budget.skip("phase 2 solve skipped (its model took the time left to build)")
    else:
        budget.skip("phase 2 skipped")
    info["phase2"] = rep2.to_dict()
    sched = replace(best, name="spikepipe")
    info["phase2_source"] = best_name
    if rep2.found:
        with budget.phase("phase2_extract"):
            slots = (extract_free(solver2, p2, graph, cluster) if free
                     else extract_slots(solver2, p2, graph, cluster, assign))
            cand = make_schedule("spikepipe", "periodic", graph, cluster, slots, period, derive_lags=True)
        if _key(cand) < _key(sched):
            sched, info["phase2_source"] = cand, "cp-sat"
    elif rep2.status != "OPTIMAL":
        info["fallback"] = "; ".join(x for x in (info["fallback"], f"phase 2 {rep2.status}: best seed ({best_name})") if x)

    if slack:  # a longer period that buys no delay is not worth having
        tight_best = min(seeds.values(), key=_key)
        if sum(tight_best.gradient_delays) <= sum(sched.gradient_delays):
            sched, info["phase2_source"] = replace(tight_best, name="spikepipe"), "tight period (slack cut no delay)"
    info["period_slack_used"] = bool(slack) and sched.period_cycles > tight
    with budget.phase("colocate"):
        sched, moved = colocate(graph, cluster, sched, stop_at=time.perf_counter() + max(0.0, budget.left()))
    info["colocate"] = moved
    if moved["cut_for_time"]:
        budget.skip(f"communication tie-break cut for time after {moved['moves']} moves")

    info["solve_s"] = time.perf_counter() - t0
    # a search the wall clock stopped is not reproducible: say so rather than claim it
    # anything the clock cut (a search stopped, a phase or baseline skipped); a model too big to build is not
    walled = (any(r.wall_s >= r.time_limit_s and r.status != "OPTIMAL" for r in (rep1, rep2))
              or any("too big" not in note for note in budget.skipped))
    if mode == "deterministic":  # size-based cuts (a model too big to build) are the same on every machine
        info["wall_guard_fired"] = walled
        info["reproducible"] = deterministic and not walled
    else:
        info["wall_guard_fired"] = False
        info["reproducible"] = deterministic and not budget.skipped and all(
            r.wall_s < r.time_limit_s or r.status == "OPTIMAL" for r in (rep1, rep2))
    info["status"] = rep2.status if rep2.found else rep1.status
    info["objective_total_delay"] = sum(sched.gradient_delays)
    info["delay_gap"] = ((info["objective_total_delay"]
                          - info["delay_lower_bound" if free else "delay_lower_bound_for_assignment"])
                         / max(1, info["objective_total_delay"]))
    info["period_gap_to_lower_bound"] = (sched.period_cycles - lb) / sched.period_cycles
    info["period_proven_optimal"] = rep1.status == "OPTIMAL" and not slack and per_task >= cluster.size
    info["processors_used"] = len({s.processor for s in sched.slots})
    info["budget"] = budget.to_dict()
    sched = replace(sched, info={**sched.info, **info})
    better = ((best_base.period_cycles <= sched.period_cycles and _delay_key(best_base) < _delay_key(sched))
              if slack and best_base is not None else
              best_base is not None and best_base.period_cycles < sched.period_cycles)
    if better:
        log.warning("spikepipe: %s has a %s; returning it", best_base.name,
                    "smaller delay within the period slack" if slack else "shorter period")
        base_lb = best_base.info["lower_bound_cycles"]
        return replace(best_base, name="spikepipe",
                       info={**best_base.info, **info, "relabelled_from": best_base.name,
                             "lower_bound_cycles": base_lb,
                             "period_gap_to_lower_bound": (best_base.period_cycles - base_lb) / best_base.period_cycles,
                             "reason": f"{best_base.name} period {best_base.period_cycles}, total delay "
                                       f"{sum(best_base.gradient_delays)} beats CP-SAT's period "
                                       f"{sched.period_cycles}, total delay {sum(sched.gradient_delays)}"})
    return sched


def _baselines(graph: TaskGraph, cluster: Cluster, compare: Sequence[str], budget: _Budget) -> dict[str, Schedule]:
    """The periodic baselines always; the others, cheapest kinds first, while the time spent stays under
    max(_BASELINE_SHARE of the limit, _MIN_BASELINE_S) even if the next one takes as long as the longest so far."""
    from schedules.registry import get  # late: the registry names this module

    allowance = max(_BASELINE_SHARE * budget.deadline.limit_s, _MIN_BASELINE_S)
    out, longest = {}, 0.0
    skipped = []
    for name in sorted(compare, key=lambda n: (n not in _ALWAYS, _COMPARE.index(n) if n in _COMPARE else 99)):
        if name not in _ALWAYS and budget.deadline.elapsed() + longest > allowance:
            skipped.append(name)
            continue
        t0 = time.perf_counter()
        out[name] = get(name)(graph, cluster)
        took = time.perf_counter() - t0
        budget.baselines_s[name] = took
        longest = max(longest, took)
    if skipped:
        budget.skip(f"baselines not built (the result is compared only with the others): {', '.join(skipped)}")
    return out


def _candidates_per_task(graph: TaskGraph, cluster: Cluster) -> int:
    n = max(1, len(graph.tasks))
    if n * cluster.size <= _MAX_ASSIGNMENT_VARS:
        return cluster.size
    return min(cluster.size, max(_MIN_CANDIDATES, _MAX_ASSIGNMENT_VARS // n))


def _candidates(graph: TaskGraph, cluster: Cluster, assign: Mapping[str, int], period: int,
                baselines: dict[str, Schedule], seed: int, evaluations: int, stop_at_s: float,
                stats: dict[str, Any]) -> dict[str, Schedule]:
    """Phase-2 seeds at `period`: all valid schedules, compared on (total delay, max lag). The order search
    stops at `stop_at_s`; stats gets its counts and the time one make_schedule took."""
    t0 = time.perf_counter()
    out = {"list": schedule_assignment("spikepipe", graph, cluster, assign, period=period)}
    slots = search_orders(graph, cluster, assign, period, training_order(graph), seed=seed,
                          evaluations=evaluations, stop_at_s=stop_at_s, stats=stats)
    t1 = time.perf_counter()
    out["order-search"] = make_schedule("spikepipe", "periodic", graph, cluster, slots, period, derive_lags=True)
    stats["make_schedule_s"] = time.perf_counter() - t1
    for name, base in baselines.items():
        if base.kind != "periodic" or base.period_cycles > period:
            continue
        # the baseline's placement fits the (not shorter) period; smallest lags give its least delay there
        slots = [replace(s, lag=0) for s in base.slots]
        out[name] = make_schedule("spikepipe", "periodic", graph, cluster, slots, period, derive_lags=True)
    stats["seconds"] = time.perf_counter() - t0
    return out
