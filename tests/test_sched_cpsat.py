"""CP-SAT scheduler against brute force on tiny graphs, and hypothesis-generated graphs against the validator."""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sched_graphs import random_dag

from hwmodels import Cluster, Interconnect
from schedules import generate, validate
from schedules.common import assignment_link_load, slot_cycles
from spikepipe.ir import chain_graph, lower_bound_cycles

FAST = {"time_limit_s": 2.0, "workers": 1}


def brute_force_period(g, c) -> int:
    """min over every assignment of max(busiest processor, busiest link): the optimum for unsplit tasks."""
    tasks = [t.id for t in g.tasks]
    best = None
    for combo in itertools.product(range(c.size), repeat=len(tasks)):
        assign = dict(zip(tasks, combo, strict=True))
        load = [0] * c.size
        for t, p in assign.items():
            load[p] += slot_cycles(g, c, t, p)
        period = max(max(load), assignment_link_load(g, c, assign))
        best = period if best is None else min(best, period)
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("procs", [2, 3])
def test_cpsat_period_equals_brute_force(seed, procs):
    g = random_dag(2, seed=seed, max_cycles=900, edge_bytes=30000, batch=1)
    c = Cluster.homogeneous(procs, interconnect=Interconnect(link_bytes_per_cycle=64, link_latency_cycles=10))
    s = generate("spikepipe", g, c, **FAST)
    validate(s, g, c)
    assert s.period_cycles == brute_force_period(g, c)
    assert s.info["phase1"]["status"] == "OPTIMAL" or s.info.get("relabelled_from")


def test_links_bind_and_are_respected():
    # a heavy edge costs more link time than the tasks: keeping it on one processor is optimal
    g = chain_graph([(100, 100, 100), (100, 100, 100)], edge_bytes=64 * 1000)
    c = Cluster.homogeneous(2, interconnect=Interconnect(link_bytes_per_cycle=64, link_latency_cycles=0))
    s = generate("spikepipe", g, c, **FAST)
    validate(s, g, c)
    assert s.period_cycles == brute_force_period(g, c)


def test_phase2_reduces_delay_and_reports_solver_fields():
    g = chain_graph([(3000, 3000, 3000)] * 4, edge_bytes=1024)
    c = Cluster.homogeneous(4)
    s = generate("spikepipe", g, c, **FAST, seed=3)
    validate(s, g, c)
    assert s.period_cycles == lower_bound_cycles(g, c)
    assert sum(s.gradient_delays) <= s.info["seed_total_delay"]
    for phase in ("phase1", "phase2"):
        assert {"status", "objective", "bound", "gap", "time_limit_s", "workers", "seed", "wall_s"} <= set(
            s.info[phase])
    assert s.info["phase1"]["seed"] == 3


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers=st.integers(1, 6), seed=st.integers(0, 10_000), procs=st.sampled_from([1, 2, 3, 4, 8]),
       name=st.sampled_from(["pipedream", "layerpipe", "gpipe", "1f1b", "interleaved-1f1b", "zero-bubble",
                             "data-parallel", "list", "sequential"]))
def test_random_graphs_always_give_valid_schedules(layers, seed, procs, name):
    g = random_dag(layers, seed=seed)
    c = Cluster.homogeneous(procs)
    s = generate(name, g, c)
    validate(s, g, c)
    assert s.period_cycles >= lower_bound_cycles(g, c) or name == "data-parallel"


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers=st.integers(1, 5), seed=st.integers(0, 10_000), procs=st.sampled_from([1, 2, 4]))
def test_random_graphs_spikepipe_valid(layers, seed, procs):
    g = random_dag(layers, seed=seed)
    c = Cluster.homogeneous(procs)
    s = generate("spikepipe", g, c, time_limit_s=0.2, workers=1)
    validate(s, g, c)
    assert s.period_cycles >= lower_bound_cycles(g, c)
