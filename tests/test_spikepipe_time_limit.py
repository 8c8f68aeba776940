"""`time_limit_s` bounds the whole spikepipe call (baselines, builds, solves, order search, split path), the
budget breakdown in info adds up, and whatever was cut for time the schedule stays valid and no worse than any
pipelining baseline.

The wall-time checks are bounds with a generous allowance (limit + 4 s), not speed benchmarks: before the
Deadline the mid-size cases below took several times their limit."""

import time

import pytest
from sched_graphs import random_dag

from hwmodels import Cluster
from schedules import generate, validate
from schedules.cpsat_build import build_phase1, candidate_processors
from schedules.cpsat_solve import Deadline, solve
from schedules.listsched import greedy_assignment
from schedules.order_search import search_orders
from schedules.registry import PIPELINING
from schedules.spikepipe_options import DEFAULT_COMPARE as _COMPARE
from spikepipe.ir import chain_graph

LIMIT_S = 1.0
ALLOWANCE_S = 4.0  # machine load, interpreter warm-up: the bound must not flake on a shared 2-core machine
EPS_S = 0.05


def _mid_graph(layers: int = 60):
    return random_dag(layers, seed=11, skip_prob=0.05, edge_bytes=512)


def _check_budget(s, wall_s: float, limit_s: float) -> None:
    b = s.info["budget"]
    assert b["time_limit_s"] == pytest.approx(limit_s)
    assert all(v >= 0 for v in b["phases_s"].values())
    assert b["accounted_s"] == pytest.approx(sum(b["phases_s"].values()), abs=1e-3)
    # phases do not overlap, so together they cannot exceed the call's elapsed time, which the caller saw
    assert b["accounted_s"] <= b["elapsed_s"] + EPS_S
    assert b["elapsed_s"] <= wall_s + EPS_S
    if "baselines" in b["phases_s"]:
        assert sum(b["baselines_s"].values()) <= b["phases_s"]["baselines"] + EPS_S
    # every baseline not built is named in a skip note
    missing = set(_COMPARE) - set(s.info["baselines_compared"])
    notes = " ".join(b["skipped_for_time"])
    assert all(name in notes for name in missing), (missing, notes)
    if b["skipped_for_time"]:
        assert not s.info["reproducible"]


def _check_result(s, g, c) -> None:
    validate(s, g, c)
    assert s.info["status"]
    assert "fallback" in s.info and "phase1" in s.info and "phase2" in s.info
    if s.info["phase1"]["status"] not in ("OPTIMAL", "FEASIBLE"):
        assert s.info["fallback"], "phase 1 found nothing but no fallback is reported"
    for name in PIPELINING:  # built here independently, whatever the scheduler skipped
        assert s.period_cycles <= generate(name, g, c).period_cycles, name


@pytest.mark.parametrize("procs", [16, 64])
def test_tiny_limit_bounds_the_whole_call(procs):
    g, c = _mid_graph(), Cluster.homogeneous(procs)
    t0 = time.perf_counter()
    s = generate("spikepipe", g, c, time_limit_s=LIMIT_S)
    wall = time.perf_counter() - t0
    assert wall < LIMIT_S + ALLOWANCE_S
    _check_budget(s, wall, LIMIT_S)
    _check_result(s, g, c)
    if len(g.tasks) * procs > 6000:
        assert s.info["candidate_processors_per_task"] < procs and "model_restricted" in s.info


def test_tiny_limit_bounds_the_split_path():
    g, c = _mid_graph(), Cluster.homogeneous(32)
    t0 = time.perf_counter()
    s = generate("spikepipe", g, c, time_limit_s=LIMIT_S, split=True)
    wall = time.perf_counter() - t0
    assert wall < LIMIT_S + ALLOWANCE_S
    _check_budget(s, wall, LIMIT_S)
    assert "split" in s.info["budget"]["phases_s"]
    assert s.info["split_search"]["split_steps_priced"] >= 1
    validate(s, g, c)
    assert s.period_cycles <= min(s.info["unsplit_period_cycles"], s.info["split_period_cycles"])


def test_small_graph_generous_limit_cuts_nothing():
    g, c = chain_graph([(3000, 2000, 1000)] * 5, edge_bytes=256), Cluster.homogeneous(3)
    s = generate("spikepipe", g, c, time_limit_s=30.0, workers=1)
    assert s.info["budget"]["skipped_for_time"] == []
    assert sorted(s.info["baselines_compared"]) == sorted(_COMPARE)
    assert s.info["candidate_processors_per_task"] == 3 and "model_restricted" not in s.info
    search = s.info["order_search"]
    assert not search["cut_for_time"]
    assert search["evaluations"] == search["evaluations_asked"] or search["stalled"] > 0


def test_expired_deadline_still_gives_a_valid_schedule():
    # a limit far below what even the mandatory work takes: every optional phase is skipped, nothing raises
    g, c = random_dag(12, seed=2), Cluster.homogeneous(4)
    s = generate("spikepipe", g, c, time_limit_s=1e-6, workers=1)
    _check_result(s, g, c)
    notes = " ".join(s.info["budget"]["skipped_for_time"])
    assert "phase 1 skipped" in notes and "phase 2 skipped" in notes
    assert s.info["phase1"]["status"] == "SKIPPED_FOR_TIME"


@pytest.mark.parametrize("seed", [0, 3])
def test_order_search_stop_in_the_past_does_no_moves_and_no_stop_is_unchanged(seed):
    g, c = random_dag(8, seed=seed), Cluster.homogeneous(3)
    assign = greedy_assignment(g, c)
    period = max(sum(g.cycles(t) for t in g.topological_order() if assign[t] == p) for p in range(3))
    order = g.topological_order()
    cut: dict = {}
    stopped = search_orders(g, c, assign, period, order, seed=seed, evaluations=500,
                            deadline=Deadline(1.0, time.perf_counter() - 2), stats=cut)
    assert cut == {"evaluations": 0, "evaluations_asked": 500, "cut_for_time": True, "restarts": 1, "stalled": 0}
    assert {s.task: s.processor for s in stopped} == assign
    full: dict = {}
    a = search_orders(g, c, assign, period, order, seed=seed, evaluations=500, stats=full)
    b = search_orders(g, c, assign, period, order, seed=seed, evaluations=500, deadline=Deadline.within(1e6))
    assert (full["evaluations"] == 500 or full["stalled"] > 0) and not full["cut_for_time"]
    assert a == b


@pytest.mark.parametrize("per_task", [1, 2, 3])
def test_candidate_processors_keep_the_hint_and_bound_the_optimum(per_task):
    g, c = random_dag(5, seed=4), Cluster.homogeneous(4)
    hint = greedy_assignment(g, c)
    cands = candidate_processors(g, c, hint, per_task)
    assert all(hint[t] in ps and len(ps) == len(set(ps)) <= per_task for t, ps in cands.items())
    hint_period = max(sum(g.cycles(t) for t in hint if hint[t] == p) for p in range(4))

    def optimum(candidates):
        p1 = build_phase1(g, c, 1, hint_period, hint, links=False, candidates=candidates)
        solved = solve(p1.model, time_limit_s=20, workers=1, seed=0)
        solver, rep = solved.solver, solved.report
        assert rep.status == "OPTIMAL"
        return int(solver.value(p1.period)), {t: p for (t, p), v in p1.x.items() if solver.boolean_value(v)}

    free, _ = optimum(None)
    restricted, assign = optimum(cands)
    assert free <= restricted <= hint_period
    assert all(assign[t] in cands[t] for t in assign)
    if per_task == 1:
        assert assign == hint


def test_deadline_first_share_ends_earlier():
    d = Deadline.start(10.0)
    part = d.first(0.25)
    assert part.start_s == d.start_s and part.end_s == pytest.approx(d.start_s + 2.5)
    assert 0 < part.remaining() < d.remaining() <= 10.0
    assert not d.expired() and Deadline(1.0, time.perf_counter() - 2).expired()
