"""Certificates: every result carries status, period and delay bounds and gaps; the bounds hold for every schedule
built here with that period and assignment, and the packing bound is at least the critical path's."""

import json

import pytest
from sched_graphs import graphs

from hwmodels import Cluster
from schedules import generate, validate
from schedules.certificate import certify
from schedules.common import make_schedule, training_order
from schedules.delay_bounds import assignment_delay_bounds
from schedules.order_search import search_orders
from spikepipe.cli import main

GRAPHS = graphs()
PERIODIC = ("pipedream", "layerpipe", "list")
FAST = {"time_limit_s": 0.5, "workers": 1}


@pytest.mark.parametrize("procs", [2, 3, 4])
@pytest.mark.parametrize("graph_name", sorted(GRAPHS))
def test_delay_bound_holds_for_every_schedule_of_the_assignment(graph_name, procs):
    g, c = GRAPHS[graph_name], Cluster.homogeneous(procs)
    for name in PERIODIC:
        s = generate(name, g, c)
        assign = {sl.task: sl.processor for sl in s.slots}
        cp = assignment_delay_bounds(g, c, s.period_cycles, assign, packing=False)
        pack = assignment_delay_bounds(g, c, s.period_cycles, assign)
        assert all(p >= q for p, q in zip(pack, cp, strict=True))
        assert all(p <= d for p, d in zip(pack, s.gradient_delays, strict=True)), name  # per layer too
        # other in-period orders of the same assignment and period (the order search from other seeds)
        for seed in range(3):
            slots = search_orders(g, c, assign, s.period_cycles, training_order(g), seed=seed, evaluations=40)
            other = make_schedule("probe", "periodic", g, c, slots, s.period_cycles, derive_lags=True)
            validate(other, g, c)
            assert all(p <= d for p, d in zip(pack, other.gradient_delays, strict=True))


def test_packing_bound_is_stronger_than_the_critical_path_on_vgg11():
    from hwmodels.config import load_cluster
    from spikepipe.workload import load_workload

    c = load_cluster(None, processors=4)
    g = load_workload("vgg11", processor=c.processors[0])
    s = generate("pipedream", g, c)
    assign = {sl.task: sl.processor for sl in s.slots}
    cp = sum(assignment_delay_bounds(g, c, s.period_cycles, assign, packing=False))
    pack = sum(assignment_delay_bounds(g, c, s.period_cycles, assign))
    assert cp < pack <= sum(s.gradient_delays)


@pytest.mark.parametrize("procs", [2, 4])
@pytest.mark.parametrize("name", ["sequential", "gpipe", "zero-bubble", "zb-v", "pipedream", "list", "spikepipe"])
def test_certificate_fields_and_status(name, procs):
    g, c = GRAPHS["random-chain"], Cluster.homogeneous(procs)
    s = generate(name, g, c, **(FAST if name == "spikepipe" else {}))
    cert = certify(s, g, c)
    assert cert.status in ("optimal", "feasible", "heuristic", "fallback")
    if name != "spikepipe":
        assert cert.status == "heuristic"
    assert 0 < cert.period_lower_bound_cycles <= s.period_cycles
    assert cert.period_gap == pytest.approx((s.period_cycles - cert.period_lower_bound_cycles) / s.period_cycles)
    total = sum(s.gradient_delays)
    assert 0 <= cert.delay_lower_bound <= total
    assert 0.0 <= cert.delay_gap <= 1.0
    if s.kind == "flush":
        assert cert.delay_lower_bound == 0 and cert.delay_gap == 0.0
    if cert.status == "optimal":
        assert cert.period_gap == 0.0 and cert.delay_gap == 0.0


def test_simulate_json_and_csv_carry_the_certificate(tmp_path, capsys):
    csv = tmp_path / "r.csv"
    assert main(["simulate", "--network", "snn-mlp", "-P", "2", "--schedule", "1f1b,pipedream,spikepipe",
                 "--time-limit", "1", "--csv", str(csv), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    keys = ("status", "period_lower_bound_cycles", "period_gap", "delay_lower_bound", "delay_gap")
    for r in data["results"]:
        assert all(k in r for k in keys), r["schedule"]
        assert r["period_lower_bound_cycles"] <= r["period_cycles"]
        assert r["delay_lower_bound"] <= sum(r["gradient_delays"])
    by = {r["schedule"]: r for r in data["results"]}
    assert by["1f1b"]["status"] == by["pipedream"]["status"] == "heuristic"
    assert by["spikepipe"]["status"] in ("optimal", "feasible", "fallback")
    header = csv.read_text().splitlines()[0].split(",")
    assert all(k in header for k in keys)
    assert main(["simulate", "--network", "snn-mlp", "-P", "2", "--schedule", "pipedream"]) == 0
    assert "gap P/D" in capsys.readouterr().out


def test_sweep_rows_carry_the_certificate():
    from spikepipe.sweep import run_point

    row = run_point("simulate", {"network": "snn-mlp", "processors": 2, "schedule": "pipedream"})
    assert row["status"] == "ok", row["error"]  # the point's status; the schedule's sits beside it
    assert row["certificate_status"] == "heuristic"
    for key in ("period_lower_bound_cycles", "period_gap", "delay_lower_bound", "delay_gap"):
        assert key in row
    assert row["delay_lower_bound"] <= row["total_delay"]


@pytest.mark.parametrize("name", ["data-parallel", "spikepipe-split"])
def test_split_schedules_get_a_bound_that_holds_for_splits(name):
    g, c = GRAPHS["one-big-layer"], Cluster.homogeneous(4)
    s = (generate("spikepipe", g, c, time_limit_s=1.0, workers=1, split=True) if name == "spikepipe-split"
         else generate(name, g, c))
    assert any(sl.part for sl in s.slots)
    cert = certify(s, g, c)
    work = sum(min(m * g.cycles(t, c.processors[0], 1.0 / m) if m > 1 else g.cycles(t) for m in range(1, 5))
               for t in g.topological_order())
    assert cert.period_lower_bound_cycles <= min(s.period_cycles, -(-work // c.size))


@pytest.mark.parametrize("seed,procs,stretch", [(0, 2, 1.0), (1, 3, 1.0), (3, 3, 1.3), (4, 4, 1.0)])
def test_delay_bound_is_at_most_the_proven_minimum(seed, procs, stretch):
    """Oracle: CP-SAT's phase-2 model solved to optimality on a small graph is the least total delay of any
    schedule with that period and assignment (its lags may go up to the number of tasks, so they bind nothing);
    the per-layer bounds of the certificate may not exceed it, and a spikepipe run whose phase 2 is proven
    optimal claims no more than that minimum."""
    from sched_graphs import random_dag

    from schedules.common import assignment_link_load
    from schedules.cpsat_build import build_phase2
    from schedules.cpsat_solve import solve
    from schedules.listsched import greedy_assignment

    g, c = random_dag(4, seed=seed), Cluster.homogeneous(procs)
    assign = greedy_assignment(g, c)
    load = max(sum(g.cycles(t) for t in g.topological_order() if assign[t] == p) for p in range(procs))
    period = int(max(load, assignment_link_load(g, c, assign)) * stretch)
    p2 = build_phase2(g, c, assign, period, len(g.tasks))
    rep = solve(p2.model, time_limit_s=120, workers=1, seed=0, deterministic_s=30).report
    assert rep.status == "OPTIMAL"
    bound = assignment_delay_bounds(g, c, period, assign)
    assert sum(bound) <= round(rep.objective)
    s = generate("spikepipe", g, c, deterministic_time_s=1.0, workers=1, search_evaluations=300)
    cert = certify(s, g, c)
    assert cert.delay_lower_bound <= sum(s.gradient_delays)
