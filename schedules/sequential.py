"""`sequential`: every task on one processor, back to back: the denominator of every speedup."""

from __future__ import annotations

from typing import Any

from hwmodels import Cluster
from schedules.common import make_schedule, pack_back_to_back, training_order
from schedules.options import SequentialOptions
from spikepipe.ir import Schedule, TaskGraph


def sequential(graph: TaskGraph, cluster: Cluster, options: SequentialOptions | None = None,
               **kwargs: Any) -> Schedule:
    """One iteration per period on processor 0 (the others idle); period = sum of its task cycles."""
    SequentialOptions.coerce(options, kwargs)  # it takes none: anything given is an error
    order = training_order(graph)
    packed = pack_back_to_back(graph, cluster, dict.fromkeys(order, 0), order)
    return make_schedule("sequential", "flush", graph, cluster, packed.slots, packed.busiest_load_cycles,
                         info={"processors_used": 1, "order": "F ascending, then B_l W_l descending"})
