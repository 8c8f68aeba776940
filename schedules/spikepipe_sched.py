"""`spikepipe`: any F, B, W task of any layer on any processor, by CP-SAT in two phases (DESIGN.md section 7).

1. The baselines are built first. The best assignment among the pipeline's contiguous stages and a greedy
   load/link balance is the phase-1 hint, and its period the horizon.
2. Phase 1 minimises the period over assignments (schedules.cpsat_build).
3. Phase 2 fixes that assignment and period (plus an optional reported slack) and minimises the total gradient
   delay over in-period order and lags. Its hint is the best of: per-processor cyclic orders from a seeded
   local search (schedules.order_search), back-to-back packing and modulo list scheduling of the assignment,
   and the slots of every periodic baseline (pipedream, layerpipe) whose period is not longer, with lags
   re-derived. So at an equal period the result never has more total delay than pipedream. Per-layer
   critical-path floors bound the delay (reported as the gap). If phase 2 finds nothing better, the best
   candidate is used; if phase 1 finds nothing, list scheduling is.
4. The result never loses to a pipelining baseline on period: if it would, that baseline is returned
   re-labelled, with the reason in info.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from math import ceil
from typing import Any

from hwmodels import Cluster
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
from schedules.cpsat_build import build_phase1, build_phase2, build_phase2_free
from schedules.cpsat_extract import extract_assignment, extract_free, extract_slots
from schedules.cpsat_solve import solve
from schedules.listsched import greedy_assignment, schedule_assignment
from schedules.order_search import delay_lower_bounds, search_orders
from spikepipe.ir import Schedule, TaskGraph

log = logging.getLogger(__name__)

_OPTIONS = ("time_limit_s", "workers", "seed", "period_slack", "compare", "deterministic", "deterministic_time_s",
            "search_evaluations", "split", "max_parts")
_COMPARE = ("sequential", "gpipe", "1f1b", "interleaved-1f1b", "zero-bubble", "pipedream", "layerpipe")
# share of the time limit phase 1 may use; the rest (minus the baselines' time) goes to phase 2
_PHASE1_SHARE = 0.35
# keep this much of the time limit unused: building models and extracting answers takes wall time too
_MARGIN = 0.1
# deterministic time runs slower than the wall clock on this (shared, 2-core) machine: limit it to this share of
# the wall budget so the wall guard rarely cuts a reproducible search short (info says when it did)
_DET_SHARE = 0.6


def _period_of(graph: TaskGraph, cluster: Cluster, assign: dict[str, int]) -> int:
    _, load = pack_back_to_back(graph, cluster, assign, training_order(graph))
    return max(load, assignment_link_load(graph, cluster, assign))


def _key(s: Schedule) -> tuple[int, int, int]:
    return (s.period_cycles, sum(s.gradient_delays), s.max_lag)


def spikepipe(graph: TaskGraph, cluster: Cluster, **options: Any) -> Schedule:
    """Options: time_limit_s (10), workers (2), seed (0), deterministic (True), deterministic_time_s, period_slack,
    compare, search_evaluations, split (False: intra-layer batch splitting, schedules.split), max_parts."""
    split = bool(options.pop("split", False)) if "split" in options else False
    max_parts = options.pop("max_parts", None)
    whole = _spikepipe_whole(graph, cluster, **options)
    if not split:
        return whole
    from schedules.split import split_schedule

    if max_parts is not None:
        positive_int_option("spikepipe", "max_parts", max_parts)
    t0 = time.perf_counter()
    cut = split_schedule(graph, cluster, seed=int(options.get("seed", 0)), max_parts=max_parts)
    info = {"unsplit_period_cycles": whole.period_cycles, "split_period_cycles": cut.period_cycles,
            "unsplit_total_delay": sum(whole.gradient_delays), "split_s": time.perf_counter() - t0}
    if _key(cut) < _key(whole):
        return replace(cut, info={**whole.info, **cut.info, **info,
                                  "solve_s": whole.info["solve_s"] + info["split_s"]})
    return replace(whole, info={**whole.info, **info, "split": False})


def _spikepipe_whole(graph: TaskGraph, cluster: Cluster, **options: Any) -> Schedule:
    from schedules.registry import get  # late: the registry names this module

    check_options("spikepipe", options, _OPTIONS)
    time_limit = float(options.get("time_limit_s", 10.0))
    workers = int(options.get("workers", 2))
    seed = int(options.get("seed", 0))
    slack = float(options.get("period_slack", 0.0))
    deterministic = bool(options.get("deterministic", True))
    evaluations = int(options.get("search_evaluations", 3000))
    det_total = options.get("deterministic_time_s")  # CP-SAT deterministic time of both phases together
    if time_limit <= 0 or workers < 1 or not 0 <= slack < 1 or evaluations < 0:
        raise ScheduleOptionError("spikepipe: need time_limit_s > 0, workers >= 1, 0 <= period_slack < 1 and "
                                  "search_evaluations >= 0")
    compare = tuple(options.get("compare", _COMPARE))
    t0 = time.perf_counter()
    budget = time_limit * (1 - _MARGIN)

    def solve_for(model, share: float, phase_share: float):
        wall = max(0.05, min(share, budget - (time.perf_counter() - t0)))
        # interleaved workers share one deterministic clock, hence the division by the worker count
        det = (float(det_total) * phase_share if det_total is not None else _DET_SHARE * wall / workers)
        return solve(model, time_limit_s=wall, workers=workers, seed=seed,
                     deterministic_s=det if deterministic else None)

    baselines = {n: get(n)(graph, cluster) for n in compare}
    best_base = min(baselines.values(), key=_key) if baselines else None
    lb = lower_bound(graph, cluster)

    hints = {"greedy": greedy_assignment(graph, cluster)}
    if "pipedream" in baselines:
        hints["stages"] = {s.task: s.processor for s in baselines["pipedream"].slots}
    hint_name, hint = min(hints.items(), key=lambda kv: (_period_of(graph, cluster, kv[1]), kv[0]))
    upper = _period_of(graph, cluster, hint)
    info: dict[str, Any] = {"lower_bound_cycles": lb, "hint": hint_name, "hint_period_cycles": upper,
                            "best_baseline": best_base.name if best_base else None,
                            "best_baseline_period_cycles": best_base.period_cycles if best_base else None,
                            "time_limit_s": time_limit, "workers": workers, "seed": seed,
                            "deterministic": deterministic, "fallback": None}

    p1 = build_phase1(graph, cluster, lb, upper, hint, links=False)
    solver, rep1 = solve_for(p1.model, _PHASE1_SHARE * time_limit, _PHASE1_SHARE)
    if rep1.found:
        assign = extract_assignment(solver, p1)
        if assignment_link_load(graph, cluster, assign) > int(solver.value(p1.period)):
            log.info("spikepipe: a link binds; solving phase 1 again with link capacities")
            p1 = build_phase1(graph, cluster, lb, upper, hint)
            solver, rep1 = solve_for(p1.model, _PHASE1_SHARE * time_limit / 2, _PHASE1_SHARE / 2)
    info["phase1"] = rep1.to_dict()
    info["phase1"]["link_constraints"] = p1.link_constraints
    if rep1.found:
        assign = extract_assignment(solver, p1)
        period = int(solver.value(p1.period))
    else:
        log.warning("spikepipe: phase 1 found no assignment (%s); falling back to list scheduling", rep1.status)
        info["fallback"] = f"phase 1 {rep1.status}: greedy/stage assignment ({hint_name})"
        assign, period = hint, upper
    period = max(period, _period_of(graph, cluster, assign))
    if slack:
        period = int(ceil(period * (1 + slack)))
    info["period_slack"] = slack

    candidates = _candidates(graph, cluster, assign, period, baselines, seed, evaluations)
    best_name, best = min(candidates.items(), key=lambda kv: (_key(kv[1]), kv[0]))
    info["candidates_total_delay"] = {n: sum(s.gradient_delays) for n, s in candidates.items()}
    info["seed_total_delay"] = sum(best.gradient_delays)
    floor = delay_lower_bounds(graph, cluster, period, assign)
    info["delay_lower_bound"] = sum(delay_lower_bounds(graph, cluster, period))
    info["delay_lower_bound_for_assignment"] = sum(floor)
    max_lag = max(s.max_lag for s in candidates.values()) + 1
    free = (cluster.homogeneous_ and cluster.interconnect.topology == "all-to-all" and not p1.link_constraints)
    info["phase2_reassigns"] = free
    if free:  # lexicographic: period fixed, then any processor, offset and lag for the least total delay
        p2 = build_phase2_free(graph, cluster, period, max_lag, list(best.slots),
                               delay_lower_bounds(graph, cluster, period))
    else:
        same_assignment = all(s.processor == assign[s.task] for s in best.slots)
        hint_slots = list(best.slots) if same_assignment else list(candidates["order-search"].slots)
        p2 = build_phase2(graph, cluster, assign, period, max_lag, hint_slots, floor)
    solver2, rep2 = solve_for(p2.model, budget, 1 - _PHASE1_SHARE)
    info["phase2"] = rep2.to_dict()
    sched = replace(best, name="spikepipe")
    info["phase2_source"] = best_name
    if rep2.found:
        slots = (extract_free(solver2, p2, graph, cluster) if free
                 else extract_slots(solver2, p2, graph, cluster, assign))
        cand = make_schedule("spikepipe", "periodic", graph, cluster, slots, period, derive_lags=True)
        if _key(cand) < _key(sched):
            sched, info["phase2_source"] = cand, "cp-sat"
    elif rep2.status != "OPTIMAL":
        info["fallback"] = (info["fallback"] or "") + f"phase 2 {rep2.status}: best seed ({best_name})"

    info["solve_s"] = time.perf_counter() - t0
    # a search the wall clock stopped is not reproducible: say so rather than claim it
    info["reproducible"] = deterministic and all(
        r.wall_s < r.time_limit_s or r.status == "OPTIMAL" for r in (rep1, rep2))
    info["status"] = rep2.status if rep2.found else rep1.status
    info["objective_total_delay"] = sum(sched.gradient_delays)
    info["delay_gap"] = ((info["objective_total_delay"]
                          - info["delay_lower_bound" if free else "delay_lower_bound_for_assignment"])
                         / max(1, info["objective_total_delay"]))
    info["period_gap_to_lower_bound"] = (sched.period_cycles - lb) / sched.period_cycles
    info["period_proven_optimal"] = rep1.status == "OPTIMAL" and not slack
    info["processors_used"] = len({s.processor for s in sched.slots})
    sched = replace(sched, info={**sched.info, **info})
    if best_base is not None and best_base.period_cycles < sched.period_cycles:
        log.warning("spikepipe: %s has a shorter period; returning it", best_base.name)
        return replace(best_base, name="spikepipe",
                       info={**best_base.info, **info, "relabelled_from": best_base.name,
                             "reason": f"{best_base.name} period {best_base.period_cycles} < CP-SAT period "
                                       f"{sched.period_cycles}"})
    return sched


def _candidates(graph: TaskGraph, cluster: Cluster, assign: dict[str, int], period: int,
                baselines: dict[str, Schedule], seed: int, evaluations: int) -> dict[str, Schedule]:
    """Phase-2 seeds at `period`: all valid schedules, compared on (total delay, max lag)."""
    out = {"list": schedule_assignment("spikepipe", graph, cluster, assign, period=period)}
    slots = search_orders(graph, cluster, assign, period, training_order(graph), seed=seed,
                          evaluations=evaluations)
    out["order-search"] = make_schedule("spikepipe", "periodic", graph, cluster, slots, period, derive_lags=True)
    for name, base in baselines.items():
        if base.kind != "periodic" or base.period_cycles > period:
            continue
        # the baseline's placement fits the (not shorter) period; smallest lags give its least delay there
        slots = [replace(s, lag=0) for s in base.slots]
        out[name] = make_schedule("spikepipe", "periodic", graph, cluster, slots, period, derive_lags=True)
    return out
