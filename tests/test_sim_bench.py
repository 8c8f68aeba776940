"""Replay speed (a measurement, not a check; run with `make bench`): simulated events per second on a
resnet18-sized graph (21 layers, skip edges) at P=16 for 1000 iterations. Numbers go to
experiments/sim_bench/NOTES.md; the real-network run is experiments/sim_bench/run.py."""

import time

import pytest
from sched_graphs import random_dag

from hwmodels import Cluster
from schedules import generate
from spikepipe.sim import simulate


@pytest.mark.benchmark
@pytest.mark.parametrize("name", ["spikepipe", "1f1b"])
def test_replay_events_per_second(name):
    g, c = random_dag(21, seed=1, skip_prob=0.1), Cluster.homogeneous(16)
    s = generate(name, g, c, **({"time_limit_s": 3.0, "workers": 1} if name == "spikepipe" else {}))
    iterations = 1000 if s.kind == "periodic" else 50
    t0 = time.perf_counter()
    r = simulate(s, c, graph=g, iterations=iterations, record=False)
    wall = time.perf_counter() - t0
    print(f"\n{name}: {len(s.slots)} slots/iteration, {iterations} iterations, {r.events:,} events in {wall:.2f} s "
          f"= {r.events / wall:,.0f} events/s")
    assert r.simulated_period_cycles == s.period_cycles or r.late_slots > 0
