"""`spikepipe`: any F, B, W task of any layer on any processor, by CP-SAT in two phases (DESIGN.md section 7).

1. The baselines are built first. The best assignment among the pipeline's contiguous stages and a greedy
   load/link balance is the phase-1 hint, and its period the horizon.
2. Phase 1 minimises the period over assignments (schedules.cpsat_build).
3. Phase 2 fixes that assignment and period (plus an optional reported slack) and minimises the total gradient
   delay over in-period order and lags, seeded with the better of back-to-back packing and modulo list
   scheduling. If phase 2 finds nothing, the seed is used; if phase 1 finds nothing, list scheduling is.
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
    training_order,
)
from schedules.listsched import greedy_assignment, schedule_assignment
from spikepipe.ir import Schedule, TaskGraph

log = logging.getLogger(__name__)

_OPTIONS = ("time_limit_s", "workers", "seed", "period_slack", "compare")
_COMPARE = ("sequential", "gpipe", "1f1b", "interleaved-1f1b", "zero-bubble", "pipedream", "layerpipe")


def _period_of(graph: TaskGraph, cluster: Cluster, assign: dict[str, int]) -> int:
    _, load = pack_back_to_back(graph, cluster, assign, training_order(graph))
    return max(load, assignment_link_load(graph, cluster, assign))


def spikepipe(graph: TaskGraph, cluster: Cluster, **options: Any) -> Schedule:
    from schedules.registry import get  # late: the registry names this module

    check_options("spikepipe", options, _OPTIONS)
    time_limit = float(options.get("time_limit_s", 10.0))
    workers = int(options.get("workers", 2))
    seed = int(options.get("seed", 0))
    slack = float(options.get("period_slack", 0.0))
    if time_limit <= 0 or workers < 1 or not 0 <= slack < 1:
        raise ScheduleOptionError("spikepipe: need time_limit_s > 0, workers >= 1 and 0 <= period_slack < 1")
    compare = tuple(options.get("compare", _COMPARE))
    t0 = time.perf_counter()

    baselines = {n: get(n)(graph, cluster) for n in compare}
    best_base = min(baselines.values(), key=lambda s: s.period_cycles) if baselines else None
    lb = lower_bound(graph, cluster)

    hints = {"greedy": greedy_assignment(graph, cluster)}
    if "pipedream" in baselines:
        hints["stages"] = {s.task: s.processor for s in baselines["pipedream"].slots}
    hint_name, hint = min(hints.items(), key=lambda kv: _period_of(graph, cluster, kv[1]))
    upper = _period_of(graph, cluster, hint)
    info: dict[str, Any] = {"lower_bound_cycles": lb, "hint": hint_name, "hint_period_cycles": upper,
                            "best_baseline": best_base.name if best_base else None,
                            "best_baseline_period_cycles": best_base.period_cycles if best_base else None,
                            "time_limit_s": time_limit, "workers": workers, "seed": seed, "fallback": None}

    from schedules.cpsat_build import build_phase1, build_phase2
    from schedules.cpsat_extract import extract_assignment, extract_slots
    from schedules.cpsat_solve import solve

    p1 = build_phase1(graph, cluster, lb, upper, hint)
    solver, rep1 = solve(p1.model, time_limit_s=0.4 * time_limit, workers=workers, seed=seed)
    info["phase1"] = rep1.to_dict()
    info["phase1"]["link_constraints"] = p1.link_constraints
    if rep1.found:
        assign = extract_assignment(solver, p1)
        period = int(solver.value(p1.period))
    else:
        log.warning("spikepipe: phase 1 found no assignment in %.1f s; falling back to list scheduling",
                    0.4 * time_limit)
        info["fallback"] = "phase 1 found nothing in time: greedy assignment, list scheduling"
        assign, period = hint, upper
    period = max(period, _period_of(graph, cluster, assign))
    if slack:
        period = int(ceil(period * (1 + slack)))
    info["period_slack"] = slack

    seed_sched = schedule_assignment("spikepipe", graph, cluster, assign, period=period)
    max_lag = seed_sched.max_lag + 1
    remaining = max(0.05, time_limit - (time.perf_counter() - t0))
    p2 = build_phase2(graph, cluster, assign, period, max_lag, list(seed_sched.slots))
    solver2, rep2 = solve(p2.model, time_limit_s=remaining, workers=workers, seed=seed)
    info["phase2"] = rep2.to_dict()
    info["seed_total_delay"] = sum(seed_sched.gradient_delays)
    sched = seed_sched
    if rep2.found:
        slots = extract_slots(solver2, p2, graph, cluster, assign)
        cand = make_schedule("spikepipe", "periodic", graph, cluster, slots, period, derive_lags=True)
        if sum(cand.gradient_delays) <= sum(seed_sched.gradient_delays):
            sched = cand
    else:
        info["fallback"] = (info["fallback"] or "") + "phase 2 found nothing in time: list-scheduling order"

    info["solve_s"] = time.perf_counter() - t0
    info["status"] = rep2.status if rep2.found else rep1.status
    info["objective_total_delay"] = sum(sched.gradient_delays)
    info["period_gap_to_lower_bound"] = (sched.period_cycles - lb) / sched.period_cycles
    info["processors_used"] = len(set(assign.values()))
    sched = replace(sched, info={**sched.info, **info})
    if best_base is not None and best_base.period_cycles < sched.period_cycles:
        log.warning("spikepipe: %s has a shorter period; returning it", best_base.name)
        return replace(best_base, name="spikepipe",
                       info={**best_base.info, **info, "relabelled_from": best_base.name,
                             "reason": f"{best_base.name} period {best_base.period_cycles} < CP-SAT period "
                                       f"{sched.period_cycles}"})
    return sched
