"""Issue 17 item 4, fifth pass (an idea measured and dropped; experiments/README.md section 3): search the
partitions next to a schedule's own at the same period.

A neighbour exchanges tasks between two processors so that both loads stay within the period. Each neighbour is
re-packed in the schedule's per-processor orders (each processor's slots by their current start) and climbed with
the order search's moves; the smallest exchanges come first. Rounds repeat from the best neighbour while it
improves. Prints one line per round and the totals.

    .venv/bin/spikepipe simulate --network vgg11 --processors 8 --schedule spikepipe --schedule-out /tmp/v8.json
    .venv/bin/python experiments/schedulers/exchanges.py /tmp/v8.json --partitions 12 --moves 300

It reads the order search's private helpers on purpose: it measures what a move of that search would give.
"""

from __future__ import annotations

import argparse
import itertools
import random
import time
from dataclasses import replace

from hwmodels.config import load_cluster
from schedules import order_packing as packing
from schedules import order_search as search
from schedules.common import expected_dependencies, make_schedule
from spikepipe.schedule_file import from_data, read_data
from spikepipe.workload import load_workload


def neighbours(slots, period):
    """Every two-processor exchange that keeps both loads within the period, smallest first (tasks moved)."""
    now = {s.task: s.processor for s in slots}
    dur = {s.task: s.duration_cycles for s in slots}
    by: dict[int, list[str]] = {}
    for t, p in sorted(now.items()):
        by.setdefault(p, []).append(t)
    out = []
    for p, q in itertools.combinations(sorted(by), 2):
        tasks = by[p] + by[q]
        total = sum(dur[t] for t in tasks)
        if len(tasks) > 22:  # 2^n splits: a pair of big processors is left out
            continue
        for mask in range(1 << len(tasks)):
            on_p = {t for i, t in enumerate(tasks) if mask >> i & 1}
            load = sum(dur[t] for t in on_p)
            if load > period or total - load > period or on_p in (set(by[p]), set(by[q])):
                continue
            assign = dict(now)
            assign.update({t: p if t in on_p else q for t in tasks})
            out.append((sum(assign[t] != now[t] for t in now), (p, q), assign))
    out.sort(key=lambda x: (x[0], x[1], sorted(x[2].items())))
    return out


def climbed(graph, cluster, slots, assign, period, moves):
    """The slots moved to `assign`, each processor in its slots' current order, climbed for `moves` moves."""
    moved = [replace(s, processor=assign[s.task]) for s in slots]
    pb = packing.packing_problem(moved, expected_dependencies(graph, moved), cluster, graph.num_layers, period)
    pos = {t: i for i, t in enumerate(pb.ids)}
    orders, offsets = [[] for _ in range(cluster.size)], [0] * cluster.size
    for p in range(cluster.size):
        mine = sorted((s for s in moved if s.processor == p), key=lambda s: (s.start_cycles, s.id))
        orders[p] = [pos[s.id] for s in mine]
        offsets[p] = mine[0].start_cycles if mine else 0
    best, off, _, _ = search._climb(pb, orders, offsets, random.Random(0), moves, None)
    return make_schedule("spikepipe", "periodic", graph, cluster, packing.placed_slots(pb, moved, best, off), period,
                         derive_lags=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("schedule", help="a schedule file written by simulate --schedule-out")
    ap.add_argument("--partitions", type=int, default=12, help="neighbours climbed per round")
    ap.add_argument("--moves", type=int, default=300, help="order-search moves per neighbour")
    ap.add_argument("--rounds", type=int, default=4)
    a = ap.parse_args()
    data = read_data(a.schedule)
    cluster = load_cluster(None, processors=int(data["processors"]))
    graph = load_workload(data["network"], processor=cluster.processors[0])
    sched = from_data(data, graph, cluster)
    period, t0 = sched.period_cycles, time.perf_counter()
    start = best = sum(sched.gradient_delays)
    slots = list(sched.slots)
    for r in range(a.rounds):
        near = neighbours(slots, period)
        tried = []
        for _, pq, assign in near[:a.partitions]:
            s = climbed(graph, cluster, slots, assign, period, a.moves)
            tried.append((sum(s.gradient_delays), pq, s))
        if not tried:
            break
        total, pq, s = min(tried, key=lambda x: (x[0], x[1]))
        print(f"round {r}: {len(near)} neighbours, {len(tried)} climbed, best {total} (processors {pq}), "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        if total >= best:
            break
        best, slots = total, list(s.slots)
    print(f"total delay {start} -> {best} at period {period:,}")


if __name__ == "__main__":
    main()
