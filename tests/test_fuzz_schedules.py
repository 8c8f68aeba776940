"""Property-based fuzzing of every scheduler, the validator and the SimPy replay on random task graphs.

Graphs: a random layer DAG (chain plus skip and branch edges F_i -> F_j, mirrored in B), 1 to 66 layers (3 to
198 tasks), every task carrying real GEMM work with costs spanning about six orders of magnitude, on clusters
mixing processors with different arrays and dataflows, so a task's price depends on where it runs.

Properties, for every generator in schedules.registry.names():
- the schedule passes schedules.validate;
- replayed with link_contention=False (what the generators price), the simulated period equals the claimed one
  and no slot starts late;
- no period is below ir.lower_bound_cycles (data-parallel splits tasks, so it is checked against the bound for
  split work instead: total work / P);
- `spikepipe` is never worse than the best pipelining baseline (registry.PIPELINING).
`check_case` also returns what a person reading a long run wants counted (contention slowdowns, how often `list`
or `data-parallel` beat spikepipe); experiments/fuzz/run_fuzz.py runs it thousands of times.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodels import Cluster, Interconnect, Processor
from hwmodels.systolic import SystolicArray
from schedules import generate, validate
from schedules.registry import PIPELINING, names
from spikepipe.ir import Gemm, LayerSpec, Task, TaskGraph, TaskKind, lower_bound_cycles, task_id
from spikepipe.sim import simulate

CPSAT = {"time_limit_s": 0.5, "workers": 1, "seed": 0}
PROCESSOR_KINDS = {
    "big": Processor(name="big32os", array=SystolicArray(32, 32, "os")),
    "mid": Processor(name="mid16is", array=SystolicArray(16, 16, "is")),
    "small": Processor(name="small8ws", array=SystolicArray(8, 8, "ws")),
}


def _log_int(rng: random.Random, lo: int, hi: int) -> int:
    return max(lo, min(hi, int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))))


def random_graph(layers: int, seed: int, *, skip_prob: float = 0.15, max_dim: int = 4096,
                 max_edge_bytes: int = 1 << 20) -> TaskGraph:
    """A layer DAG with GEMM-priced F/B/W tasks; dimensions log-uniform in [1, max_dim] (some layers grouped) so a task costs from
    about 60 to 10^8 cycles on a 32x32 array."""
    rng = random.Random(seed)
    tasks: list[Task] = []
    for layer in range(layers):
        m, k, n = (_log_int(rng, 1, max_dim) for _ in range(3))
        g = _log_int(rng, 1, 32) if rng.random() < 0.2 else 1  # grouped layers stretch the range upwards
        # F: [m x k] x [k x n]; B: input gradient [m x n] x [n x k]; W: weight gradient [k x m] x [m x n]
        work = {TaskKind.F: Gemm(m, k, n, "m", g), TaskKind.B: Gemm(m, n, k, "m", g),
                TaskKind.W: Gemm(k, m, n, "k", g)}
        for kind in TaskKind:
            tasks.append(Task(task_id(kind, layer), layer, kind, gemms=(work[kind],),
                              activation_bytes=_log_int(rng, 1, 1 << 16)))
    fwd = {(i, i + 1) for i in range(layers - 1)}
    for j in range(2, layers):  # skips and branches: a layer may feed several later ones
        for i in range(j - 1):
            if rng.random() < skip_prob / max(1.0, (j - i) / 4):
                fwd.add((i, j))
    edges = []
    for i, j in sorted(fwd):
        b = 0 if rng.random() < 0.1 else _log_int(rng, 1, max_edge_bytes)
        edges += [(f"F{i}", f"F{j}", b), (f"B{j}", f"B{i}", b)]
    edges += [(f"F{layers - 1}", f"B{layers - 1}", 0)]
    edges += [(f"B{layer}", f"W{layer}", 0) for layer in range(layers)]
    specs = [LayerSpec(i, f"l{i}", "linear", (1,), (1,)) for i in range(layers)]
    return TaskGraph(specs, tasks, edges, batch=8, timesteps=1, name=f"fuzz{layers}s{seed}",
                     reference=PROCESSOR_KINDS["big"])


def random_cluster(kinds: list[str], link_bytes_per_cycle: float, latency: int) -> Cluster:
    return Cluster(tuple(PROCESSOR_KINDS[k] for k in kinds),
                   Interconnect(link_bytes_per_cycle=link_bytes_per_cycle, link_latency_cycles=latency))


def check_case(graph: TaskGraph, cluster: Cluster, schedules: list[str] | None = None,
               cpsat: dict[str, Any] | None = None, contention: bool = True) -> dict[str, Any]:
    """Assert every property for one graph on one cluster; return counts for the long-run report."""
    lb = lower_bound_cycles(graph, cluster)
    split_lb = math.ceil(sum(min(graph.cycles(t, p) for p in cluster.processors) for t in graph.topological_order())
                         / cluster.size)
    periods: dict[str, int] = {}
    stats: dict[str, Any] = {"tasks": len(graph.tasks), "processors": cluster.size, "contention_slower": [],
                             "fallbacks": 0}
    for name in schedules or names():
        opts = dict(cpsat or CPSAT) if name == "spikepipe" else {}
        s = generate(name, graph, cluster, **opts)
        validate(s, graph, cluster)
        bound = split_lb if name == "data-parallel" else lb
        assert s.period_cycles >= bound, f"{name}: period {s.period_cycles} below the lower bound {bound}"
        sim = simulate(s, cluster, graph=graph, link_contention=False, record=False)
        assert sim.late_slots == 0, f"{name}: {sim.late_slots} late slots without contention"
        assert sim.simulated_period_cycles == pytest.approx(s.period_cycles, rel=1e-9, abs=1e-6), (
            f"{name}: simulated {sim.simulated_period_cycles} != claimed {s.period_cycles}")
        periods[name] = s.period_cycles
        if name == "spikepipe" and s.info.get("fallback"):
            stats["fallbacks"] += 1
        if contention:
            real = simulate(s, cluster, graph=graph, link_contention=True, record=False)
            if real.simulated_period_cycles > s.period_cycles * (1 + 1e-9):
                stats["contention_slower"].append(name)
    if "spikepipe" in periods:
        base = {n: p for n, p in periods.items() if n in PIPELINING}
        if base:
            best = min(base.values())
            assert periods["spikepipe"] <= best, f"spikepipe {periods['spikepipe']} > best baseline {best}"
        stats["beaten_by"] = [n for n, p in periods.items() if p < periods["spikepipe"]]
    stats["periods"] = periods
    stats["lower_bound_cycles"] = lb
    return stats


cluster_kinds = st.lists(st.sampled_from(sorted(PROCESSOR_KINDS)), min_size=1, max_size=6)
link_bw = st.sampled_from([4.0, 64.0, 1024.0])
latency = st.sampled_from([0, 10, 1000])


# The flush schedules book every transfer on the links of its route, so they are fuzzed on every link width
# (narrow 4 B/cycle links once made them overload a link: the reproducers below stay as regression tests)
FLUSH = ("gpipe", "1f1b", "interleaved-1f1b", "zero-bubble")
FUZZED = list(names())
_NO_CPSAT = [n for n in FUZZED if n != "spikepipe"]


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(layers=st.integers(1, 6), seed=st.integers(0, 2**31), kinds=cluster_kinds, bw=link_bw, lat=latency)
def test_small_graphs_every_scheduler(layers, seed, kinds, bw, lat):
    check_case(random_graph(layers, seed), random_cluster(kinds, bw, lat), schedules=FUZZED, contention=False)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(layers=st.integers(1, 8), seed=st.integers(0, 2**31), kinds=cluster_kinds, bw=link_bw, lat=latency)
def test_many_graphs_every_heuristic_scheduler(layers, seed, kinds, bw, lat):
    check_case(random_graph(layers, seed), random_cluster(kinds, bw, lat), schedules=_NO_CPSAT, contention=False)


@settings(max_examples=2, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(layers=st.integers(50, 66), seed=st.integers(0, 2**31), kinds=cluster_kinds, bw=link_bw, lat=latency)
def test_large_graphs_up_to_200_tasks(layers, seed, kinds, bw, lat):
    check_case(random_graph(layers, seed), random_cluster(kinds, bw, lat), schedules=_NO_CPSAT, contention=False)


def test_large_graph_spikepipe():
    g = random_graph(66, seed=5)
    check_case(g, random_cluster(["big", "small", "mid", "big"], 64.0, 10), schedules=["spikepipe"],
               cpsat={"time_limit_s": 0.5, "workers": 1, "seed": 0, "search_evaluations": 200}, contention=False)


@pytest.mark.parametrize(("name", "layers", "seed", "kinds"), [
    ("gpipe", 2, 7, ["big"] * 3),
    ("1f1b", 3, 8, ["big"] * 4),
    ("interleaved-1f1b", 3, 8, ["big"] * 4),
    ("zero-bubble", 3, 8, ["big"] * 4),
])
def test_flush_link_overload_reproducers(name, layers, seed, kinds):
    """Found by fuzzing: with 4 B/cycle links the micro-batch transfers needed more link time than the period.
    Now valid, and the replay with queueing links stays within 2% of the claim, since the schedule booked them."""
    g, c = random_graph(layers, seed), random_cluster(kinds, 4.0, 0)
    check_case(g, c, schedules=[name], contention=False)
    s = generate(name, g, c)
    real = simulate(s, c, graph=g, link_contention=True, record=False).simulated_period_cycles
    assert real <= s.period_cycles * 1.02


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(layers=st.integers(1, 8), seed=st.integers(0, 2**31), kinds=cluster_kinds, bw=link_bw, lat=latency)
def test_flush_schedules_price_link_queueing(layers, seed, kinds, bw, lat):
    """Flush schedules book their transfers on the links, so a replay with queueing links stays close to the
    claim. Not equal: the replay serves a link first come first served, the executor fills the earliest gap in
    its own placement order (up to 0.8% apart on 240 fuzzed cases); before links were booked, narrow links ran
    16% and more over the claimed iteration."""
    g, c = random_graph(layers, seed), random_cluster(kinds, bw, lat)
    check_case(g, c, schedules=list(FLUSH), contention=False)
    for name in FLUSH:
        s = generate(name, g, c)
        real = simulate(s, c, graph=g, link_contention=True, record=False).simulated_period_cycles
        assert real <= s.period_cycles * 1.02, f"{name}: queueing links replay {real} vs claimed {s.period_cycles}"


def test_costs_span_six_orders_of_magnitude():
    cycles = [t.cycles for s in range(30) for t in random_graph(20, s).tasks]
    assert max(cycles) / min(cycles) >= 1e6
    het = random_graph(10, 1)
    big, small = PROCESSOR_KINDS["big"], PROCESSOR_KINDS["small"]
    assert any(het.cycles(t.id, small) > het.cycles(t.id, big) for t in het.tasks)  # heterogeneity is priced


@pytest.mark.slow
@settings(max_examples=10_000, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(layers=st.integers(1, 66), seed=st.integers(0, 2**31), kinds=cluster_kinds, bw=link_bw, lat=latency)
def test_ten_thousand_cases(layers, seed, kinds, bw, lat):
    check_case(random_graph(layers, seed), random_cluster(kinds, bw, lat), schedules=FUZZED, contention=False)


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(layers=st.integers(1, 8), seed=st.integers(0, 2**31), kinds=cluster_kinds, bw=link_bw, lat=latency)
def test_periodic_schedules_keep_their_period_on_queueing_links(layers, seed, kinds, bw, lat):
    """Lags include the steady-state wait for busy links (common.link_queueing_cycles), so replaying a periodic
    schedule with links that queue first come first served keeps the claimed period and starts nothing late."""
    g, c = random_graph(layers, seed), random_cluster(kinds, bw, lat)
    for name in ("pipedream", "layerpipe", "list", "spikepipe"):
        s = generate(name, g, c, **(CPSAT if name == "spikepipe" else {}))
        validate(s, g, c)
        real = simulate(s, c, graph=g, link_contention=True, record=False)
        assert real.simulated_period_cycles == pytest.approx(s.period_cycles, rel=1e-9), (
            f"{name}: queueing links replay {real.simulated_period_cycles} vs claimed {s.period_cycles}")


@pytest.mark.parametrize(("layers", "seed", "kinds", "bw", "lat", "schedules"), [
    # a micro-batched flush schedule was one byte per transfer cheaper than the validator's dependency bytes
    # (nbytes*f*f/f rounded one ulp up): 'edge B5->B4 violated' by one cycle, 400 late slots in the replay
    (12, 1728520469, ["mid", "mid", "big", "small", "big"], 4.0, 10, ["gpipe", "1f1b", "zero-bubble"]),
    (17, 1588945316, ["mid", "small", "small", "big", "small"], 4.0, 10, ["interleaved-1f1b"]),
    # two micro-batches cost less than the whole batch (DRAM stalls), so flush schedules and spikepipe (which
    # adopts the gpipe hint) came out below a bound priced on whole tasks only
    (11, 387215385, ["big"], 64.0, 0, ["gpipe", "1f1b", "interleaved-1f1b", "zero-bubble", "spikepipe"]),
])
def test_long_fuzz_run_reproducers(layers, seed, kinds, bw, lat, schedules):
    check_case(random_graph(layers, seed), random_cluster(kinds, bw, lat), schedules=schedules, contention=False)
