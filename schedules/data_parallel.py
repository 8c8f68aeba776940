"""`data-parallel`: every processor runs the whole network on B/P samples, then a ring all-reduce per layer.

Each layer's all-reduce starts when every shard's W of that layer has ended, so it overlaps the backward of the
layers below; collectives occupy every link and run one after another. The period ends when the last slot and
the last all-reduce have ended (the part of the all-reduce that could not be overlapped is in it).
"""

from __future__ import annotations

from typing import Any

from hwmodels import Cluster
from schedules.common import gradient_bytes, make_schedule, slot_cycles, training_order
from schedules.options import DataParallelOptions
from spikepipe.ir import Collective, Schedule, Slot, TaskGraph


def data_parallel(graph: TaskGraph, cluster: Cluster, options: DataParallelOptions | None = None,
                  **kwargs: Any) -> Schedule:
    DataParallelOptions.coerce(options, kwargs)  # it takes none: anything given is an error
    procs = cluster.size
    frac = 1.0 / procs
    order = training_order(graph)
    t = [0] * procs
    slots: list[Slot] = []
    w_end: dict[str, int] = {}
    for tid in order:
        ends = []
        for p in range(procs):
            d = slot_cycles(graph, cluster, tid, p, frac)
            slots.append(Slot(tid, p, t[p], d, part=p, fraction=frac))
            t[p] += d
            ends.append(t[p])
        w_end[tid] = max(ends)
    collectives = []
    link_free = 0
    for tid in order:
        task = graph.task(tid)
        if task.kind.value != "W":
            continue
        nbytes = gradient_bytes(graph, cluster, task.layer)
        dur = cluster.allreduce_cycles(nbytes)
        if dur <= 0:
            continue
        start = max(link_free, w_end[tid])
        after = tuple(Slot(tid, p, 0, 1, part=p).id for p in range(procs))
        collectives.append(Collective(f"allreduce{task.layer}", "allreduce", task.layer, nbytes, start, dur, after))
        link_free = start + dur
    compute_end = max(t)
    period = max(compute_end, link_free)
    info = {"allreduce_cycles": sum(c.duration_cycles for c in collectives),
            "allreduce_exposed_cycles": period - compute_end, "samples_per_processor_fraction": frac}
    return make_schedule("data-parallel", "flush", graph, cluster, slots, period, collectives=collectives,
                         info=info)
