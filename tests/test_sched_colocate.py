"""The communication tie-break (schedules.colocate): a hand case where W_0 can join B_0, one where it cannot
(the processor has no gap long enough), and a grid where it never costs period or delay and the result stays
valid."""

import pytest
from sched_graphs import graphs

from hwmodels import Cluster
from schedules import generate, validate
from schedules.colocate import colocate, crossing_bytes
from schedules.common import make_schedule
from schedules.deadline import Deadline
from spikepipe.ir import LayerSpec, Slot, Task, TaskGraph, TaskKind, task_id


def two_layers(dy_bytes: int) -> TaskGraph:
    cycles = {"F": 1000, "B": 1000, "W": 1000}
    tasks = [Task(task_id(k, layer), layer, k, cycles=cycles[k.value]) for layer in range(2) for k in TaskKind]
    edges = [("F0", "F1", 512), ("F1", "B1", 0), ("B1", "B0", 512), ("B0", "W0", dy_bytes), ("B1", "W1", 0)]
    specs = [LayerSpec(i, f"l{i}", "linear", (1,), (1,)) for i in range(2)]
    return TaskGraph(specs, tasks, edges, batch=1, timesteps=1, name="two")


def hand_schedule(g: TaskGraph, c: Cluster, period: int, w0_start: int):
    slots = [Slot("F0", 0, 0, 1000), Slot("B0", 0, 1000, 1000), Slot("W0", 1, w0_start, 1000),
             Slot("F1", 1, 0, 1000), Slot("B1", 1, 1500, 1000), Slot("W1", 1, 2600, 1000)]
    return make_schedule("spikepipe", "periodic", g, c, slots, period, derive_lags=True)


def test_b_and_w_share_a_processor_when_one_has_room():
    g, c = two_layers(65536), Cluster.homogeneous(2)
    s = hand_schedule(g, c, period=6000, w0_start=4000)
    validate(s, g, c)
    res = colocate(g, c, s, Deadline.within(1e9))
    out, rep = res.schedule, res.report
    validate(out, g, c)
    where = {sl.task: sl for sl in out.slots}
    # B0 crosses the most bytes (dY to W0, dX from B1), so it moves first, next to both; then F1 joins F0 (the
    # F1 -> B1 edge carries nothing): no byte crosses any more
    assert where["B0"].processor == where["W0"].processor == where["B1"].processor == 1
    assert where["F0"].processor == where["F1"].processor == 0
    assert rep["cross_bytes_before"] == 65536 + 512 + 512 and rep["cross_bytes_after"] == 0
    assert rep["moves"] == 2
    assert where["B0"].start_cycles != 1000  # its old offset was taken by B1 there: moved to a gap end
    assert out.period_cycles == s.period_cycles
    assert sum(out.gradient_delays) <= sum(s.gradient_delays)


def test_nothing_moves_when_no_gap_is_long_enough():
    g, c = two_layers(65536), Cluster.homogeneous(2)
    # processor 0 filled: F0, B0 and a 2-cycle gap only
    slots = [Slot("F0", 0, 0, 1000), Slot("B0", 0, 1000, 1000), Slot("W0", 1, 0, 1000),
             Slot("F1", 1, 1000, 1000), Slot("B1", 0, 2000, 998), Slot("W1", 1, 2000, 1000)]
    s = make_schedule("spikepipe", "periodic", g, c, slots, 3000, derive_lags=True)
    res = colocate(g, c, s, Deadline.within(1e9))
    out, rep = res.schedule, res.report
    assert {sl.task: sl.processor for sl in out.slots}["W0"] == 1
    assert rep["moves"] == 0 and out is s


def test_stops_on_the_clock():
    g, c = two_layers(65536), Cluster.homogeneous(2)
    s = hand_schedule(g, c, period=6000, w0_start=4000)
    res = colocate(g, c, s, Deadline.within(-1))
    out, rep = res.schedule, res.report
    assert out is s and rep["cut_for_time"]


@pytest.mark.parametrize("procs", [2, 4, 8])
@pytest.mark.parametrize("graph_name", sorted(graphs()))
def test_never_costs_period_or_delay(graph_name, procs):
    g, c = graphs()[graph_name], Cluster.homogeneous(procs)
    for name in ("pipedream", "layerpipe", "list"):
        s = generate(name, g, c)
        res = colocate(g, c, s, Deadline.within(1e9))
        out, rep = res.schedule, res.report
        validate(out, g, c)
        assert out.period_cycles == s.period_cycles
        assert sum(out.gradient_delays) <= sum(s.gradient_delays)
        assert rep["cross_bytes_after"] <= rep["cross_bytes_before"]
        assert rep["cross_bytes_after"] == crossing_bytes(g, {sl.task: sl.processor for sl in out.slots})
        assert (rep["moves"] > 0) == (rep["cross_bytes_after"] < rep["cross_bytes_before"])


def test_spikepipe_reports_the_tie_break():
    g, c = graphs()["skip-dag"], Cluster.homogeneous(4)
    s = generate("spikepipe", g, c, time_limit_s=2, workers=1)
    rep = s.info["colocate"]
    assert rep["cross_bytes_after"] == crossing_bytes(g, {sl.task: sl.processor for sl in s.slots}) or \
        s.info.get("relabelled_from")
