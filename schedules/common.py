"""Helpers every generator and the validator share: slot pricing, slot-level dependencies, lags, link loads."""

from __future__ import annotations

import heapq
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from math import ceil
from typing import Any

import networkx as nx

from hwmodels import Cluster
from spikepipe.ir import (
    Collective,
    Dependency,
    Schedule,
    ScheduleError,
    Slot,
    SpikePipeError,
    TaskGraph,
    TaskKind,
    slot_lag_delays,
)

log = logging.getLogger(__name__)


class ScheduleOptionError(SpikePipeError):
    """A generator was given an option it cannot honour (bad value, unknown name)."""


def check_options(name: str, options: Mapping[str, Any], known: Iterable[str]) -> None:
    """The one message for an option a generator does not take (schedules.options.ScheduleOptions.from_mapping
    calls it with the declared names)."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ScheduleOptionError(
            f"schedule {name!r} got unknown option(s) {unknown}; it takes: {', '.join(sorted(known)) or 'none'}")


def positive_int_option(name: str, key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ScheduleOptionError(f"schedule {name!r}: option {key} must be a positive integer, got {value!r}")
    return value


def slot_cycles(graph: TaskGraph, cluster: Cluster, task: str, processor: int, fraction: float = 1.0) -> int:
    """What the cost model charges for (a fraction of) a task on one processor of the cluster."""
    return graph.cycles(task, cluster.processors[processor], fraction)


def transfer_cycles(cluster: Cluster, src: int, dst: int, nbytes: int) -> int:
    return cluster.transfer_cycles(src, dst, nbytes) if src != dst else 0


def training_order(graph: TaskGraph) -> tuple[str, ...]:
    """A topological order that runs each layer's W right after its B (F ascending, then B_l W_l descending),
    the order a single processor uses so that gradients leave as early as possible."""
    g = graph.nx

    def key(tid: str) -> tuple[int, int, int]:
        t = graph.task(tid)
        if t.kind is TaskKind.F:
            return (0, t.layer, 0)
        return (1, -t.layer, 0 if t.kind is TaskKind.B else 1)

    return tuple(nx.lexicographical_topological_sort(g, key=key))


def microbatch_fraction(slots: Sequence[Slot]) -> float:
    return sum(s.fraction for s in slots)


def expected_dependencies(graph: TaskGraph, slots: Iterable[Slot]) -> tuple[Dependency, ...]:
    """Slot-level edges implied by the graph: for every edge u->v and every micro-batch, u's slots feed v's.

    When u and v are split into the same parts (data parallel shards) part i feeds part i; otherwise every
    slot of u feeds every slot of v, and u's share of the bytes is spread over v's slots in proportion to their
    fractions (splitting along the batch).
    """
    by_task: dict[tuple[str, int], list[Slot]] = defaultdict(list)
    for s in slots:
        by_task[(s.task, s.microbatch)].append(s)
    microbatches = sorted({mb for (_, mb) in by_task})
    deps: list[Dependency] = []
    for u, v, nbytes in graph.edges:
        for mb in microbatches:
            us, vs = by_task.get((u, mb), []), by_task.get((v, mb), [])
            if not us or not vs:
                continue
            if len(us) > 1 and sorted(s.part for s in us) == sorted(s.part for s in vs):
                vpart = {s.part: s for s in vs}
                for su in us:
                    deps.append(Dependency(su.id, vpart[su.part].id, ceil(nbytes * su.fraction)))
                continue
            vtotal = microbatch_fraction(vs)
            for su in us:
                for sv in vs:
                    # share first: one consumer slot gets exactly 1.0, so the bytes equal what the generator priced
                    # (nbytes * f * f / f can land one ulp above nbytes * f and ceil to one byte more)
                    share = 1.0 if len(vs) == 1 else sv.fraction / vtotal
                    deps.append(Dependency(su.id, sv.id, ceil(nbytes * su.fraction * share)))
    return tuple(deps)


def link_queueing_cycles(slots: Sequence[Slot], deps: Sequence[Dependency], period: int,
                         cluster: Cluster) -> dict[tuple[str, str], int]:
    """Cycles each cross-processor transfer waits for busy links in the steady state, per (src, dst) slot pair
    (queue_waits on the schedule's transfers, requested when their producers end)."""
    by_id = {s.id: s for s in slots}
    own: list[tuple[Dependency, int, tuple[tuple[int, int], ...]]] = []
    for d in deps:
        a, b = by_id[d.src].processor, by_id[d.dst].processor
        if a != b and d.bytes > 0:
            own.append((d, by_id[d.src].end_cycles, cluster.route(a, b)))
    occ = cluster.interconnect.occupancy_cycles
    waits = queue_waits([t for _, t, _ in own], [occ(d.bytes) for d, _, _ in own], [r for _, _, r in own], period,
                        cluster.interconnect.link_latency_cycles)
    wait: dict[tuple[str, str], int] = {}
    for (d, _, _), w in zip(own, waits, strict=True):
        if w > 0:
            wait[(d.src, d.dst)] = max(wait.get((d.src, d.dst), 0), w)
    return wait


def queue_waits(requests: Sequence[int], occupancy: Sequence[int], routes: Sequence[tuple[tuple[int, int], ...]],
                period: int, latency_cycles: int) -> list[int]:
    """Steady-state waits (cycles) of transfers requested every period at the given in-period times (a time past
    the period end: requested in the next period), each crossing its route's links hop by hop (store-and-forward)
    and holding a link for its occupancy. Links serve first come first served, ties in the given order, as the
    simulator's DMA does. Three periods are replayed from empty links and the worse of the last two is kept: with
    link load below the period the queues repeat by then; one more period is replayed when a request falls past
    the period end, so that the last period measured still meets the requests of the one after it. A transfer
    alone on all its links never waits, so only those sharing a link are replayed (the search scores thousands
    of packings with this)."""
    out = [0] * len(requests)
    users: dict[tuple[int, int], int] = defaultdict(int)
    for route in routes:
        for link in route:
            users[link] += 1
    shared = [i for i, route in enumerate(routes) if any(users[link] > 1 for link in route)]
    if not shared:
        return out
    measured = (1, 2)
    rounds = 3 + any(requests[i] > period for i in shared)
    arrival: dict[tuple[int, int], int] = {}
    if all(len(routes[i]) == 1 for i in shared):
        # one link per transfer (all-to-all): the links' queues are independent, each served in the heap's
        # order restricted to it (request time, then the order given); the order search's common case
        on: dict[tuple[int, int], list[tuple[int, int, int, int]]] = defaultdict(list)
        for k in range(rounds):
            for n, i in enumerate(shared):
                on[routes[i][0]].append((k * period + requests[i], k * len(shared) + n, i, k))
        for events in on.values():
            events.sort()
            busy = 0
            for t, _, i, k in events:
                busy = max(t, busy) + occupancy[i]
                arrival[(i, k)] = busy + latency_cycles - k * period
    else:
        _replay_hops(requests, occupancy, routes, period, latency_cycles, shared, rounds, arrival)
    for i in shared:
        free_flow = requests[i] + len(routes[i]) * (latency_cycles + occupancy[i])
        out[i] = max(0, max(arrival[(i, k)] for k in measured) - free_flow)
    return out


def _replay_hops(requests: Sequence[int], occupancy: Sequence[int], routes: Sequence[tuple[tuple[int, int], ...]],
                 period: int, latency_cycles: int, shared: Sequence[int], rounds: int,
                 arrival: dict[tuple[int, int], int]) -> None:
    """queue_waits' replay for routes of several hops: one event heap over all links, store and forward."""
    heap: list[tuple[int, int, int, int, int]] = []
    seq = 0
    for k in range(rounds):
        for i in shared:
            heap.append((k * period + requests[i], seq, i, 0, k))
            seq += 1
    heapq.heapify(heap)
    free: dict[tuple[int, int], int] = defaultdict(int)
    while heap:
        t, _, i, hop, k = heapq.heappop(heap)
        route = routes[i]
        start = max(t, free[route[hop]])
        free[route[hop]] = start + occupancy[i]
        done = free[route[hop]] + latency_cycles
        if hop + 1 < len(route):
            heapq.heappush(heap, (done, seq, i, hop + 1, k))
            seq += 1
        else:
            arrival[(i, k)] = done - k * period


def assign_lags(slots: Sequence[Slot], deps: Sequence[Dependency], period: int, cluster: Cluster,
                minimum: Mapping[str, int] | None = None) -> tuple[Slot, ...]:
    """The smallest lags that satisfy every dependency given the in-period offsets:
    r(v) = max over u->v of r(u) + ceil((s(u) + d(u) + c(u,v) + q(u,v) - s(v)) / period), at least 0 (or
    `minimum`), where q is the steady-state wait for busy links (link_queueing_cycles), so that a replay on links
    that queue keeps the claimed period instead of starting slots late."""
    by_id = {s.id: s for s in slots}
    queue = link_queueing_cycles(slots, deps, period, cluster)
    g = nx.DiGraph()
    g.add_nodes_from(by_id)
    for d in deps:
        g.add_edge(d.src, d.dst, bytes=d.bytes)
    lag: dict[str, int] = {}
    for sid in nx.topological_sort(g):
        v = by_id[sid]
        r = (minimum or {}).get(sid, 0)
        for uid in g.predecessors(sid):
            u = by_id[uid]
            c = transfer_cycles(cluster, u.processor, v.processor, g.edges[uid, sid]["bytes"])
            need = u.end_cycles + c + queue.get((uid, sid), 0) - v.start_cycles
            r = max(r, lag[uid] + -(-need // period))
        lag[sid] = r
    return tuple(replace(s, lag=lag[s.id]) for s in slots)


def gradient_bytes(graph: TaskGraph, cluster: Cluster, layer: int) -> int:
    """Bytes of one layer's weight gradient (and of its weights): the graph's weight bytes, else weights times the
    word size."""
    wb = graph.weight_bytes(layer)
    if wb > 0:
        return wb
    return graph.layers[layer].weight_count * cluster.processors[0].word_bytes


def weight_broadcasts(graph: TaskGraph, cluster: Cluster, slots: Sequence[Slot],
                      collectives: Sequence[Collective] = ()) -> list[tuple[int, int, int, int]]:
    """(layer, from processor, to processor, bytes) per period: a layer split across processors (some slot with
    part > 0) is updated by W part 0, and every other processor holding an F or B part of it needs the new
    weights before it next reads them. No Dependency can say this (it crosses minibatches), so links and the
    replay account for it from here. A layer reduced by a collective (data parallelism's all-reduce) leaves every
    processor with the new weights already."""
    reduced = {c.layer for c in collectives}
    updater = {s.layer: s.processor for s in slots if s.kind is TaskKind.W and s.part == 0}
    # a layer without W (no weights) has nothing to broadcast
    split = {s.layer for s in slots if s.part and s.layer not in reduced and s.layer in updater}
    if not split:
        return []
    holders: dict[int, set[int]] = defaultdict(set)
    for s in slots:
        if s.layer in split and s.kind is not TaskKind.W:
            holders[s.layer].add(s.processor)
    return [(lay, updater[lay], p, gradient_bytes(graph, cluster, lay))
            for lay in sorted(holders) for p in sorted(holders[lay] - {updater[lay]})]


def broadcast_link_load(graph: TaskGraph, cluster: Cluster, slots: Sequence[Slot],
                        collectives: Sequence[Collective] = ()) -> dict[tuple[int, int], int]:
    """Link cycles per period that the weight broadcasts of split layers take."""
    load: dict[tuple[int, int], int] = defaultdict(int)
    for _, a, b, nbytes in weight_broadcasts(graph, cluster, slots, collectives):
        for link in cluster.route(a, b):
            load[link] += cluster.interconnect.occupancy_cycles(nbytes)
    return dict(load)


def link_loads(schedule: Schedule, cluster: Cluster, graph: TaskGraph | None = None) -> dict[tuple[int, int], int]:
    """Cycles each directed link is busy per period: every cross-processor dependency's bytes on every hop
    of its route, every collective, which occupies all links for its duration, and (given the graph) the weight
    broadcasts of split layers."""
    slots = {s.id: s for s in schedule.slots}
    load: dict[tuple[int, int], int] = defaultdict(int)
    if graph is not None:
        load.update(broadcast_link_load(graph, cluster, schedule.slots, schedule.collectives))
    for d in schedule.dependencies:
        a, b = slots[d.src].processor, slots[d.dst].processor
        if a == b or d.bytes <= 0:
            continue
        occ = cluster.interconnect.occupancy_cycles(d.bytes)
        for link in cluster.route(a, b):
            load[link] += occ
    coll = sum(c.duration_cycles for c in schedule.collectives)
    if coll and cluster.size > 1:
        for link in cluster.links():
            load[link] += coll
    return dict(load)


def make_schedule(name: str, kind: str, graph: TaskGraph, cluster: Cluster, slots: Sequence[Slot],
                  period: int, *, microbatches: int = 1, collectives: Sequence[Collective] = (),
                  info: Mapping[str, Any] | None = None, derive_lags: bool = False,
                  min_lags: Mapping[str, int] | None = None) -> Schedule:
    """Assemble a Schedule: slot-level dependencies from the graph, lags (if asked) from the offsets, and the
    gradient delays derived from lags and offsets, never asserted."""
    if period <= 0:
        raise ScheduleError(f"schedule {name}: period must be positive, got {period}")
    deps = expected_dependencies(graph, slots)
    if derive_lags:
        slots = assign_lags(slots, deps, period, cluster, min_lags)
    delays = slot_lag_delays(slots, graph.num_layers, period)
    # the bound of this schedule's class: whole tasks, or tasks in `microbatches` parts
    full_info: dict[str, Any] = {"lower_bound_cycles": lower_bound(graph, cluster, (microbatches,))}
    full_info.update(info or {})
    return Schedule(name=name, kind=kind, processors=cluster.size, period_cycles=int(period),
                    slots=tuple(slots), dependencies=deps, gradient_delays=delays,
                    collectives=tuple(collectives), microbatches=microbatches, info=full_info)


def lower_bound(graph: TaskGraph, cluster: Cluster, microbatches: Iterable[int] | None = None) -> int:
    """ir.lower_bound_cycles (for the given micro-batch counts)."""
    from spikepipe.ir import lower_bound_cycles

    return lower_bound_cycles(graph, cluster, microbatches)


@dataclass(frozen=True)
class Packed:
    """Tasks run back to back on their processors: the slots (lag 0; derive lags afterwards) and the busiest
    processor's load."""

    slots: list[Slot]
    busiest_load_cycles: int


def pack_back_to_back(graph: TaskGraph, cluster: Cluster, assignment: Mapping[str, int],
                      order: Sequence[str]) -> Packed:
    """Each processor runs its tasks in `order`, back to back from 0: the greedy seed of docs/design.md section 7.
    Returns the slots (lag 0; derive lags afterwards) and the busiest processor's load."""
    t = defaultdict(int)
    slots = []
    for tid in order:
        p = assignment[tid]
        d = slot_cycles(graph, cluster, tid, p)
        slots.append(Slot(tid, p, t[p], d))
        t[p] += d
    return Packed(slots, max(t.values(), default=1))


def assignment_link_load(graph: TaskGraph, cluster: Cluster, assignment: Mapping[str, int]) -> int:
    load: dict[tuple[int, int], int] = defaultdict(int)
    for u, v, nbytes in graph.edges:
        a, b = assignment[u], assignment[v]
        if a != b and nbytes > 0:
            for link in cluster.route(a, b):
                load[link] += cluster.interconnect.occupancy_cycles(nbytes)
    return max(load.values(), default=0)
