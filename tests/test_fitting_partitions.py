"""schedules.fitting: the full list of partitions that fit a period, against brute force, and the seed it gives
the spikepipe scheduler."""

from __future__ import annotations

import random
from dataclasses import replace
from itertools import product

import pytest

from hwmodels.config import load_cluster
from hwmodels.interconnect import Interconnect
from schedules import fitting
from schedules.common import assignment_link_load, slot_cycles
from schedules.fitting import best_partition, blocks, chain_hops, fitting_partitions
from spikepipe.workload import load_workload


def _canonical(assigns) -> list[tuple[tuple[str, ...], ...]]:
    """Each partition as its sorted blocks (processor labels forgotten), the list sorted."""
    out = []
    for a in assigns:
        blocks = {}
        for t, p in a.items():
            blocks.setdefault(p, []).append(t)
        out.append(tuple(sorted(tuple(sorted(b)) for b in blocks.values())))
    return sorted(out)


def _brute_force(sizes: dict[str, int], processors: int, period: int) -> list[tuple[tuple[str, ...], ...]]:
    """Every labelling of the tasks, the ones within the period, deduplicated as partitions."""
    tasks = sorted(sizes)
    seen = set()
    for labels in product(range(processors), repeat=len(tasks)):
        load = [0] * processors
        for t, p in zip(tasks, labels, strict=True):
            load[p] += sizes[t]
        if max(load) <= period:
            seen.add(tuple(sorted(tuple(sorted(t for t, q in zip(tasks, labels, strict=True) if q == p))
                                  for p in set(labels))))
    return sorted(seen)


@pytest.mark.parametrize("seed", range(30))
def test_every_fitting_partition_once_against_brute_force(seed):
    rng = random.Random(seed)
    n, procs = rng.randint(1, 8), rng.randint(1, 4)
    sizes = {f"t{i}": rng.randint(1, 40) for i in range(n)}
    # from too short (no partition) through exact fits to roomy periods
    period = max(-(-sum(sizes.values()) // procs), max(sizes.values())) + rng.choice([-3, 0, 0, 1, 4, 20])
    got = fitting_partitions(sizes, procs, period)
    assert got is not None
    assert _canonical(got) == _brute_force(sizes, procs, period)
    assert len(set(_canonical(got))) == len(got)  # once each
    for a in got:  # labelled in order of each processor's biggest task, every load within the period
        assert set(a) == set(sizes)
        biggest = [max((sizes[t], -int(t[1:])) for t in a if a[t] == p) for p in sorted(set(a.values()))]
        assert biggest == sorted(biggest, reverse=True) and sorted(set(a.values())) == list(range(len(biggest)))
        assert all(sum(sizes[t] for t in a if a[t] == p) <= period for p in set(a.values()))


def test_refused_rather_than_cut():
    many = {f"t{i}": 1 for i in range(fitting.MAX_TASKS + 1)}
    assert fitting_partitions(many, 2, len(many)) is None
    # 24 unit tasks on 4 processors of 6: 24! / (6!^4 4!) partitions, far above the limit
    assert fitting_partitions({f"t{i}": 1 for i in range(24)}, 4, 6) is None
    assert fitting_partitions({"a": 5, "b": 1}, 2, 4) == []  # a task longer than the period
    assert fitting_partitions({"a": 3, "b": 3}, 1, 5) == []


def test_vgg11_at_p8s_shortest_period_has_the_528_partitions_the_exhaustive_search_found():
    # experiments/schedulers/no_schedule.py's depth-first search (another method) lists 528 at this period
    c = load_cluster(None, processors=8)
    g = load_workload("vgg11", processor=c.processors[0])
    sizes = {t: slot_cycles(g, c, t, 0) for t in g.topological_order()}
    got = fitting_partitions(sizes, 8, 1_034_486, max_nodes=300_000)
    assert got is not None and len(got) == 528
    assert fitting_partitions(sizes, 8, 1_034_486) is None  # the scheduler's default refuses this one (nodes)
    assert fitting_partitions(sizes, 8, 1_034_486 - 666) == []  # below work / P


def test_best_partition_is_a_fewest_hop_fit_and_only_for_interchangeable_processors():
    c = load_cluster(None, processors=4)
    g = load_workload("vgg11", processor=c.processors[0])
    period, stats = 2_067_656, {}
    best = best_partition(g, c, period, period, 300, 0, stats)
    assert best is not None and assignment_link_load(g, c, best) <= period
    for p in range(4):
        assert sum(slot_cycles(g, c, t, p) for t in best if best[t] == p) <= period
    assert stats["listed"] == 16_583 and stats["probed"] == fitting.PROBES and stats["fewest_hops"] == 8
    assert chain_hops(g, best) == stats["chosen_hops"] <= stats["fewest_hops"] + 1
    # the partition the caller already searches is left out, whatever its labels
    relabelled = {t: 3 - p for t, p in best.items()}
    other = best_partition(g, c, period, period, 300, 0, {}, exclude=relabelled)
    assert other is not None and blocks(other) != blocks(best)
    ring = replace(c, interconnect=Interconnect(topology="ring"))  # processors no longer interchangeable
    assert best_partition(g, ring, period, period, 300, 0, {}) is None
