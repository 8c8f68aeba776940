"""experiments/schedulers/no_schedule.py, the proof that vgg11 P=8 cannot reach total delay 22 at its shortest
period: its partition search against brute force, its lag bounds against real schedules, and its relaxation
feasible on a schedule the scheduler found (a relaxation that excluded a real schedule would prove nothing)."""

from __future__ import annotations

import itertools
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments" / "schedulers"))

from no_schedule import delay_cases, excluded, lag_bounds, partitions  # noqa: E402

from hwmodels.config import load_cluster  # noqa: E402
from schedules import generate  # noqa: E402
from spikepipe.ir import TaskKind, task_id  # noqa: E402
from spikepipe.workload import load_workload  # noqa: E402


def _brute(sizes: dict[str, int], processors: int, period: int) -> set[frozenset[frozenset[str]]]:
    """Every labelling, each partition as a set of blocks (labels forgotten)."""
    tasks = sorted(sizes)
    out = set()
    for labels in itertools.product(range(processors), repeat=len(tasks)):
        loads = [0] * processors
        for t, p in zip(tasks, labels, strict=True):
            loads[p] += sizes[t]
        if max(loads) <= period:
            out.add(frozenset(frozenset(t for t, q in zip(tasks, labels, strict=True) if q == p)
                              for p in set(labels)))
    return out


@pytest.mark.parametrize("case", range(12))
def test_partitions_are_every_fitting_partition_once(case: int) -> None:
    rng = random.Random(case)
    n, processors = rng.randint(3, 7), rng.randint(1, 3)
    sizes = {f"t{i}": rng.randint(1, 9) for i in range(n)}
    # periods from too short to roomy: the idle-time cut must never drop a partition that fits
    period = max(max(sizes.values()), -(-sum(sizes.values()) // processors)) + rng.randint(-1, 4)
    found = partitions(sizes, processors, period)
    blocks = [frozenset(frozenset(t for t in a if a[t] == p) for p in set(a.values())) for a in found]
    assert len(blocks) == len(set(blocks))  # each partition once
    assert set(blocks) == _brute(sizes, processors, period)


@pytest.fixture(scope="module")
def vgg11_p4():
    cluster = load_cluster(None, processors=4)
    graph = load_workload("vgg11", processor=cluster.processors[0])
    sched = generate("spikepipe", graph, cluster, deterministic_time_s=0.5, search_evaluations=200)
    return graph, cluster, sched


def test_lag_bounds_hold_on_a_real_schedule(vgg11_p4) -> None:
    graph, cluster, sched = vgg11_p4
    cap = sum(sched.gradient_delays)
    bound = lag_bounds(graph, cap)
    per = sched.period_cycles
    by = {s.task: s for s in sched.slots}
    origin = by[task_id(TaskKind.F, 0)].lag * per + by[task_id(TaskKind.F, 0)].start_cycles
    for t, s in by.items():
        assert 0 <= (s.lag * per + s.start_cycles - origin) // per <= bound[t], t


def test_relaxation_admits_a_real_schedule(vgg11_p4) -> None:
    graph, cluster, sched = vgg11_p4
    cap = sum(sched.gradient_delays)
    assign = {s.task: s.processor for s in sched.slots}
    zero = (0,) * graph.num_layers
    assert excluded(graph, cluster, assign, sched.period_cycles, cap, zero, lag_bounds(graph, cap), 20.0,
                    hint=sched.slots) in ("FEASIBLE", "OPTIMAL")


@pytest.mark.parametrize("spare", [0, 1, 2])
def test_delay_cases_cover_every_vector_within_the_cap(vgg11_p4, spare: int) -> None:
    graph = vgg11_p4[0]
    weighted = [lay for lay in range(graph.num_layers) if graph.has_task(lay, TaskKind.W)]
    floor = tuple((lay % 3) if lay in weighted else 0 for lay in range(graph.num_layers))
    cap = sum(floor) + spare
    cases = delay_cases(graph, floor, cap)
    assert all(sum(v) == cap for v in cases)
    # every delay vector within the cap (from the floors, spare points on the weighted layers) is under a case
    for extra in itertools.product(range(spare + 1), repeat=len(weighted)):
        if sum(extra) > spare:
            continue
        d = list(floor)
        for lay, e in zip(weighted, extra, strict=True):
            d[lay] += e
        assert any(all(x <= y for x, y in zip(d, v, strict=True)) for v in cases), d
