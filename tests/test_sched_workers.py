"""Searches split into independent jobs on several workers (schedules.workers; the order search's climbs and
best_partition's probes on processes, the window search's next windows on threads) take the same steps as one
worker: the same answer and the same counts, since each job depends only on its own arguments and results are
used in the jobs' order."""

from __future__ import annotations

import multiprocessing

import pytest
from sched_graphs import graphs

from hwmodels import Cluster
from hwmodels.config import load_cluster
from schedules import generate
from schedules.common import expected_dependencies, training_order
from schedules.fitting import best_partition
from schedules.order_search import (
    OrderSearch,
    polish_slots,
    search_orders,
    search_orders_batch,
    search_slot_orders,
)
from schedules.workers import Helper, run_jobs
from spikepipe.workload import load_workload


def _square(x: int) -> int:
    return x * x


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("job 3 failed")
    return x


def _in_child(q) -> None:
    q.put(run_jobs(_square, [1, 2, 3], 2))


@pytest.mark.parametrize("workers", [1, 2, 5])
def test_results_come_in_the_jobs_order(workers):
    assert run_jobs(_square, list(range(9)), workers) == [x * x for x in range(9)]
    assert run_jobs(_square, [], workers) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_job_raises_in_the_caller(workers):
    with pytest.raises(ValueError, match="job 3 failed"):
        run_jobs(_fail_on_three, [1, 2, 3, 4], workers)


def test_jobs_run_here_when_no_process_can_be_forked(monkeypatch):
    def no_fork(*args, **kwargs):
        raise OSError("Resource temporarily unavailable")

    monkeypatch.setattr(multiprocessing.get_context("fork"), "Process", no_fork)
    assert run_jobs(_square, [1, 2, 3], 2) == [1, 4, 9]
    assert Helper.start(_square) is None


def test_a_daemonic_process_runs_its_jobs_itself():
    # a daemonic process may not have children: the jobs run in it, one after another
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_in_child, args=(q,), daemon=True)
    p.start()
    assert q.get(timeout=60) == [1, 4, 9]
    p.join(timeout=60)
    assert p.exitcode == 0


@pytest.mark.parametrize("name", sorted(graphs()))
@pytest.mark.parametrize("procs", [2, 4])
def test_order_search_climbs_on_processes_end_where_one_worker_ends(name, procs):
    g, c = graphs()[name], Cluster.homogeneous(procs)
    s = generate("pipedream", g, c)  # its assignment and period: a fit
    assign = {x.task: x.processor for x in s.slots}
    runs = []
    for workers in (1, 2, 3):
        stats: dict = {}
        slots = search_orders(g, c, assign, s.period_cycles, training_order(g), seed=5, evaluations=240,
                              stats=stats, workers=workers)
        runs.append((slots, stats))
    assert runs[0] == runs[1] == runs[2]


@pytest.mark.parametrize("name", sorted(graphs()))
def test_a_batch_of_order_searches_ends_where_each_search_alone_ends(name):
    # three searches (two assignments, two periods) whose nine climbs share the workers
    g, c = graphs()[name], Cluster.homogeneous(3)
    bases = [generate(b, g, c) for b in ("pipedream", "layerpipe")]
    asks = [({x.task: x.processor for x in b.slots}, b.period_cycles + k * 997) for b in bases for k in (0, 1)]
    alone = []
    for assign, period in asks:
        stats: dict = {}
        alone.append((search_orders(g, c, assign, period, training_order(g), seed=2, evaluations=180,
                                    stats=stats), stats))
    for workers in (1, 2, 3):
        searches = [OrderSearch(assign, period, stats={}) for assign, period in asks]
        got = search_orders_batch(g, c, searches, training_order(g), seed=2, evaluations=180, workers=workers)
        assert list(zip(got, [x.stats for x in searches], strict=True)) == alone


@pytest.mark.parametrize("name", sorted(graphs()))
@pytest.mark.parametrize("procs", [2, 4])
def test_polish_with_a_helper_trying_the_next_move_ends_where_it_ends_alone(name, procs):
    # the polish starts from a packed schedule's own orders, where many moves are taken (sideways included): the
    # helper's guesses are dropped and tried again often, the case that must not change the walk
    g, c = graphs()[name], Cluster.homogeneous(procs)
    s = generate("pipedream", g, c)
    deps = expected_dependencies(g, s.slots)
    runs = []
    for workers in (1, 2):
        stats: dict = {}
        runs.append((polish_slots(s.slots, deps, c, g.num_layers, s.period_cycles, seed=3, evaluations=200,
                                  stats=stats, workers=workers), stats))
    assert runs[0] == runs[1]


def test_a_helper_answers_in_order_and_raises_a_jobs_failure():
    helper = Helper.start(_fail_on_three)
    assert helper is not None
    with helper:
        for x in (1, 2, 4):
            helper.submit(x)
            assert helper.result() == x
        helper.submit(3)
        with pytest.raises(ValueError, match="job 3 failed"):
            helper.result()
        helper.submit(5)  # the helper goes on after a failed job
        assert helper.result() == 5


def test_split_slots_climb_on_processes_as_on_one():
    g, c = graphs()["random-chain"], Cluster.homogeneous(3)
    s = generate("pipedream", g, c)
    deps = expected_dependencies(g, s.slots)
    out = [search_slot_orders(s.slots, deps, c, g.num_layers, s.period_cycles, training_order(g), seed=1,
                              evaluations=150, workers=w) for w in (1, 2)]
    assert out[0] == out[1]


def test_partition_probes_on_processes_choose_what_one_worker_chooses():
    c = load_cluster(None, processors=4)
    g = load_workload("vgg11", processor=c.processors[0])
    period = 2_067_656  # vgg11's shortest period at P=4: 16,583 partitions fit
    runs = []
    for workers in (1, 2):
        stats: dict = {}
        runs.append((best_partition(g, c, period, period, 300, 0, stats, workers=workers), stats))
    assert runs[0][0] is not None and runs[0] == runs[1]
