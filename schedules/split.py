"""Intra-layer splitting along the batch for the `spikepipe` scheduler (option split=True).

Layer l's F, B and W tasks are each cut into k_l parts of fraction 1/k_l of the minibatch (k_l a power of two up to
P), every part priced by the cost model (task_cycles with that fraction: smaller GEMMs fill the array worse).
Parts of one task go to different processors. Data flow between parts (schedules.common.expected_dependencies):
equal splits feed shard i to shard i; different splits feed every part from every part with proportional bytes.

Weights and gradients, charged honestly:
- gradient reduction: every W part but part 0 sends its partial weight gradient (the layer's gradient bytes) to
  W part 0, which applies the update. These are real slot dependencies, so the validator checks them, the links
  carry them and the simulator replays them; the update lands when W part 0 ends.
- weight broadcast: every other processor holding an F or B part of the layer needs the new weights each
  period. It is a cross-minibatch transfer (no Dependency can express it): schedules.common.weight_broadcasts
  lists it, the link load that bounds the period here counts it (info["weight_broadcast_link_cycles"]), the
  validator checks it within the links' capacity and the simulator sends it when the update lands.

The split per layer is chosen greedily: double the parts of the layer holding the longest part, price every
step with its assignment, processor loads and link loads (data, reductions, broadcasts), keep the shortest period. Parts are assigned longest first to the least loaded processor
(distinct processors per task, the processor of the same shard upstream on ties), then re-packed per
processor by schedules.order_search for the least total delay.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from hwmodels import Cluster
from schedules.common import (
    assign_lags,
    broadcast_link_load,
    expected_dependencies,
    gradient_bytes,
    slot_cycles,
    training_order,
)
from schedules.deadline import Deadline
from schedules.order_search import search_slot_orders
from spikepipe.ir import Dependency, Schedule, Slot, TaskGraph, TaskKind, slot_lag_delays, task_id

log = logging.getLogger(__name__)

_PRICING_SHARE = 0.7  # of split_schedule's time, when limited: the rest goes to the order search


class _Prices:
    """slot_cycles memoised per (task, kind of processor, fraction): the greedy split prices every part on every
    processor at every step, and at 300 tasks x 32 processors the cost model alone took minutes."""

    def __init__(self, graph: TaskGraph, cluster: Cluster) -> None:
        self._graph, self._cluster = graph, cluster
        kinds: dict[Any, int] = {}
        self._kind = [kinds.setdefault(proc, len(kinds)) for proc in cluster.processors]
        self._memo: dict[tuple[str, int, float], int] = {}

    def __call__(self, task: str, processor: int, fraction: float = 1.0) -> int:
        key = (task, self._kind[processor], fraction)
        out = self._memo.get(key)
        if out is None:
            out = self._memo[key] = slot_cycles(self._graph, self._cluster, task, processor, fraction)
        return out


def _parts_cost(graph: TaskGraph, cluster: Cluster, k: list[int]) -> tuple[int, int]:
    """(total work, longest part) of a split on processor 0."""
    total, longest = 0, 0
    for t in graph.topological_order():
        d = slot_cycles(graph, cluster, t, 0, 1.0 / k[graph.task(t).layer])
        total += d * k[graph.task(t).layer]
        longest = max(longest, d)
    return total, longest


def split_sequence(graph: TaskGraph, cluster: Cluster, max_parts: int,
                   prices: _Prices | None = None) -> list[list[int]]:
    """Parts per layer, greedily: from no split, double the parts of the layer holding the longest part, up to
    max_parts (and P, and the batch). Every step is returned; the caller prices each with its traffic."""
    price = prices or _Prices(graph, cluster)
    k = [1] * graph.num_layers
    out = [list(k)]
    cap = min(max_parts, cluster.size, graph.batch)
    for _ in range(graph.num_layers * max(1, cap.bit_length())):
        worst = max(range(graph.num_layers), key=lambda lay: max(
            price(task_id(kind, lay), 0, 1.0 / k[lay]) for kind in graph.kinds(lay)))
        if k[worst] * 2 > cap:
            break
        k[worst] *= 2
        out.append(list(k))
    return out


def _assign(graph: TaskGraph, cluster: Cluster, k: list[int], price: _Prices) -> list[Slot]:
    procs = cluster.size
    items = []
    for t in graph.topological_order():
        lay = graph.task(t).layer
        for part in range(k[lay]):
            items.append((price(t, 0, 1.0 / k[lay]), t, part, lay))
    items.sort(key=lambda it: (-it[0], it[1], it[2]))
    load = [0] * procs
    used: dict[str, set[int]] = defaultdict(set)
    home: dict[tuple[int, int], int] = {}  # (layer, shard) -> processor, for locality on ties
    slots = []
    for _, t, part, lay in items:
        frac = 1.0 / k[lay]
        shard_home = {home.get((x, part)) for x in (lay - 1, lay, lay + 1)}
        best = min((p for p in range(procs) if p not in used[t]),
                   key=lambda p: (load[p] + price(t, p, frac), p not in shard_home, p))
        d = price(t, best, frac)
        used[t].add(best)
        load[best] += d
        home.setdefault((lay, part), best)
        slots.append(Slot(t, best, 0, d, part=part, fraction=frac))
    return slots


def reduction_dependencies(graph: TaskGraph, cluster: Cluster, slots: list[Slot]) -> list[Dependency]:
    """W part i (i > 0) sends its partial gradient to W part 0, which applies the update."""
    out = []
    for s in slots:
        if s.kind is TaskKind.W and s.part:
            out.append(Dependency(s.id, task_id(TaskKind.W, s.layer), gradient_bytes(graph, cluster, s.layer)))
    return out


@dataclass(frozen=True)
class PricedSplit:
    """One split step (parts per layer) placed and priced: its period is the busiest processor's or link's load
    per period, with the weight broadcasts of split layers on the links."""

    period_cycles: int
    slots: list[Slot]
    dependencies: list[Dependency]
    processor_cycles: dict[int, int]  # busy cycles per processor
    link_cycles: dict[tuple[int, int], int]  # busy cycles per directed link, broadcasts included
    broadcast_cycles: dict[tuple[int, int], int]  # of which the weight broadcasts


def _priced(graph: TaskGraph, cluster: Cluster, k: list[int], price: _Prices) -> PricedSplit:
    from schedules.common import link_loads

    slots = _assign(graph, cluster, k, price)
    deps = list(expected_dependencies(graph, slots)) + reduction_dependencies(graph, cluster, slots)
    load: dict[int, int] = defaultdict(int)
    for s in slots:
        load[s.processor] += s.duration_cycles
    bcast = broadcast_link_load(graph, cluster, slots)
    probe = Schedule("spikepipe", "periodic", cluster.size, max(load.values()), tuple(slots), tuple(deps),
                     (0,) * graph.num_layers)
    links = link_loads(probe, cluster)
    for link, c in bcast.items():  # the broadcasts, priced once above
        links[link] = links.get(link, 0) + c
    period = max(max(load.values()), max(links.values(), default=0))
    return PricedSplit(period, slots, deps, dict(load), links, bcast)


def split_schedule(graph: TaskGraph, cluster: Cluster, *, seed: int = 0, evaluations: int = 2000,
                   max_parts: int | None = None, info: dict[str, Any] | None = None,
                   deadline: Deadline | None = None, stats: dict[str, Any] | None = None,
                   workers: int = 1) -> Schedule:
    """`deadline` stops pricing split steps and the order search early (the unsplit step is always priced, so
    the answer is valid); `stats` receives how far each got. `workers`: processes for the order search's
    climbs (the same answer with any number)."""
    from schedules.common import lower_bound

    price = _Prices(graph, cluster)
    steps = split_sequence(graph, cluster, max_parts or cluster.size, price)
    best, priced_steps, cut = None, 0, False
    # pricing may take a share of the time left; the rest is the order search's (it sets the delays)
    pricing = None if deadline is None else Deadline.within(_PRICING_SHARE * deadline.remaining())
    for k in steps:
        if best is not None and pricing is not None and pricing.expired():
            cut = True
            break
        priced = _priced(graph, cluster, k, price)
        priced_steps += 1
        if best is None or priced.period_cycles < best[1].period_cycles:
            best = (k, priced)
    k, chosen = best
    period, slots, deps = chosen.period_cycles, chosen.slots, chosen.dependencies
    load, links, bcast = chosen.processor_cycles, chosen.link_cycles, chosen.broadcast_cycles
    search: dict[str, Any] = {}
    slots = search_slot_orders(slots, deps, cluster, graph.num_layers, period, training_order(graph),
                               seed=seed, evaluations=evaluations, deadline=deadline, stats=search,
                               workers=workers)
    if stats is not None:
        stats.update(search, split_steps=len(steps), split_steps_priced=priced_steps,
                     cut_for_time=cut or search["cut_for_time"])
    slots = list(assign_lags(slots, deps, period, cluster))
    delays = slot_lag_delays(slots, graph.num_layers, period)
    full = {**(info or {}), "lower_bound_cycles": lower_bound(graph, cluster), "split": True,
            "parts_per_layer": k, "weight_broadcast_link_cycles": max(bcast.values(), default=0),
            "busiest_link_cycles": max(links.values(), default=0),
            "busiest_processor_cycles": max(load.values())}
    return Schedule(name="spikepipe", kind="periodic", processors=cluster.size, period_cycles=int(period),
                    slots=tuple(slots), dependencies=tuple(deps), gradient_delays=delays, info=full)
