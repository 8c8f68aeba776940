"""The window search (schedules.window_search): a few processors' tasks re-assigned and re-placed at a time.

Checked against the rules it must keep (valid schedules, never worse, the period kept, its deterministic budget,
the same answer twice) and, at P=2 where one window holds every task, against the re-assigning phase-2 model
(schedules.cpsat_build.build_phase2_free) solved to a proven optimum: the same total delay."""

from dataclasses import replace
from types import SimpleNamespace

import pytest
from sched_graphs import graphs

from hwmodels import Cluster, Interconnect
from schedules import generate, validate
from schedules import window_search as window_search_module
from schedules.common import make_schedule
from schedules.cpsat_build import build_phase2_free
from schedules.cpsat_extract import extract_slots
from schedules.cpsat_solve import solve
from schedules.deadline import Deadline
from schedules.delay_bounds import delay_lower_bounds
from schedules.window_search import applies, window_search


def _key(s):
    return (s.period_cycles, sum(s.gradient_delays), s.max_lag)


def _start(name, procs, base):
    g, c = graphs()[name], Cluster.homogeneous(procs)
    return g, c, generate(base, g, c)


@pytest.mark.parametrize("name", sorted(graphs()))
@pytest.mark.parametrize("procs", [2, 3, 4])
@pytest.mark.parametrize("base", ["pipedream", "layerpipe"])
def test_windows_keep_a_valid_schedule_at_the_period_and_never_add_delay(name, procs, base):
    g, c, s = _start(name, procs, base)
    stats: dict = {}
    out = window_search(g, c, s, det_budget_s=0.5, deadline=Deadline.within(60), seed=0, stats=stats,
                        delay_floor=delay_lower_bounds(g, c, s.period_cycles))
    validate(out, g, c)
    assert out.period_cycles == s.period_cycles
    assert _key(out) <= _key(s)
    assert stats["windows"] >= 1 and stats["start_total_delay"] == sum(s.gradient_delays)
    assert stats["total_delay"] == sum(out.gradient_delays)
    # each window's limit is what is left of the budget; CP-SAT stops within a step of its limit
    assert stats["det_s"] <= 0.5 + 0.05
    assert not stats["cut_for_time"]


def test_stages_skip_proven_windows_and_start_over_after_a_later_stage_improves(monkeypatch):
    # the search's control, with a scripted window solver: a pair that did not end optimal gets the longer limit,
    # its improvement sends the search back to the short pairs, all of them again (nothing is proven on the new
    # schedule), then to the triple, whose longer stage is skipped because it ended optimal
    g, c, s = _start("random-chain", 3, "layerpipe")
    better = SimpleNamespace(period_cycles=s.period_cycles, max_lag=s.max_lag,
                             gradient_delays=(*s.gradient_delays[:-1], s.gradient_delays[-1] - 1))
    s = replace(s, gradient_delays=(*s.gradient_delays[:-1], s.gradient_delays[-1] + 1))  # room for one step
    calls = []

    def fake(graph, cluster, sched, procs, floor, det, wall, seed):
        calls.append((procs, det))
        if len(calls) == 2:  # the first (0, 2) does not finish
            return None, "FEASIBLE", det
        if procs == (0, 2) and det > 0.05 and len(calls) == 4:
            return better, "OPTIMAL", 0.01
        return sched, "OPTIMAL", 0.01

    monkeypatch.setattr(window_search_module, "_solve_window", fake)
    monkeypatch.setattr(window_search_module, "WINDOW_STAGES", ((2, 0.05), (2, 0.4), (3, 0.1), (3, 0.4)))
    stats: dict = {}
    out = window_search(g, c, s, det_budget_s=10.0, deadline=Deadline.within(60), stats=stats)
    assert out is better
    assert calls == [((0, 1), 0.05), ((0, 2), 0.05), ((1, 2), 0.05), ((0, 2), 0.4),
                     ((0, 1), 0.05), ((0, 2), 0.05), ((1, 2), 0.05), ((0, 1, 2), 0.1)]
    assert stats["windows"] == 8 and stats["improved"] == 1 and stats["optimal"] == 7


def test_windows_cut_delay_where_layerpipe_leaves_it():
    # layerpipe's one task per processor-period gives 2 delays per later stage; moving tasks between two
    # processors at the same period removes some of them
    g, c, s = _start("random-chain", 4, "layerpipe")
    out = window_search(g, c, s, det_budget_s=2.0, deadline=Deadline.within(60))
    assert sum(out.gradient_delays) < sum(s.gradient_delays)


def test_windows_give_the_same_schedule_twice():
    g, c, s = _start("skip-dag", 3, "pipedream")
    a = window_search(g, c, s, det_budget_s=1.0, deadline=Deadline.within(60))
    b = window_search(g, c, s, det_budget_s=1.0, deadline=Deadline.within(60))
    assert a.slots == b.slots


@pytest.mark.parametrize("name", ["uniform-chain", "random-chain", "one-big-layer"])
def test_one_window_of_every_processor_reaches_the_free_models_optimum(name):
    g, c, s = _start(name, 2, "pipedream")
    out = window_search(g, c, s, det_budget_s=20.0, deadline=Deadline.within(120))
    floor = delay_lower_bounds(g, c, s.period_cycles)
    p2 = build_phase2_free(g, c, s.period_cycles, s.max_lag + 2, list(s.slots), floor)
    r = solve(p2.model, time_limit_s=120, workers=1, seed=0, deterministic_s=20.0)
    assert r.report.status == "OPTIMAL"
    free = make_schedule("x", "periodic", g, c, extract_slots(r.solver, p2, g, c, {}), s.period_cycles,
                         derive_lags=True)
    assert sum(free.gradient_delays) == r.report.objective  # no link wait on these graphs: model = replay
    assert sum(out.gradient_delays) == r.report.objective


def test_other_topologies_are_left_alone():
    g = graphs()["random-chain"]
    c = Cluster.homogeneous(4, interconnect=Interconnect(topology="ring"))
    s = generate("pipedream", g, c)
    assert not applies(g, c, s)
    stats: dict = {}
    assert window_search(g, c, s, det_budget_s=1.0, deadline=Deadline.within(60), stats=stats) is s
    assert "skipped" in stats and stats["windows"] == 0


def test_spikepipe_reports_its_window_search():
    g, c = graphs()["skip-dag"], Cluster.homogeneous(4)
    s = generate("spikepipe", g, c, deterministic_time_s=1.0, search_evaluations=300)
    w = s.info["window_search"]
    assert w["det_s"] <= 1.0 + 0.05
    assert w["total_delay"] <= w["start_total_delay"]
    assert ("+windows" in s.info["phase2_source"]) == (w["improved"] > 0)


@pytest.mark.parametrize("name", sorted(graphs()))
@pytest.mark.parametrize("procs", [3, 4])
def test_windows_solved_ahead_take_the_same_steps_as_one_at_a_time(name, procs):
    # _Ahead solves the next windows on spare threads; a guess it made is used only when it is the window the
    # sequential search solves next, on the same schedule with the same limit, so the answer and every count are
    # those of one worker. The small budget makes some searches end mid-stage, where guesses are not made
    g, c, s = _start(name, procs, "layerpipe")
    runs = []
    for workers in (1, 2, 3):
        stats: dict = {}
        out = window_search(g, c, s, det_budget_s=0.3, deadline=Deadline.within(120), seed=0, stats=stats,
                            workers=workers, delay_floor=delay_lower_bounds(g, c, s.period_cycles))
        runs.append((out.slots, stats))
    assert runs[0] == runs[1] == runs[2]


def test_windows_solved_ahead_with_a_scripted_solver_end_where_one_at_a_time_ends(monkeypatch):
    # answers that depend on the schedule a window is solved on: a guess used on the wrong schedule, or at the
    # wrong limit, would change the result or a count
    g, c, s = _start("random-chain", 4, "layerpipe")
    s = replace(s, gradient_delays=(*s.gradient_delays[:-1], s.gradient_delays[-1] + 2))
    better = replace(s, gradient_delays=(*s.gradient_delays[:-1], s.gradient_delays[-1] - 1))
    best = replace(better, gradient_delays=(*better.gradient_delays[:-1], better.gradient_delays[-1] - 1))

    def fake(graph, cluster, sched, procs, floor, det, wall, seed, solver=None):
        if sched is s and procs == (1, 2) and det == 0.4:
            return better, "OPTIMAL", 0.01
        if sched is better and procs == (0, 2, 3):
            return best, "FEASIBLE", det
        if procs in ((0, 1), (1, 3)) or (procs == (1, 2) and det < 0.4):
            return None, "FEASIBLE", det
        return sched, "OPTIMAL", 0.02

    monkeypatch.setattr(window_search_module, "_solve_window", fake)
    monkeypatch.setattr(window_search_module, "WINDOW_STAGES", ((2, 0.05), (2, 0.4), (3, 0.1), (3, 0.4)))
    runs = []
    for workers in (1, 2, 4):
        stats: dict = {}
        runs.append((window_search(g, c, s, det_budget_s=3.0, deadline=Deadline.within(60), stats=stats,
                                   workers=workers), stats))
    assert runs[0][0] is best
    assert runs[0] == runs[1] == runs[2]
