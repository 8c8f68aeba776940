"""The delay search at the shortest period (issue 17 item 4; docs/design.md section 7): rotations that wrap, the
link waits in every score, the phase-2 model's links and the chain assignment.

Oracles: the schedule's own derived delays (schedules.common.make_schedule with the replay's link queue), a
straight re-implementation of the link queue that replays every transfer, the validator, and the hint a CP-SAT
model was given (its answer is never worse)."""

from __future__ import annotations

import heapq
import random
from collections import defaultdict
from dataclasses import replace

import pytest
from ortools.sat.python import cp_model
from sched_graphs import random_dag

from hwmodels import Cluster
from hwmodels.config import load_cluster
from schedules import validate
from schedules.common import expected_dependencies, make_schedule, queue_waits, training_order
from schedules.cpsat_build import _queued_behind_siblings, build_chain_assignment, build_phase2
from schedules.cpsat_extract import extract_assignment, extract_slots
from schedules.listsched import greedy_assignment
from schedules.order_packing import (
    Rotation,
    offset_candidates,
    packing_problem,
    placed_slots,
    rotate_offsets,
    score_packing,
)
from schedules.order_search import search_orders
from schedules.spikepipe_phases import period_of
from spikepipe.ir import Slot, TaskKind, slot_lag_delays
from spikepipe.workload import load_workload


def _replay_every_transfer(requests, occupancy, routes, period, latency):
    """The link queue as the simulator's DMA serves it, every transfer replayed (no shortcut for transfers alone on
    their links): three periods, or four when a request falls past the period end; the worse of periods 1 and 2."""
    rounds = 3 + any(t > period for t in requests)
    heap = [(k * period + t, k * len(requests) + i, i, 0, k) for k in range(rounds) for i, t in enumerate(requests)]
    heapq.heapify(heap)
    seq = len(heap)
    free, arrival = defaultdict(int), {}
    while heap:
        t, _, i, hop, k = heapq.heappop(heap)
        start = max(t, free[routes[i][hop]])
        free[routes[i][hop]] = start + occupancy[i]
        done = free[routes[i][hop]] + latency
        if hop + 1 < len(routes[i]):
            heapq.heappush(heap, (done, seq, i, hop + 1, k))
            seq += 1
        else:
            arrival[(i, k)] = done - k * period
    return [max(0, max(arrival[(i, k)] for k in (1, 2)) - t - len(routes[i]) * (latency + occupancy[i]))
            for i, t in enumerate(requests)]


@pytest.mark.parametrize("most_hops", [1, 2])
@pytest.mark.parametrize("seed", range(12))
def test_queue_waits_equal_a_replay_of_every_transfer(seed, most_hops):
    """Routes of one link (all-to-all: each link's queue replayed on its own) and of up to two (one heap)."""
    rng = random.Random(seed)
    period, latency = 1000, rng.randint(0, 20)
    links = [(a, b) for a in range(3) for b in range(3) if a != b]
    n = rng.randint(1, 9) if most_hops > 1 else rng.randint(2, 14)
    routes = [tuple(rng.sample(links, rng.randint(1, most_hops))) for _ in range(n)]
    occupancy = [rng.randint(1, 120 if most_hops > 1 else 240) for _ in range(n)]
    requests = [rng.randint(0, period + 300) for _ in range(n)]
    assert queue_waits(requests, occupancy, routes, period, latency) == \
        _replay_every_transfer(requests, occupancy, routes, period, latency)


CASES = [("snn-cnn", 2), ("snn-cnn", 4), ("vgg11-28", 4), ("resnet18", 2)]


def _tight(net: str, P: int):
    c = load_cluster(None, processors=P)
    g = load_workload(net, processor=c.processors[0])
    assign = greedy_assignment(g, c)
    return g, c, assign, period_of(g, c, assign)


@pytest.mark.parametrize("net,P", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_order_search_score_is_the_schedules_delay(net, P, seed):
    """The search scores what the schedule will have: its own delays (link waits in) equal the derived ones."""
    g, c, assign, period = _tight(net, P)
    slots = search_orders(g, c, assign, period, training_order(g), seed=seed, evaluations=60)
    s = make_schedule("x", "periodic", g, c, slots, period, derive_lags=True)
    validate(s, g, c)
    assert slot_lag_delays(slots, g.num_layers, period) == s.gradient_delays
    assert {x.task: x.processor for x in s.slots} == assign


@pytest.mark.parametrize("net,P", CASES[:3])
@pytest.mark.parametrize("seed", range(3))
def test_rotated_packings_fold_into_the_period_keeping_every_absolute_time(net, P, seed):
    g, c, assign, period = _tight(net, P)
    slots = [Slot(t, assign[t], 0, g.cycles(t)) for t in g.topological_order()]
    deps = expected_dependencies(g, slots)
    pb = packing_problem(slots, deps, c, g.num_layers, period)
    rng = random.Random(seed)
    orders = [[i for i in range(len(pb.ids)) if pb.proc[i] == p] for p in range(P)]
    for o in orders:
        rng.shuffle(o)
    offsets = [rng.randrange(period) for _ in range(P)]
    packing = score_packing(pb, orders, offsets)
    (total, _), start, lag = packing.score, packing.starts, packing.lags
    placed = placed_slots(pb, slots, orders, offsets)
    pos = {t: i for i, t in enumerate(pb.ids)}
    assert any(x.wraps(period) for x in placed) or all(o == [] for o in orders)
    for x in placed:
        i = pos[x.id]
        assert 0 <= x.start_cycles < period and x.lag >= 0
        assert x.lag * period + x.start_cycles == lag[i] * period + start[i]
    s = make_schedule("x", "periodic", g, c, placed, period, derive_lags=True)
    validate(s, g, c)
    assert sum(s.gradient_delays) == total


def _rotate_by_repacking(pb, orders, offsets, procs, score):
    """The rotation step written plainly: every trial offset re-packs every processor and scores from scratch
    (the search's own step shifts one processor's slots and reuses the lags before them)."""
    evaluations, improved = 0, True
    while improved:
        improved = False
        for q in procs:
            start = score_packing(pb, orders, offsets).starts
            for x in offset_candidates(pb, start, offsets, q):
                if x == offsets[q]:
                    continue
                trial = offsets[:q] + [x] + offsets[q + 1:]
                if score_packing(pb, orders, trial, links=False).score >= score:
                    continue
                sc = score_packing(pb, orders, trial).score
                evaluations += 1
                if sc < score:
                    offsets, score, improved = trial, sc, True
    return Rotation(offsets, score, evaluations)


@pytest.mark.parametrize("net,P", CASES + [("vgg11", 4)])
@pytest.mark.parametrize("seed", range(3))
def test_rotation_step_equals_repacking_every_trial(net, P, seed):
    """The fast rotation (shifted slots, edge terms patched only where they move, shared lag prefix, memoised link
    queue) makes exactly the plain step's choices, link waits in, from random orders and offsets."""
    g, c, assign, period = _tight(net, P)
    slots = [Slot(t, assign[t], 0, g.cycles(t)) for t in g.topological_order()]
    deps = expected_dependencies(g, slots)
    rng = random.Random(seed)
    fast, plain = packing_problem(slots, deps, c, g.num_layers, period), packing_problem(slots, deps, c, g.num_layers, period)
    orders = [[i for i in range(len(fast.ids)) if fast.proc[i] == p] for p in range(P)]
    for o in orders:
        rng.shuffle(o)
    offsets = [rng.randrange(period) for _ in range(P)]
    score = score_packing(fast, orders, offsets).score
    got = rotate_offsets(fast, orders, list(offsets), range(P), score)
    assert got == _rotate_by_repacking(plain, orders, list(offsets), range(P), score)
    # the memoised queue answers a repeated packing as a fresh replay does
    start = score_packing(fast, orders, got.offsets).starts
    assert fast.queue(start) == fast.queue(list(start)) == packing_problem(slots, deps, c, g.num_layers, period).queue(start)


def _solve(model: cp_model.CpModel, det_s: float = 2.0) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    solver.parameters.max_deterministic_time = det_s
    assert solver.solve(model) in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    return solver


@pytest.mark.parametrize("seed", range(6))
def test_phase2_model_books_every_transfer_on_a_free_link(seed):
    """Each one-hop transfer holds its link from its producer's end plus its wait, at least the time its
    producer's earlier transfers on that link take; no two hold a link at once (cyclically); the hint's own
    first-come-first-served waits are a solution, so the answer is never worse than the hint."""
    g, c = random_dag(5, seed=seed, edge_bytes=64 * 2500), Cluster.homogeneous(3)
    assign = greedy_assignment(g, c)
    period = period_of(g, c, assign)
    hint = search_orders(g, c, assign, period, training_order(g), seed=seed, evaluations=40)
    hint_total = sum(make_schedule("h", "periodic", g, c, hint, period, derive_lags=True).gradient_delays)
    p2 = build_phase2(g, c, assign, period, max(s.lag for s in hint) + 1, hint)
    solver = _solve(p2.model)
    assert solver.objective_value <= hint_total
    siblings = _queued_behind_siblings(g, c, assign, period)
    crossing = [(u, v, b) for u, v, b in g.edges if assign[u] != assign[v] and b > 0]
    assert crossing and set(p2.waits) == {(u, v) for u, v, _ in crossing}
    slots = {s.task: s for s in extract_slots(solver, p2, g, c, assign)}
    held = defaultdict(list)
    for u, v, b in crossing:
        w = solver.value(p2.waits[(u, v)])
        assert w >= siblings[(u, v)]
        sent = (slots[u].end_cycles + w) % period
        held[c.route(assign[u], assign[v])[0]].append((sent, c.interconnect.occupancy_cycles(b)))
    for spans in held.values():
        for i, (a, occ_a) in enumerate(spans):
            for b, occ_b in spans[i + 1:]:
                assert (b - a) % period >= occ_a and (a - b) % period >= occ_b, "two transfers hold a link at once"
    validate(make_schedule("x", "periodic", g, c, list(slots.values()), period, derive_lags=True), g, c)


def _hops(graph, assign) -> int:
    return sum(assign[u] != assign[v] for u, v, _ in graph.edges if graph.task(v).kind is not TaskKind.W)


@pytest.mark.parametrize("net,P", [("snn-cnn", 4), ("vgg11-28", 4), ("vgg11", 4)])
def test_chain_assignment_fits_the_period_with_no_more_hops_than_its_hint(net, P):
    g, c, assign, period = _tight(net, P)
    model = build_chain_assignment(g, c, period, assign)
    chain = extract_assignment(_solve(model.model, 1.0), model)
    assert set(chain) == {t.id for t in g.tasks}
    assert period_of(g, c, chain) <= period
    assert _hops(g, chain) <= _hops(g, assign)


@pytest.mark.parametrize("seed", range(6))
def test_phase2_no_lp_search_reaches_the_proven_optimum(seed):
    """Phase 2 runs CP-SAT's no_lp search alone (spikepipe_phases.PHASE2_SUBSOLVERS): on models small enough for
    CP-SAT's full default set to prove its optimum, that search reaches the same objective, the same way twice
    (deterministic time), and its report names the searches it ran."""
    from schedules.cpsat_solve import solve
    from schedules.spikepipe_phases import PHASE2_SUBSOLVERS

    g, c = random_dag(3, seed=seed, edge_bytes=64 * 2500), Cluster.homogeneous(2)
    assign = greedy_assignment(g, c)
    period = period_of(g, c, assign)
    hint = search_orders(g, c, assign, period, training_order(g), seed=seed, evaluations=40)

    def model() -> cp_model.CpModel:
        return build_phase2(g, c, assign, period, max(s.lag for s in hint) + 1, hint).model

    proven = solve(model(), time_limit_s=120, workers=1, seed=0, deterministic_s=30).report
    assert proven.status == "OPTIMAL"
    runs = [solve(model(), time_limit_s=120, workers=2, seed=0, deterministic_s=30, subsolvers=PHASE2_SUBSOLVERS)
            for _ in range(2)]
    assert [r.report.objective for r in runs] == [proven.objective] * 2
    assert runs[0].report.subsolvers == PHASE2_SUBSOLVERS and proven.subsolvers is None


def test_phase2_deterministic_share_shrinks_for_small_graphs():
    """A graph of n < PHASE2_FULL_SHARE_TASKS tasks gets n / that of phase 2's share of the deterministic budget."""
    from schedules import generate as gen
    from schedules import spikepipe_phases as ph

    g, c = random_dag(3, seed=0), Cluster.homogeneous(2)
    s = gen("spikepipe", g, c, deterministic_time_s=0.6)
    n = len(g.tasks)
    assert n < ph.PHASE2_FULL_SHARE_TASKS
    want = 0.6 * (1 - ph.PHASE1_DET_SHARE - ph.CHAIN_DET_SHARE - ph.WINDOW_DET_SHARE) * n / ph.PHASE2_FULL_SHARE_TASKS
    assert s.info["phase2"]["deterministic_s"] == pytest.approx(want)
    assert tuple(s.info["phase2"]["subsolvers"]) == ph.PHASE2_SUBSOLVERS


@pytest.mark.parametrize("seed", range(3))
def test_a_rival_from_phase2_is_polished_and_the_better_kept(seed, monkeypatch):
    """When CP-SAT's answer loses its lead to the link queue (spikepipe_phases.Phase2.rival), the polish runs on
    it too and the better of the two polished schedules is returned. Here the rival is forced: the worst seed."""
    from schedules import generate as gen
    from schedules import spikepipe_phases as ph

    real, polished = ph.phase2, []

    def with_rival(graph, cluster, a, period, sd, timer, solver, per_task):
        out = real(graph, cluster, a, period, sd, timer, solver, per_task)
        worst = max(sd.candidates.values(), key=ph.key)
        return replace(out, rival=worst)

    real_polish = ph.polish

    def recording_polish(graph, cluster, sched, opts, timer):
        out = real_polish(graph, cluster, sched, opts, timer)
        polished.append((sched, out.schedule))
        return out

    monkeypatch.setattr(ph, "phase2", with_rival)
    monkeypatch.setattr(ph, "polish", recording_polish)
    g, c = random_dag(5, seed=seed, edge_bytes=64 * 2500), Cluster.homogeneous(3)
    s = gen("spikepipe", g, c, deterministic_time_s=0.5, search_evaluations=200)
    validate(s, g, c)
    assert len(polished) == 2 and s.info["polish"]["rival"] is True
    best = min((out for _, out in polished), key=ph.key)
    assert ph.key(s) <= ph.key(best)


@pytest.mark.parametrize("seed", range(4))
def test_reassigning_phase2_optimum_is_the_best_over_every_assignment(seed):
    """With period slack phase 2 re-assigns (cpsat_build.build_phase2_free). Oracle: on a tiny graph without
    transfers its proven optimum equals the least of the fixed-assignment model's proven optima over every
    assignment that fits the period (brute force), and its answer validates."""
    import itertools

    from schedules.cpsat_build import build_phase2_free
    from schedules.cpsat_solve import solve

    g, c = random_dag(2, seed=seed, edge_bytes=0, max_cycles=900), Cluster.homogeneous(2)
    tasks = g.topological_order()
    period = int(1.3 * period_of(g, c, greedy_assignment(g, c)))
    hint_assign = greedy_assignment(g, c)
    hint = search_orders(g, c, hint_assign, period, training_order(g), seed=0, evaluations=30)
    max_lag = len(tasks)
    best = None
    for combo in itertools.product(range(2), repeat=len(tasks)):
        assign = dict(zip(tasks, combo, strict=True))
        if combo[0] != 0 or period_of(g, c, assign) > period:  # processor 0 holds the first task (symmetry)
            continue
        rep = solve(build_phase2(g, c, assign, period, max_lag).model, time_limit_s=60, workers=1, seed=0,
                    deterministic_s=10).report
        assert rep.status == "OPTIMAL"
        best = rep.objective if best is None else min(best, rep.objective)
    p2 = build_phase2_free(g, c, period, max_lag, hint)
    solved = solve(p2.model, time_limit_s=60, workers=1, seed=0, deterministic_s=10)
    assert solved.report.status == "OPTIMAL" and solved.report.objective == best
    slots = extract_slots(solved.solver, p2, g, c, {})
    validate(make_schedule("x", "periodic", g, c, slots, period, derive_lags=True), g, c)
