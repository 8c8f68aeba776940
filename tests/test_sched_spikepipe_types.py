"""Typed seams of the spikepipe scheduler (issue 20 item 3): its options object, its report, the one Deadline type,
and the polish step's exact scoring."""

import time

import pytest
from sched_graphs import graphs, random_dag

from hwmodels import Cluster, Interconnect
from schedules import generate, validate
from schedules.common import (
    ScheduleOptionError,
    assignment_link_load,
    check_options,
    expected_dependencies,
    make_schedule,
)
from schedules.deadline import Deadline
from schedules.listsched import greedy_assignment
from schedules.order_search import polish_slots, search_orders
from schedules.spikepipe_options import DEFAULT_COMPARE, SpikePipeOptions

# today's option names of the generator (before the dataclass): the dataclass must take exactly these
NAMES = ("time_limit_s", "workers", "seed", "period_slack", "compare", "deterministic", "deterministic_time_s",
         "search_evaluations", "split", "max_parts", "budget_mode")


def test_options_fields_and_defaults_are_the_generators():
    assert set(SpikePipeOptions.names()) == set(NAMES)
    o = SpikePipeOptions.from_mapping({})
    assert (o.time_limit_s, o.workers, o.seed, o.period_slack, o.deterministic, o.deterministic_time_s,
            o.search_evaluations, o.split, o.max_parts) == (None, 2, 0, 0.0, True, None, 3000, False, None)
    assert o.compare == DEFAULT_COMPARE
    r = o.resolved()
    assert r.budget_mode == "deterministic" and r.deterministic_time_s == 8.5
    assert SpikePipeOptions.from_mapping({"time_limit_s": 3}).resolved().budget_mode == "wall-clock"


def test_unknown_option_raises_what_check_options_raises():
    with pytest.raises(ScheduleOptionError) as ours:
        SpikePipeOptions.from_mapping({"bogus": 1, "seed": 2})
    with pytest.raises(ScheduleOptionError) as theirs:
        check_options("spikepipe", {"bogus": 1, "seed": 2}, NAMES)
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(ScheduleOptionError) as via_generator:
        generate("spikepipe", graphs()["uniform-chain"], Cluster.homogeneous(2), bogus=1, seed=2)
    assert str(via_generator.value) == str(theirs.value)


@pytest.mark.parametrize("key,value,message", [
    ("time_limit_s", 0, "time_limit_s must be a number of seconds > 0"),
    ("time_limit_s", "5", "time_limit_s must be a number of seconds > 0"),
    ("workers", 0, "need time_limit_s > 0, workers >= 1"),
    ("period_slack", 1.0, "0 <= period_slack < 1"),
    ("period_slack", -0.1, "0 <= period_slack < 1"),
    ("search_evaluations", -1, "search_evaluations >= 0"),
    ("max_parts", 0, "max_parts must be a positive integer"),
    ("deterministic_time_s", -2, "deterministic_time_s must be a number of seconds > 0"),
])
def test_bad_values_raise_the_typed_error(key, value, message):
    with pytest.raises(ScheduleOptionError, match=message):
        SpikePipeOptions.from_mapping({key: value})
    with pytest.raises(ScheduleOptionError, match=message):  # the generator validates through the same object
        generate("spikepipe", graphs()["uniform-chain"], Cluster.homogeneous(2), **{key: value})


def test_report_keys_are_the_info_contract():
    g, c = graphs()["skip-dag"], Cluster.homogeneous(3)
    s = generate("spikepipe", g, c, deterministic_time_s=0.1)
    validate(s, g, c)
    for k in ("status", "phase1", "phase2", "phase2_source", "budget", "reproducible", "wall_guard_fired",
              "delay_lower_bound", "delay_lower_bound_for_assignment", "delay_gap", "objective_total_delay",
              "period_gap_to_lower_bound", "period_proven_optimal", "order_search", "colocate", "polish"):
        assert k in s.info, k
    assert s.info["objective_total_delay"] == sum(s.gradient_delays)
    assert set(s.info["budget"]) == {"time_limit_s", "phases_s", "baselines_s", "accounted_s", "elapsed_s",
                                     "skipped_for_time"}
    assert s.info["phase1"]["link_constraints"] >= 0 and "status" in s.info["phase2"]


def test_deadline_parts():
    d = Deadline.start(10.0)
    assert 0 <= d.elapsed() < d.limit_s and not d.expired()
    assert d.first(0.5).end_s == pytest.approx(d.start_s + 5.0)
    assert d.ending_earlier(4.0).end_s == pytest.approx(d.start_s + 6.0)
    assert Deadline.within(-1).expired() and Deadline(1.0, time.perf_counter() - 2).expired()


@pytest.mark.parametrize("seed,procs", [(0, 2), (1, 3), (2, 4), (5, 3)])
def test_polish_keeps_processors_and_is_exact(seed, procs):
    """The polish scores with the link waits counted: the delays it reports for its best orders are the ones
    make_schedule derives (its own scoring is the oracle's), it never moves a slot to another processor, and
    a schedule built from its slots is valid."""
    # slow links on a ring, so transfers queue behind each other
    g = random_dag(8, seed=seed)
    c = Cluster.homogeneous(procs, interconnect=Interconnect(link_bytes_per_cycle=0.5, topology="ring"))
    assign = greedy_assignment(g, c)
    period = max(max(sum(g.cycles(t) for t in g.topological_order() if assign[t] == p) for p in range(procs)),
                 assignment_link_load(g, c, assign))
    slots = search_orders(g, c, assign, period, g.topological_order(), seed=seed, evaluations=200)
    deps = expected_dependencies(g, slots)
    stats: dict = {}
    out = polish_slots(slots, deps, c, g.num_layers, period, seed=seed, evaluations=200, stats=stats)
    assert {s.task: s.processor for s in out} == assign
    # every move spent, or the climb stopped for want of progress (never for time)
    assert not stats["cut_for_time"] and (stats["evaluations"] == 200 or stats["stalled"] == 1)
    assert stats["evaluations"] <= 200
    stated = make_schedule("x", "periodic", g, c, out, period)  # the polish's own lags
    derived = make_schedule("x", "periodic", g, c, out, period, derive_lags=True)
    validate(derived, g, c)
    assert stated.gradient_delays == derived.gradient_delays
    validate(stated, g, c)
