"""`pipedream` (asynchronous 1F1B with weight stashing) and `layerpipe` on balanced contiguous stages.

Both put stage k (a contiguous range of layers, balanced by schedules.stages) on processor k and repeat every
period Π = max(busiest stage, busiest link). They differ only in where the tasks sit inside the period, and the
gradient delays follow from that through ir.slot_lag_delays, which reduces to
    delay(l) = ceil((end of W_l(n) - start of F_l(n)) / Π) - 1        (absolute times of one minibatch n).

- layerpipe: every stage runs its F tasks from offset 0, then its B_l W_l descending. A forward hop therefore
  waits for the next period and so does a backward hop: one hop per period each way. When every stage fills the
  period, the round trip of stage s of p spans 2(p-1-s) + 1 periods, which gives LayerPipe's
  delay(l) = 2 * (number of stages after l's stage).
- pipedream: tasks are placed as soon as their data arrives (modulo list scheduling), so the forward ripples
  through the stages inside one period like PipeDream's 1F1B steady state. PipeDream's bookkeeping keeps p-s
  weight versions at stage s (delay p-1-s). Where the placement returns the gradient sooner than that, the
  update is applied later (W's lag raised, exactly what weight stashing with p-s versions does); where it
  cannot return it in time, the period is stretched until it can (recorded in info).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from hwmodels import Cluster
from schedules.common import (
    assignment_link_load,
    expected_dependencies,
    make_schedule,
    pack_back_to_back,
    training_order,
)
from schedules.listsched import modulo_place
from schedules.options import LayerPipeOptions, PipeDreamOptions
from schedules.stages import stage_of_layer, stage_ranges
from spikepipe.ir import Schedule, TaskGraph, TaskKind, slot_lag_delays

log = logging.getLogger(__name__)


def _stages(graph: TaskGraph, cluster: Cluster, stages: int | None) -> tuple[list, dict]:
    if stages is not None:  # a positive integer (the options' declaration checked it)
        stages = min(stages, cluster.size)
    ranges = stage_ranges(graph, cluster, stages)
    layer_stage = stage_of_layer(ranges)
    assign = {t.id: layer_stage[t.layer] for t in graph.tasks}
    return ranges, assign


def layerpipe(graph: TaskGraph, cluster: Cluster, options: LayerPipeOptions | None = None,
              **kwargs: Any) -> Schedule:
    opts = LayerPipeOptions.coerce(options, kwargs)
    ranges, assign = _stages(graph, cluster, opts.stages)
    order = training_order(graph)
    packed = pack_back_to_back(graph, cluster, assign, order)
    slots = packed.slots
    period = max(packed.busiest_load_cycles, assignment_link_load(graph, cluster, assign))
    return make_schedule("layerpipe", "periodic", graph, cluster, slots, period, derive_lags=True,
                         info={"stages": [list(r) for r in ranges], "placement": "F first from 0, then B W"})


def pipedream(graph: TaskGraph, cluster: Cluster, options: PipeDreamOptions | None = None,
              **kwargs: Any) -> Schedule:
    opts = PipeDreamOptions.coerce(options, kwargs)
    ranges, assign = _stages(graph, cluster, opts.stages)
    stages = len(ranges)
    max_stretch = float(opts.max_stretch)
    layer_stage = [assign[f"F{layer}"] for layer in range(graph.num_layers)]
    target = [stages - 1 - layer_stage[layer] for layer in range(graph.num_layers)]
    order = training_order(graph)
    load = pack_back_to_back(graph, cluster, assign, order).busiest_load_cycles
    base = max(load, assignment_link_load(graph, cluster, assign))
    period = base
    while True:
        slots = modulo_place(graph, cluster, assign, period, order)
        if slots is not None:
            sched = make_schedule("pipedream", "periodic", graph, cluster, slots, period, derive_lags=True)
            if all(d <= t for d, t in zip(sched.gradient_delays, target, strict=True)):
                break
        if period >= base * max_stretch:
            log.warning("pipedream: no placement keeps p-s weight versions up to %.1fx the period; using the "
                        "layerpipe placement", max_stretch)
            sched = layerpipe(graph, cluster, stages=opts.stages)
            return replace(sched, name="pipedream",
                           info={**sched.info, "bookkeeping": "not met: one hop per period"})
        period = period + max(1, period // 50)
    # weight stashing: the update of layer l is applied (W's lag raised) so that stage s holds p-s versions
    raised = {}
    new_slots = []
    for s in sched.slots:
        if s.kind is TaskKind.W:
            extra = target[s.layer] - sched.gradient_delays[s.layer]
            if extra:
                raised[s.task] = extra
            s = replace(s, lag=s.lag + extra)
        new_slots.append(s)
    delays = slot_lag_delays(new_slots, graph.num_layers, period)
    info = {**sched.info, "stages": [list(r) for r in ranges], "placement": "modulo-asap",
            "weight_versions": [stages - k for k in range(stages)], "w_lag_raised": raised,
            "period_stretch": period / base if base else 1.0}
    return replace(sched, slots=tuple(new_slots), gradient_delays=delays,
                   dependencies=expected_dependencies(graph, new_slots), info=info)
