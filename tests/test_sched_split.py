"""Intra-layer batch splitting (spikepipe split=True): valid, replayed at its claimed period by the simulator,
priced by the cost model, gradients reduced over the links, and faster than unsplit when one layer dominates."""

import pytest
from sched_graphs import graphs

from hwmodels import Cluster
from schedules import generate, validate
from schedules.split import split_schedule
from spikepipe.ir import TaskKind
from spikepipe.sim import simulate

FAST = {"time_limit_s": 0.3, "workers": 1}


@pytest.mark.parametrize("graph_name", sorted(graphs()))
@pytest.mark.parametrize("procs", [2, 4, 8])
def test_split_schedule_is_valid_and_simulates_at_its_period(graph_name, procs):
    g, c = graphs()[graph_name], Cluster.homogeneous(procs)
    s = split_schedule(g, c, evaluations=200)
    validate(s, g, c)
    r = simulate(s, c, graph=g, strict=True)
    assert r.simulated_period_cycles == pytest.approx(s.period_cycles)
    for sl in s.slots:  # every part priced by the cost model at its fraction
        assert sl.duration_cycles == g.cycles(sl.task, c.processors[sl.processor], sl.fraction)


def test_split_beats_the_largest_task_bound():
    g, c = graphs()["one-big-layer"], Cluster.homogeneous(4)
    whole = generate("spikepipe", g, c, **FAST)
    cut = generate("spikepipe", g, c, **FAST, split=True)
    validate(cut, g, c)
    biggest = max(t.cycles for t in g.tasks)
    assert whole.period_cycles >= biggest > cut.period_cycles
    assert cut.info["split"] and max(cut.info["parts_per_layer"]) > 1
    assert cut.period_cycles <= generate("data-parallel", g, c).period_cycles


def test_parts_of_a_task_run_on_distinct_processors_and_reduce_to_part_zero():
    g, c = graphs()["one-big-layer"], Cluster.homogeneous(4)
    s = split_schedule(g, c, evaluations=100)
    by_task = {}
    for sl in s.slots:
        by_task.setdefault(sl.task, []).append(sl)
    for parts in by_task.values():
        assert len({p.processor for p in parts}) == len(parts)
    deps = {(d.src, d.dst) for d in s.dependencies}
    for sl in s.slots:
        if sl.kind is TaskKind.W and sl.part:
            assert (sl.id, sl.task) in deps


def test_split_never_worse_than_unsplit():
    for name, g in graphs().items():
        c = Cluster.homogeneous(4)
        cut = generate("spikepipe", g, c, **FAST, split=True)
        assert cut.period_cycles <= cut.info["unsplit_period_cycles"], name
        assert cut.period_cycles <= cut.info["split_period_cycles"], name


def _broadcast_cycles(g, c, s):
    from schedules.common import weight_broadcasts

    load = {}
    for _, a, b, nbytes in weight_broadcasts(g, c, s.slots):
        for link in c.route(a, b):
            load[link] = load.get(link, 0) + c.interconnect.occupancy_cycles(nbytes)
    return load


@pytest.mark.parametrize("procs", [2, 4])
def test_weight_broadcasts_are_on_the_links_the_validator_checks(procs):
    from schedules.common import link_loads

    g, c = graphs()["one-big-layer"], Cluster.homogeneous(procs)
    s = split_schedule(g, c, evaluations=100)
    bcast = _broadcast_cycles(g, c, s)
    assert bcast, "the big layer is split, so its weights must be broadcast"
    data_only, everything = link_loads(s, c), link_loads(s, c, g)
    for link in everything:
        assert everything[link] == data_only.get(link, 0) + bcast.get(link, 0)
    assert max(everything.values()) == s.info["busiest_link_cycles"]  # what the split pricing counted


def test_validator_rejects_a_split_schedule_whose_weight_broadcast_overloads_a_link(monkeypatch):
    import schedules.common

    g, c = graphs()["one-big-layer"], Cluster.homogeneous(4)
    s = split_schedule(g, c, evaluations=100)
    whole = generate("pipedream", g, c)
    # the same schedule, with weights so large that sending them once per period cannot fit in it
    monkeypatch.setattr(schedules.common, "gradient_bytes", lambda *a: 10**12)
    with pytest.raises(Exception, match=r"link \d+->\d+ is busy"):
        validate(s, g, c)
    validate(whole, g, c)  # nothing is split there: no broadcast, nothing to overload


def test_replay_sends_the_weight_broadcasts():
    g, c = graphs()["one-big-layer"], Cluster.homogeneous(4)
    s = split_schedule(g, c, evaluations=100)
    with_graph, without = simulate(s, c, graph=g), simulate(s, c)
    bcast_bytes = sum(nb for *_, nb in __import__("schedules.common").common.weight_broadcasts(g, c, s.slots))
    assert bcast_bytes > 0
    assert with_graph.comm_bytes_per_iteration == without.comm_bytes_per_iteration + bcast_bytes
    assert with_graph.comm_cycles_per_iteration > without.comm_cycles_per_iteration
    assert with_graph.simulated_period_cycles == pytest.approx(s.period_cycles)
