"""The SimPy replay against hand-made schedules and independent closed forms: periods, lags, delays, memory,
the data-parallel all-reduce formula, and broken schedules."""

from math import ceil

import pytest

from hwmodels import Cluster, Interconnect
from spikepipe.ir import Dependency, LayerMemory, Schedule, Slot, Task, TaskGraph, TaskKind, chain_graph
from spikepipe.sim import SimulationError, simulate

FREE = Interconnect(link_latency_cycles=0)


def two_layer_pipeline(period: int = 100, lag_b1: int = 1) -> tuple[Schedule, TaskGraph, Cluster]:
    """Layer 0 on P0 and layer 1 on P1, every task 30 cycles, free links. By hand: F0 [0,30) lag 0 -> F1 [0,30)
    lag 1 -> B1 [30,60) lag 1 -> B0 [0,30) lag 2 ... and W after B on its processor."""
    g = chain_graph([(30, 30, 30), (30, 30, 30)])
    slots = (
        Slot("F0", 0, 0, 30, lag=0), Slot("B0", 0, 30, 30, lag=2), Slot("W0", 0, 60, 30, lag=2),
        Slot("F1", 1, 0, 30, lag=1), Slot("B1", 1, 30, 30, lag=lag_b1), Slot("W1", 1, 60, 30, lag=lag_b1),
    )
    deps = tuple(Dependency(a, b) for a, b in
                 (("F0", "F1"), ("F1", "B1"), ("B1", "B0"), ("B0", "W0"), ("B1", "W1")))
    s = Schedule("hand", "periodic", 2, period, slots, deps, gradient_delays=(2, 0))
    return s, g, Cluster.homogeneous(2, interconnect=FREE)


def test_hand_made_pipeline_replays_at_its_period_with_its_delays():
    s, g, c = two_layer_pipeline()
    r = simulate(s, c, graph=g, iterations=12, strict=True)
    assert r.simulated_period_cycles == 100
    assert r.late_slots == 0
    # layer 0: F0(n) reads at 100n; W0(n) ends at 100(n+2)+90, so F0(n) has seen updates up to n-3: delay 2.
    # layer 1: F1(n) reads at 100(n+1); W1(n) ends at 100(n+1)+90 < 100(n+2): delay 0.
    assert r.gradient_delays == (2, 0)
    assert r.utilisation == (0.9, 0.9)
    assert r.makespan_cycles == 100 * (12 - 1 + 2) + 90


def test_a_too_short_period_runs_late_and_the_measured_period_shows_it():
    s, g, c = two_layer_pipeline()
    squeezed = Schedule("squeezed", "periodic", 2, 80, tuple(
        Slot(x.task, x.processor, min(x.start_cycles, 50), x.duration_cycles, lag=x.lag) for x in s.slots),
        s.dependencies, (2, 0))
    r = simulate(squeezed, c, graph=g, iterations=60)  # long enough for the backlog to saturate
    assert r.late_slots > 0
    assert r.simulated_period_cycles == 90  # each processor needs 90 cycles of work per minibatch
    with pytest.raises(SimulationError) as exc:
        simulate(squeezed, c, graph=g, iterations=16, strict=True)
    assert exc.value.slot is not None and exc.value.minibatch is not None


def test_a_wrong_lag_is_caught_with_slot_and_minibatch():
    s, g, c = two_layer_pipeline(lag_b1=0)  # B1 would run before F1 of the same minibatch
    with pytest.raises(SimulationError, match=r"slot B1 of minibatch 0 .*F1") as exc:
        simulate(s, c, graph=g, strict=True)
    assert (exc.value.slot, exc.value.minibatch) == ("B1", 0)


def test_a_dropped_dependency_is_caught_from_the_graph_not_from_the_schedule():
    s, g, c = two_layer_pipeline(lag_b1=0)
    dropped = Schedule(s.name, s.kind, s.processors, s.period_cycles, s.slots,
                       tuple(d for d in s.dependencies if d.src != "F1"), s.gradient_delays)
    with pytest.raises(SimulationError, match="B1"):
        simulate(dropped, c, graph=g, strict=True)
    simulate(dropped, c, strict=True)  # without the graph only the schedule's own (incomplete) list is known


def test_a_dependency_against_processor_order_deadlocks_loudly():
    g = chain_graph([(10, 10, 10)])
    slots = (Slot("B0", 0, 0, 10), Slot("F0", 0, 10, 10), Slot("W0", 0, 20, 10))
    s = Schedule("backwards", "flush", 1, 30, slots, (), (0,))
    with pytest.raises(SimulationError, match="deadlock"):
        simulate(s, Cluster.homogeneous(1), graph=g)


@pytest.mark.parametrize("latency,bw,nbytes", [(100, 64.0, 0), (100, 64.0, 6400), (7, 3.0, 1000), (0, 1.0, 50)])
def test_transfer_time_is_latency_plus_bytes_over_bandwidth(latency, bw, nbytes):
    g = chain_graph([(10, 10, 10), (10, 10, 10)], edge_bytes=nbytes)
    c = Cluster.homogeneous(2, interconnect=Interconnect(link_bytes_per_cycle=bw, link_latency_cycles=latency))
    hop = latency + ceil(nbytes / bw)
    # a flush schedule placed by hand with the transfer exactly on time: strict replay must accept it
    t1 = 10 + hop
    slots = (Slot("F0", 0, 0, 10), Slot("F1", 1, t1, 10), Slot("B1", 1, t1 + 10, 10), Slot("W1", 1, t1 + 20, 10),
             Slot("B0", 0, t1 + 20 + hop, 10), Slot("W0", 0, t1 + 30 + hop, 10))
    period = t1 + 40 + hop
    s = Schedule("hand", "flush", 2, period, slots, (), (0, 0))
    r = simulate(s, c, graph=g, iterations=4, strict=True)
    assert r.simulated_period_cycles == period
    assert r.comm_cycles_per_iteration == 2 * hop
    assert r.comm_bytes_per_iteration == 2 * nbytes
    late = Schedule("late", "flush", 2, period, tuple(
        x if x.task != "B0" else Slot("B0", 0, t1 + 19 + hop, 10) for x in slots), (), (0, 0))
    with pytest.raises(SimulationError, match="B0"):
        simulate(late, c, graph=g, iterations=2, strict=True)


def test_memory_of_the_sequential_run_is_weights_plus_every_forward_activation():
    layers = 4
    tasks = [Task(f"{k}{i}", i, TaskKind(k), cycles=100, activation_bytes=(1000 * (i + 1) if k == "F" else 0))
             for i in range(layers) for k in "FBW"]
    base = chain_graph([(100, 100, 100)] * layers)
    mem = [LayerMemory(weight_bytes=10_000 * (i + 1), optimizer_bytes=500) for i in range(layers)]
    g = TaskGraph(base.layers, tasks, base.edges, batch=1, timesteps=1, memory=mem)
    c = Cluster.homogeneous(1)
    order = ["F0", "F1", "F2", "F3", "B3", "W3", "B2", "W2", "B1", "W1", "B0", "W0"]
    slots = tuple(Slot(t, 0, 100 * i, 100) for i, t in enumerate(order))
    s = Schedule("seq", "flush", 1, 1200, slots, (), (0,) * layers)
    r = simulate(s, c, graph=g, iterations=3, strict=True)
    weights = sum(m.weight_bytes + m.optimizer_bytes for m in mem)
    assert r.weight_bytes == (weights,)
    assert r.peak_activation_bytes == (1000 + 2000 + 3000 + 4000,)
    assert r.peak_memory_bytes == (weights + 10_000,)
    assert r.peak_stash_bytes == (0,)  # flush schedules apply every update before the next read


def test_stashed_versions_follow_in_flight_minibatches():
    s, g, c = two_layer_pipeline()
    mem = [LayerMemory(1000, 0), LayerMemory(1000, 0)]
    g = TaskGraph(g.layers, g.tasks, g.edges, batch=1, timesteps=1, memory=mem)
    r = simulate(s, c, graph=g, iterations=12, strict=True)
    # layer 0: minibatch n is in flight from 100n to 100(n+2)+90, so 3 overlap at most: 2 extra copies on P0;
    # layer 1: from 100(n+1) to 100(n+1)+90, never two at once: no extra copy on P1.
    assert r.peak_stash_bytes == (2000, 0)
    assert r.weight_bytes == (1000, 1000)
    assert simulate(s, c, graph=g, iterations=12, weight_stashing=False).peak_stash_bytes == (0, 0)


@pytest.mark.parametrize("procs", [2, 4, 8])
@pytest.mark.parametrize("latency,bw", [(0, 64.0), (100, 64.0), (50, 8.0)])
def test_data_parallel_period_matches_the_ring_allreduce_formula(procs, latency, bw):
    """Oracle written from scratch: every processor runs the whole chain on 1/P of the batch, each layer's
    gradient is ring-all-reduced (2(P-1) steps of latency + (bytes/P)/bandwidth) once all shards' W_l are done
    and the previous all-reduce has left the links; the period ends with the last of both."""
    schedules = pytest.importorskip("schedules")
    costs = [(4000, 5000, 3000), (8000, 6000, 7000), (2000, 2500, 1500), (6000, 6000, 6000)]
    base = chain_graph(costs, edge_bytes=4096, batch=16)
    mem = [LayerMemory(weight_bytes=200_000 * (i + 1), optimizer_bytes=0) for i in range(len(costs))]
    g = TaskGraph(base.layers, base.tasks, base.edges, batch=16, timesteps=1, memory=mem)
    c = Cluster.homogeneous(procs, interconnect=Interconnect(link_bytes_per_cycle=bw, link_latency_cycles=latency))
    order = [f"F{i}" for i in range(len(costs))] + [f"{k}{i}" for i in reversed(range(len(costs))) for k in "BW"]
    t, w_end = 0, {}
    for tid in order:
        t += ceil(g.task(tid).cycles / procs)
        w_end[tid] = t
    link_free = 0
    for tid in order:
        if tid[0] == "W":
            layer = int(tid[1:])
            dur = 2 * (procs - 1) * (latency + ceil(ceil(mem[layer].weight_bytes / procs) / bw))
            link_free = max(link_free, w_end[tid]) + dur
    expected = max(t, link_free)
    s = schedules.generate("data-parallel", g, c)
    r = simulate(s, c, graph=g, iterations=5, strict=True)
    assert r.simulated_period_cycles == expected
    assert r.gradient_delays == (0,) * len(costs)


def test_options_are_checked():
    s, g, c = two_layer_pipeline()
    with pytest.raises(SimulationError, match="processors"):
        simulate(s, Cluster.homogeneous(3), graph=g)
    with pytest.raises(SimulationError, match="iterations"):
        simulate(s, c, iterations=0)


def test_replay_is_deterministic():
    s, g, c = two_layer_pipeline()
    a = simulate(s, c, graph=g, iterations=10)
    b = simulate(s, c, graph=g, iterations=10)
    assert a.slot_records == b.slot_records and a.transfer_records == b.transfer_records


def test_without_dma_the_sender_is_busy_for_its_transfers():
    s, g, _ = two_layer_pipeline()
    c = Cluster.homogeneous(2, interconnect=Interconnect(link_latency_cycles=5))
    on = simulate(s, c, graph=g, iterations=12, strict=True)
    assert on.late_slots == 0
    off = simulate(s, c, graph=g, iterations=12, overlap_comm=False)
    # P0 sends F0's output for 5 cycles before B0 (due right after F0), which pushes W0 too; P1 sends B1's
    # gradient before W1
    assert off.late_slots > 0 and off.max_late_cycles == 5
    assert {v.slot for v in off.violations} == {"B0", "W0", "W1"}
    assert all(v.reason == "processor" for v in off.violations)
    assert off.simulated_period_cycles == 100  # the 10 idle cycles per period absorb it
    with pytest.raises(SimulationError, match="still busy"):
        simulate(s, c, graph=g, iterations=12, overlap_comm=False, strict=True)
