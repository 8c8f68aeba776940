"""The validator accepts generated schedules and rejects each kind of broken one, with the grid in the message."""

from dataclasses import replace

import pytest

from hwmodels import Cluster, Interconnect
from schedules import generate, validate
from schedules.common import make_schedule
from spikepipe.ir import Schedule, ScheduleError, Slot, chain_graph

GRAPH = chain_graph([(3000, 4000, 2000), (5000, 3000, 3000), (2000, 2000, 1000)], edge_bytes=640, batch=8)
CLUSTER = Cluster.homogeneous(3)


def _broken(s: Schedule, sid: str, **change) -> Schedule:
    return replace(s, slots=tuple(replace(x, **change) if x.id == sid else x for x in s.slots))


@pytest.fixture(scope="module")
def layer() -> Schedule:
    s = generate("layerpipe", GRAPH, CLUSTER)
    validate(s, GRAPH, CLUSTER)
    return s


def _rejects(s: Schedule, fragment: str, graph=GRAPH, cluster=CLUSTER) -> str:
    with pytest.raises(ScheduleError) as exc:
        validate(s, graph, cluster)
    msg = str(exc.value)
    assert fragment in msg.splitlines()[0], msg
    assert f"schedule {s.name} (" in msg  # the grid is printed
    return msg


def test_processor_overlap(layer):
    f0 = layer.slot("F0")
    msg = _rejects(_broken(layer, "B0", start_cycles=f0.start_cycles + 1), "at once")
    assert "marked '!'" in msg


def test_slot_outside_period(layer):
    _rejects(_broken(layer, "F1", start_cycles=layer.period_cycles), "outside the period")


def test_wrap_is_accepted_when_cyclically_free_and_rejected_over_the_first_slot(layer):
    # a periodic slot may run past the period end (docs/design.md section 4.2); its tail occupies the start of
    # the period. Processor 2 idles at the end of the period, so W2 and the slots after it may move later.
    period, p2 = layer.period_cycles, sorted((x for x in layer.slots if x.processor == 2), key=lambda x: x.start_cycles)
    idle = period - p2[-1].end_cycles
    assert idle > 1 and p2[0].start_cycles == 0
    last = p2[-1]
    free = make_schedule("wrapped", "periodic", GRAPH, CLUSTER, [
        replace(x, start_cycles=x.start_cycles + idle + 1 if x.processor == 2 and x.start_cycles > 0 else x.start_cycles,
                lag=0) for x in layer.slots], period, derive_lags=True)
    shifted = free.slot(last.id)
    assert shifted.wraps(period) and shifted.pieces(period)[1] == (0, 1)
    _rejects(free, "at once")  # its tail [0, 1) runs into the first slot, which starts at 0
    first = p2[0]
    ok = make_schedule("wrapped", "periodic", GRAPH, CLUSTER, [
        replace(x, start_cycles=1, lag=0) if x.id == first.id else replace(x, lag=0) for x in free.slots],
        period, derive_lags=True)
    validate(ok, GRAPH, CLUSTER)  # the first slot moved one cycle later: cyclically free
    assert any(x.wraps(period) for x in ok.slots)
    msg = _rejects(_broken(ok, last.id, start_cycles=shifted.start_cycles + 1), "at once")
    assert f"{last.id} [" in msg.splitlines()[0] and "wrapping: [0, 2)" in msg and f"marked '!': {last.id}" in msg


def test_duration_longer_than_the_period(layer):
    _rejects(_broken(layer, "F1", duration_cycles=layer.period_cycles + 1), "longer than the period")


def test_flush_slot_may_not_wrap():
    s = generate("gpipe", GRAPH, CLUSTER)
    validate(s, GRAPH, CLUSTER)
    last = max(s.slots, key=lambda x: x.end_cycles)
    _rejects(_broken(s, last.id, start_cycles=s.period_cycles - last.duration_cycles + 1), "outside the period")


def test_violated_edge(layer):
    b1 = layer.slot("B1")
    _rejects(_broken(layer, "B1", lag=b1.lag - 1), "violated")


def test_wrong_duration(layer):
    _rejects(_broken(layer, "F2", duration_cycles=layer.slot("F2").duration_cycles - 1), "cost model")


def test_missing_task(layer):
    _rejects(replace(layer, slots=tuple(x for x in layer.slots if x.id != "W1")), "W1")


def test_wrong_fraction(layer):
    s = _broken(layer, "F0", fraction=0.5, duration_cycles=1500)
    _rejects(s, "sum to 0.5")


def test_missing_dependency(layer):
    _rejects(replace(layer, dependencies=layer.dependencies[1:]), "missing from the schedule's dependencies")


def test_wrong_delays(layer):
    d = list(layer.gradient_delays)
    d[0] += 1
    _rejects(replace(layer, gradient_delays=tuple(d)), "gradient delays")


def test_flush_with_lag():
    s = generate("gpipe", GRAPH, CLUSTER)
    validate(s, GRAPH, CLUSTER)
    sid = s.slots[0].id
    _rejects(_broken(s, sid, lag=1), "flush")


def test_flush_microbatch_coverage():
    s = generate("1f1b", GRAPH, CLUSTER, microbatches=4)
    validate(s, GRAPH, CLUSTER)
    _rejects(replace(s, slots=tuple(x for x in s.slots if x.id != "F1.m3")), "F1")


def test_link_over_capacity():
    slow = Cluster.homogeneous(2, interconnect=Interconnect(link_bytes_per_cycle=0.01, link_latency_cycles=0))
    g = chain_graph([(100, 100, 100)] * 2, edge_bytes=1000)
    slots = [Slot("F0", 0, 0, 100), Slot("B0", 0, 100, 100), Slot("W0", 0, 200, 100),
             Slot("F1", 1, 0, 100), Slot("B1", 1, 100, 100), Slot("W1", 1, 200, 100)]
    s = make_schedule("handmade", "periodic", g, slow, slots, 300, derive_lags=True)
    _rejects(s, "busy", g, slow)


def test_collective_before_its_gradients():
    c = Cluster.homogeneous(4)
    s = generate("data-parallel", GRAPH, c)
    validate(s, GRAPH, c)
    bad = replace(s, collectives=(replace(s.collectives[0], start_cycles=0),) + s.collectives[1:])
    _rejects(bad, "before", GRAPH, c)


def test_processor_count_mismatch(layer):
    _rejects(layer, "processors", GRAPH, Cluster.homogeneous(4))


def test_json_round_trip_stays_valid(layer):
    s = Schedule.from_dict(__import__("json").loads(layer.to_json()))
    validate(s, GRAPH, CLUSTER)
    assert s == layer
