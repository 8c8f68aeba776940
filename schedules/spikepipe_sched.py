"""`spikepipe`: any F, B, W task of any layer on any processor, by CP-SAT in two phases (docs/design.md section 7).
The phases are in schedules.spikepipe_phases, the options in schedules.spikepipe_options, the report that
becomes Schedule.info in schedules.report.

1. The baselines are built first. The best assignment among the pipeline's contiguous stages and a greedy
   load/link balance is the phase-1 hint, and its period the horizon.
2. Phase 1 minimises the period over assignments (schedules.cpsat_build).
3. Phase 2 fixes that assignment and period (or, with period_slack s, a period (1 + s) times longer, seeded
   also by the tight period's candidates stretched into it) and minimises the total gradient
   delay over in-period order and lags. Its hint is the best of: per-processor cyclic orders from a seeded
   local search (schedules.order_search), back-to-back packing and modulo list scheduling of the assignment,
   and the slots of every periodic baseline (pipedream, layerpipe) whose period is not longer, with lags
   re-derived, and any schedules the caller gives (`seeds`, stretched likewise; the frontier and
   period_slack="auto" give the least-delay schedule of their shorter periods). So at an equal period the result
   never has more total delay than pipedream, nor than a given seed. Per-layer
   critical-path floors bound the delay (reported as the gap). If phase 2 finds nothing better, the best
   candidate is used; if phase 1 finds nothing, list scheduling is.
   Phase 2 runs CP-SAT's no_lp search alone (schedules.spikepipe_phases.PHASE2_SUBSOLVERS). A polish then
   searches the chosen slots' per-processor orders again with the replay's first-come-first-served link queue
   in every score, which the CP-SAT model does not impose (schedules.order_search.polish_slots); when that queue
   made CP-SAT's answer worse than the kept schedule although its objective was better, that answer is polished
   too and the better of the two kept. Last, the window search (schedules.window_search) re-solves the tasks of
   two, then three processors at a time (processor and start free, every other slot kept, every lag free) while
   its share of the budget lasts, keeping each answer that is better after the replay's link queue.
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
from collections.abc import Mapping, Sequence
from dataclasses import replace
from math import ceil
from typing import Any

from hwmodels import Cluster
from schedules import spikepipe_phases as ph
from schedules.colocate import colocate
from schedules.deadline import Deadline
from schedules.delay_bounds import delay_lower_bounds
from schedules.report import Relabel, SchedulerReport
from schedules.spikepipe_options import DEFAULT_DETERMINISTIC_S, WALL_GUARD_S, SpikePipeOptions
from schedules.window_search import window_search
from spikepipe.ir import Schedule, TaskGraph

__all__ = ["AUTO_SLACKS", "DEFAULT_DETERMINISTIC_S", "WALL_GUARD_S", "SpikePipeOptions", "spikepipe"]

log = logging.getLogger(__name__)

# with split=True the unsplit scheduler gets this share of the limit, the split path the rest
_SPLIT_SHARE = 0.6
# the slacks period_slack="auto" solves at; the knee of their period/delay staircase is returned
AUTO_SLACKS = (0.0, 0.02, 0.05, 0.1, 0.2)
_key = ph.key
# share of the wall time left that the window search may use when a wall-clock limit is given
_WINDOW_SHARE = 0.3


def _delay_key(s: Schedule) -> tuple[int, int, int]:
    """With period_slack the user trades period for delay: among schedules within the longer period, least delay
    first."""
    return (sum(s.gradient_delays), s.period_cycles, s.max_lag)


def spikepipe(graph: TaskGraph, cluster: Cluster, options: SpikePipeOptions | None = None, *,
              seeds: Sequence[Schedule] = (), baselines: dict[str, Schedule] | None = None,
              **keywords: Any) -> Schedule:
    """Options: a schedules.spikepipe_options.SpikePipeOptions, or its fields as keywords (validated here, once).
    `seeds`: schedules phase 2 may also start from; `baselines`: a memo of built baselines (solve_spikepipe)."""
    return solve_spikepipe(graph, cluster, SpikePipeOptions.coerce(options, keywords), seeds, baselines=baselines)


def solve_spikepipe(graph: TaskGraph, cluster: Cluster, opts: SpikePipeOptions,
                    seeds: Sequence[Schedule] = (), *, baselines: dict[str, Schedule] | None = None) -> Schedule:
    """`seeds`: schedules of this graph and cluster that phase 2 may also start from, stretched to its period
    (their slots' in-period starts kept, lags derived again; a schedule stays valid, with no more delay, when its
    period is stretched). One not longer than the period, of whole tasks priced by this cluster, is a candidate;
    the others are ignored (spikepipe_phases._fits). The frontier passes the best schedule of the shorter periods,
    so a longer period never has more delay. `baselines`: the baselines of this graph and cluster built by an
    earlier solve (by name; a baseline depends on neither the options' slack nor the seeds), reused, and filled
    with the ones this call builds: repeated solves of one graph (the frontier, period_slack="auto") build each
    once."""
    built = {} if baselines is None else baselines
    if opts.period_slack == "auto":
        return _auto_slack(graph, cluster, opts, seeds, built)
    opts = opts.resolved()
    deadline = Deadline.start(opts.wall_limit_s)
    if not opts.split:
        return _whole(graph, cluster, opts, ph.PhaseTimer(deadline), seeds, built)
    return _with_split(graph, cluster, opts, deadline, seeds, built)


def _with_split(graph: TaskGraph, cluster: Cluster, opts: SpikePipeOptions, deadline: Deadline,
                seeds: Sequence[Schedule], built: dict[str, Schedule]) -> Schedule:
    """The unsplit scheduler in the first _SPLIT_SHARE of the time, then intra-layer splitting (schedules.split);
    the better of the two."""
    from schedules.split import split_schedule

    timer = ph.PhaseTimer(deadline.first(_SPLIT_SHARE))
    whole = _whole(graph, cluster, opts, timer, seeds, built)
    timer.deadline = deadline
    stats: dict[str, Any] = {}
    t0 = time.perf_counter()
    with timer.phase("split"):
        cut = split_schedule(graph, cluster, seed=opts.seed, max_parts=opts.max_parts,
                             deadline=deadline.ending_earlier(ph.MARGIN * deadline.limit_s), stats=stats,
                             workers=opts.workers)
    if stats.get("cut_for_time"):
        timer.skip(f"split path cut for time: {stats['split_steps_priced']} of {stats['split_steps']} split "
                   f"steps priced, {stats['evaluations']} of {stats['evaluations_asked']} order moves")
    info = {"unsplit_period_cycles": whole.period_cycles, "split_period_cycles": cut.period_cycles,
            "unsplit_total_delay": sum(whole.gradient_delays), "split_s": time.perf_counter() - t0,
            "split_search": stats, "budget": timer.report().to_dict()}
    if stats.get("cut_for_time"):
        info["reproducible"] = False
    if _key(cut) < _key(whole):
        return replace(cut, info={**whole.info, **cut.info, **info,
                                  "solve_s": whole.info["solve_s"] + info["split_s"]})
    return replace(whole, info={**whole.info, **info, "split": False})


def _auto_slack(graph: TaskGraph, cluster: Cluster, opts: SpikePipeOptions, seeds: Sequence[Schedule],
                built: dict[str, Schedule]) -> Schedule:
    """One full solve per slack of AUTO_SLACKS in increasing order (each with the whole budget: five times the
    time), each seeded also with the least-delay schedule of the shorter ones; then the knee of the monotone
    staircase of (period, total delay): where more period stops buying much delay."""
    from schedules.pareto import knee, staircase

    runs: dict[float, Schedule] = {}
    for s in AUTO_SLACKS:
        shorter = min(runs.values(), key=_delay_key, default=None)
        runs[s] = solve_spikepipe(graph, cluster, replace(opts, period_slack=s),
                                  (*seeds, shorter) if shorter is not None else seeds, baselines=built)
    front = staircase(list(runs.items()), lambda kv: (kv[1].period_cycles, sum(kv[1].gradient_delays),
                                                      max(kv[1].gradient_delays, default=0), kv[0]))
    slack, best = front[knee([(s.period_cycles, sum(s.gradient_delays)) for _, s in front])]
    tried = [{"period_slack": s, "period_cycles": x.period_cycles, "total_delay": sum(x.gradient_delays)}
             for s, x in runs.items()]
    return replace(best, info={**best.info, "period_slack_auto": {"picked": slack, "tried": tried}})


def _whole(graph: TaskGraph, cluster: Cluster, opts: SpikePipeOptions, timer: ph.PhaseTimer,
           given: Sequence[Schedule], built: dict[str, Schedule]) -> Schedule:
    """The unsplit scheduler: start, phase 1, seeds, phase 2, polish, the slack check, the tie-break on
    communication, then the report and the guarantee against the baselines."""
    t0 = time.perf_counter()
    solver = ph.Solver(opts, timer)
    st = ph.start(graph, cluster, opts, timer, built)
    a = ph.phase1(graph, cluster, st, timer, solver)
    slack = float(opts.period_slack)
    period = int(ceil(a.period_cycles * (1 + slack))) if slack else a.period_cycles
    sd = ph.seeds(graph, cluster, a, period, bool(slack), st.baselines, opts, timer, solver, st.candidates_per_task,
                  given)
    p2 = ph.phase2(graph, cluster, a, period, sd, timer, solver, st.candidates_per_task)
    polished = ph.polish(graph, cluster, p2.schedule, opts, timer)
    sched = polished.schedule
    source = p2.source + ("+polish" if polished.stats["improved"] else "")
    if p2.rival is not None:  # CP-SAT's answer lost its lead to the link queue: polish it too, keep the better
        rival = ph.polish(graph, cluster, p2.rival, opts, timer)
        if ph.key(rival.schedule) < ph.key(sched):  # then the polish improved it (it starts behind sched)
            sched, source, polished = rival.schedule, "cp-sat+polish", rival
        polished = replace(polished, stats={**polished.stats, "rival": True})
    windowed, windows = _windows(graph, cluster, opts, timer, sched, p2.free_floor)
    if windowed is not sched:  # windows move tasks: the reported floor is the new assignment's
        sched, source = windowed, f"{source}+windows"
        p2 = replace(p2, floor=delay_lower_bounds(graph, cluster, sched.period_cycles,
                                                  {x.task: x.processor for x in sched.slots}))
    if slack:  # a longer period that buys no delay is not worth having
        tight_best = min(sd.tight.values(), key=_key)
        if sum(tight_best.gradient_delays) <= sum(sched.gradient_delays):
            sched, source = replace(tight_best, name="spikepipe"), "tight period (slack cut no delay)"
    slack_used = bool(slack) and sched.period_cycles > a.period_cycles
    with timer.phase("colocate"):
        moved = colocate(graph, cluster, sched, timer.share_of_left(1.0))
    sched = moved.schedule
    if moved.report["cut_for_time"]:
        timer.skip(f"communication tie-break cut for time after {moved.report['moves']} moves")
    report = _report(graph, cluster, opts, timer, st, a, sd, p2, sched, source, polished.stats, slack_used,
                     moved.report, windows, time.perf_counter() - t0)
    return _never_lose(sched, report, st.best_base, bool(slack))


def _windows(graph: TaskGraph, cluster: Cluster, opts: SpikePipeOptions, timer: ph.PhaseTimer, sched: Schedule,
             free_floor: tuple[int, ...]) -> tuple[Schedule, dict[str, Any]]:
    """`sched` improved a few processors at a time (schedules.window_search), within WINDOW_DET_SHARE of the
    deterministic budget (with a wall-clock limit: within a share of the time left). Its delay floor is the
    assignment-free one, since windows move tasks."""
    stats: dict[str, Any] = {}
    det = (opts.deterministic_time_s * ph.WINDOW_DET_SHARE
           if opts.deterministic and opts.deterministic_time_s is not None else None)
    with timer.phase("window_search"):
        out = window_search(graph, cluster, sched, det_budget_s=det, deadline=timer.share_of_left(_WINDOW_SHARE),
                            delay_floor=free_floor, seed=opts.seed, stats=stats, workers=opts.workers)
    if stats["cut_for_time"]:
        timer.skip(f"window search cut for time after {stats['windows']} windows")
    return out, stats


def _report(graph: TaskGraph, cluster: Cluster, opts: SpikePipeOptions, timer: ph.PhaseTimer, st: ph.Start,
            a: ph.Assignment, sd: ph.Seeds, p2: ph.Phase2, sched: Schedule, source: str,
            polished: Mapping[str, Any], slack_used: bool, moved: Mapping[str, Any],
            windows: Mapping[str, Any], solve_s: float) -> SchedulerReport:
    rep1, rep2 = a.report, p2.report
    # anything the clock cut (a search stopped, a phase or baseline skipped) makes the answer depend on the
    # machine; a model too big to build is cut by size, the same on every machine
    walled = (any(r.wall_s >= r.time_limit_s and r.status != "OPTIMAL" for r in (rep1, rep2))
              or any("too big" not in note for note in timer.skipped))
    if opts.budget_mode == "deterministic":
        wall_guard_fired, reproducible = walled, opts.deterministic and not walled
    else:
        wall_guard_fired = False
        reproducible = opts.deterministic and not timer.skipped and all(
            r.wall_s < r.time_limit_s or r.status == "OPTIMAL" for r in (rep1, rep2))
    total = sum(sched.gradient_delays)
    floor = sum(p2.floor)
    per_task = st.candidates_per_task
    fallback = "; ".join(x for x in (a.fallback, p2.fallback) if x) or None
    return SchedulerReport(
        lower_bound_cycles=st.lower_bound_cycles, hint=st.hint_name, hint_period_cycles=st.hint_period_cycles,
        best_baseline=st.best_base.name if st.best_base else None,
        best_baseline_period_cycles=st.best_base.period_cycles if st.best_base else None,
        baselines_compared=tuple(sorted(st.baselines)), time_limit_s=timer.deadline.limit_s,
        workers=opts.workers, seed=opts.seed, budget_mode=opts.budget_mode,
        deterministic_time_s=opts.deterministic_time_s, deterministic=opts.deterministic, fallback=fallback,
        candidate_processors_per_task=per_task,
        model_restricted=(f"{len(graph.tasks)} tasks x {cluster.size} processors: each task may use {per_task} "
                          "processors in the CP-SAT models (its hint's, its neighbours', the least loaded)"
                          if per_task < cluster.size else None),
        phase1=rep1, phase1_link_constraints=a.link_constraints, period_slack=float(opts.period_slack),
        period_before_slack_cycles=a.period_cycles, order_search=sd.stats,
        candidates_total_delay={n: sum(s.gradient_delays) for n, s in sd.candidates.items()},
        seed_total_delay=p2.seed_total_delay, delay_lower_bound=sum(p2.free_floor),
        delay_lower_bound_for_assignment=sum(p2.floor), phase2_assignment=p2.assignment_of, phase2=rep2,
        phase2_source=source, window_search=windows, polish=polished, period_slack_used=slack_used, colocate=moved,
        solve_s=solve_s, wall_guard_fired=wall_guard_fired, reproducible=reproducible,
        status=rep2.status if rep2.found else rep1.status, objective_total_delay=total,
        delay_gap=(total - floor) / max(1, total),
        period_gap_to_lower_bound=(sched.period_cycles - st.lower_bound_cycles) / sched.period_cycles,
        period_proven_optimal=rep1.status == "OPTIMAL" and not opts.period_slack and per_task >= cluster.size,
        processors_used=len({s.processor for s in sched.slots}), budget=timer.report())


def _never_lose(sched: Schedule, report: SchedulerReport, best_base: Schedule | None, slack: bool) -> Schedule:
    """The schedule with its report; or the best baseline, re-labelled, if it has a shorter period (with
    period_slack: less delay within the longer period)."""
    better = ((best_base.period_cycles <= sched.period_cycles and _delay_key(best_base) < _delay_key(sched))
              if slack and best_base is not None else
              best_base is not None and best_base.period_cycles < sched.period_cycles)
    if not better:
        return replace(sched, info=report.to_info(sched.info))
    log.warning("spikepipe: %s has a %s; returning it", best_base.name,
                "smaller delay within the period slack" if slack else "shorter period")
    base_lb = best_base.info["lower_bound_cycles"]
    relabel = Relabel(best_base.name, base_lb, (best_base.period_cycles - base_lb) / best_base.period_cycles,
                      f"{best_base.name} period {best_base.period_cycles}, total delay "
                      f"{sum(best_base.gradient_delays)} beats CP-SAT's period {sched.period_cycles}, total delay "
                      f"{sum(sched.gradient_delays)}")
    return replace(best_base, name="spikepipe", info=replace(report, relabel=relabel).to_info(best_base.info))
