"""Flush schedules: `gpipe`, `1f1b` (PipeDream-Flush), `interleaved-1f1b` (Megatron virtual stages, depth chosen
per case), `zero-bubble` (ZB-H1, B and W split) and `zb-v` (ZB-V: two chunks per processor in a V).

The minibatch is split into m micro-batches; every slot is priced by the cost model at fraction 1/m (smaller
GEMMs, worse array fill). Each processor runs a fixed sequence of (task, micro-batch) items in the order the
method prescribes, each item starting when its processor is free and its inputs have arrived; the period is the
whole iteration (the flush), all lags and gradient delays are 0. Transfers between processors queue for every
link of their route first come, first served in time order, then pay the hop latency, as the replay serves
them, so the claimed iteration is the replay's; a stage split that sends more bytes than a link can carry
stretches the iteration instead of overloading the link. Unless `microbatches` is given, m is chosen
from {P, 2P, 4P} (at most the batch size) to give the shortest period, which is the fair way to set a baseline.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from math import ceil
from typing import Any

from hwmodels import Cluster
from schedules.common import (
    ScheduleOptionError,
    make_schedule,
    slot_cycles,
)
from schedules.options import GPipeOptions, InterleavedOptions, OneFOneBOptions, ZbVOptions, ZeroBubbleOptions
from schedules.stages import stage_ranges
from spikepipe.ir import Schedule, ScheduleError, Slot, TaskGraph

Item = tuple[str, int]  # (task id, micro-batch)
Orders = dict[int, list[Item]]


class _Links:
    """Links served first come, first served in request order, as the replay's DMA serves them: requests are booked
    in time order (the executor hands them over only when no earlier request can still appear). Requests made at
    the same cycle on one link take the link back to back in an order this model does not know (the replay's
    event order decides it), so every one of them is given the group's last arrival: on one-hop routes the link is
    free at the same time whatever the order, and a consumer scheduled at the group's end is on time in any."""

    def __init__(self, cluster: Cluster) -> None:
        self._route = cluster.route
        self._occ = cluster.interconnect.occupancy_cycles
        self._lat = cluster.interconnect.link_latency_cycles
        self._free: dict[tuple[int, int], int] = defaultdict(int)
        self._pending: list[tuple[int, int, tuple[int, int], int, Any]] = []  # (time, seq, link, occ, ticket)
        self._seq = 0

    def request(self, src: int, dst: int, nbytes: int, t: int, ticket: Any) -> int | None:
        """Ask for a transfer ready at t; returns its arrival now if it needs no link time, else None (book later)."""
        route = self._route(src, dst)
        occ = self._occ(nbytes)
        if occ == 0:
            return t + len(route) * self._lat
        self._push(t, route, 0, occ, ticket)
        return None

    def _push(self, t: int, route: tuple[tuple[int, int], ...], hop: int, occ: int, ticket: Any) -> None:
        heapq.heappush(self._pending, (t, self._seq, (route, hop), occ, ticket))
        self._seq += 1

    def earliest(self) -> int | None:
        return self._pending[0][0] if self._pending else None

    def book_next(self) -> list[tuple[Any, int]]:
        """Book every request of the earliest pending cycle; returns (ticket, arrival) of the transfers done."""
        t = self._pending[0][0]
        now: list[tuple[int, tuple[tuple[tuple[int, int], ...], int], int, Any]] = []
        while self._pending and self._pending[0][0] == t:
            _, seq, where, occ, ticket = heapq.heappop(self._pending)
            now.append((seq, where, occ, ticket))
        by_link: dict[tuple[int, int], list] = defaultdict(list)
        for item in now:
            route, hop = item[1]
            by_link[route[hop]].append(item)
        done = []
        for link, group in by_link.items():
            start = max(t, self._free[link])
            end = start + sum(occ for _, _, occ, _ in group)
            self._free[link] = end
            for _, (route, hop), occ, ticket in group:
                ready = end + self._lat
                if hop + 1 < len(route):
                    self._push(ready, route, hop + 1, occ, ticket)
                else:
                    done.append((ticket, ready))
        return done


def execute(graph: TaskGraph, cluster: Cluster, orders: Orders, m: int) -> list[Slot]:
    """Place every processor's items in its order, as early as processor, inputs and links allow, in time order so
    that links serve transfers in the order they are asked for (the replay's order). The method's orders name a W
    pass for every layer; a layer without weights has no W task, so its W items drop out (graph.has_task)."""
    orders = {p: [it for it in seq if it[0][0] != "W" or graph.has_task(int(it[0][1:]), "W")]
              for p, seq in orders.items()}
    frac = 1.0 / m
    links = _Links(cluster)
    arrival: dict[tuple[Item, str], int] = {}  # (producer item, consumer task) -> data at the consumer's processor
    proc_of_task: dict[Item, int] = {it: p for p, seq in orders.items() for it in seq}
    free: dict[int, int] = defaultdict(int)
    idx: dict[int, int] = defaultdict(int)
    slots: list[Slot] = []
    remaining = sum(len(o) for o in orders.values())
    while remaining:
        moved = True
        while moved:
            moved = False
            for p, seq in orders.items():
                while idx[p] < len(seq):
                    tid, mb = seq[idx[p]]
                    preds = graph.predecessors(tid)
                    if any(((u, mb), tid) not in arrival for u in preds):
                        break
                    d = slot_cycles(graph, cluster, tid, p, frac)
                    st = max([free[p]] + [arrival[((u, mb), tid)] for u in preds])
                    slots.append(Slot(tid, p, st, d, microbatch=mb, fraction=frac))
                    free[p] = st + d
                    for v in graph.successors(tid):
                        q = proc_of_task.get((v, mb))
                        if q is None:
                            continue
                        if q == p:
                            arrival[((tid, mb), v)] = st + d
                            continue
                        at = links.request(p, q, ceil(graph.edge_bytes(tid, v) * frac), st + d, ((tid, mb), v))
                        if at is not None:
                            arrival[((tid, mb), v)] = at
                    idx[p] += 1
                    remaining -= 1
                    moved = True
        if not remaining:
            break
        if links.earliest() is None:
            stuck = {p: seq[idx[p]] for p, seq in orders.items() if idx[p] < len(seq)}
            raise ScheduleError(f"flush order deadlocks; next items per processor: {stuck}")
        # every item that could start without a pending transfer has been placed and ends after the earliest
        # pending request, so no earlier request can still appear: book that cycle's requests
        for ticket, at in links.book_next():
            arrival[ticket] = at
    return slots


def _fwd(rng: tuple[int, int], mb: int) -> list[Item]:
    return [(f"F{layer}", mb) for layer in range(rng[0], rng[1])]


def _bwd(rng: tuple[int, int], mb: int, kinds: str = "BW") -> list[Item]:
    out: list[Item] = []
    for layer in range(rng[1] - 1, rng[0] - 1, -1):
        out += [(f"{k}{layer}", mb) for k in kinds]
    return out


def gpipe_orders(ranges: Sequence[tuple[int, int]], m: int) -> Orders:
    return {k: [i for mb in range(m) for i in _fwd(r, mb)] + [i for mb in range(m) for i in _bwd(r, mb)]
            for k, r in enumerate(ranges)}


def one_f_one_b_orders(ranges: Sequence[tuple[int, int]], m: int) -> Orders:
    p = len(ranges)
    orders: Orders = {}
    for k, r in enumerate(ranges):
        w = min(p - 1 - k, m)
        seq = [i for mb in range(w) for i in _fwd(r, mb)]
        for i in range(m - w):
            seq += _fwd(r, w + i) + _bwd(r, i)
        for i in range(m - w, m):
            seq += _bwd(r, i)
        orders[k] = seq
    return orders


def zb_h1_orders(ranges: Sequence[tuple[int, int]], m: int, share: float = 1.0) -> Orders:
    """1F1B with each backward split into B and W; stage k defers its W by share*k micro-batches (ZB-H1, Qi et al.
    2023: the later a stage, the longer its cool-down bubble, which the deferred W passes fill; it keeps 1F1B's
    activation memory). On p equal stages with share 1 the iteration is m(F+B+W) + (p-1)(F+B-W)."""
    p = len(ranges)
    orders: Orders = {}
    for k, r in enumerate(ranges):
        w, defer = min(p - 1 - k, m), round(share * k)
        seq = [i for mb in range(w) for i in _fwd(r, mb)]
        done_w = 0
        for i in range(m):
            if w + i < m:
                seq += _fwd(r, w + i)
            seq += _bwd(r, i, "B")
            if i - defer >= 0:
                seq += _bwd(r, i - defer, "W")
                done_w += 1
        for mb in range(done_w, m):
            seq += _bwd(r, mb, "W")
        orders[k] = seq
    return orders


def interleaved_orders(ranges: Sequence[tuple[int, int]], p: int, v: int, m: int) -> Orders:
    """Megatron-LM's interleaved 1F1B: chunk c = j*p + k runs on processor k; needs m divisible by p."""
    total = m * v
    orders: Orders = {}
    for k in range(p):
        def op(i: int, forward: bool, k: int = k) -> list[Item]:
            j = (i // p) % v
            chunk = (j if forward else v - 1 - j) * p + k
            mb = (i // (p * v)) * p + i % p
            return _fwd(ranges[chunk], mb) if forward else _bwd(ranges[chunk], mb)

        warm = min((p - k - 1) * 2 + (v - 1) * p, total)
        seq = [x for i in range(warm) for x in op(i, True)]
        for i in range(total - warm):
            seq += op(warm + i, True) + op(i, False)
        for i in range(total - warm, total):
            seq += op(i, False)
        orders[k] = seq
    return orders


def _candidates(name: str, graph: TaskGraph, stages: int, microbatches: int | None,
                multiple: int = 1) -> list[int]:
    if microbatches is not None:  # a positive integer (the options' declaration checked it)
        m = microbatches
        if m > graph.batch:
            raise ScheduleOptionError(f"schedule {name!r}: {m} micro-batches exceed the batch of {graph.batch}")
        if m % multiple:
            raise ScheduleOptionError(f"schedule {name!r}: micro-batches must be a multiple of {multiple}, got {m}")
        return [m]
    # multiples of the stage count fill the pipeline; powers of two from stages/2 up keep micro-batches even when the
    # stage count does not divide the batch (vgg11 on 16 processors has 11 stages: m=11 gave 3.04M cycles, m=8 2.79M)
    pow2 = [1 << k for k in range(graph.batch.bit_length()) if stages <= 2 * (1 << k)]
    cands = sorted({c for c in (stages, 2 * stages, 4 * stages, *pow2) if c <= graph.batch and c % multiple == 0})
    return cands or [max(1, min(graph.batch, stages) // multiple * multiple) or 1]


def _best(name: str, graph: TaskGraph, cluster: Cluster, ms: list[int],
          make_orders: Callable[[int], Orders], info: dict[str, Any]) -> Schedule:
    best = None
    for m in ms:
        slots = execute(graph, cluster, make_orders(m), m)
        period = max(s.end_cycles for s in slots)
        if best is None or period < best[0]:
            best = (period, m, slots)
    period, m, slots = best
    return make_schedule(name, "flush", graph, cluster, slots, period, microbatches=m,
                         info={**info, "microbatches_tried": ms})


def stage_counts(graph: TaskGraph, cluster: Cluster) -> list[int]:
    """The stage counts a flush schedule tries: every processor, and powers of two down to a quarter of that.

    More stages than the network has balanced work for only add bubble and transfers (vgg11's 1F1B on 11 stages,
    one per layer, is 2.7% slower than on 8), so a user with P processors would also try fewer.
    """
    return _down_to_a_quarter(min(cluster.size, graph.num_layers))


def _down_to_a_quarter(most: int) -> list[int]:
    return sorted({most} | {1 << k for k in range(most.bit_length()) if most <= 4 * (1 << k) < 4 * most},
                  reverse=True)


def _flush(name: str, graph: TaskGraph, cluster: Cluster, microbatches: int | None,
           orders: Callable[[Sequence[tuple[int, int]], int], Orders]) -> Schedule:
    runs = []
    for k in stage_counts(graph, cluster):
        ranges = stage_ranges(graph, cluster, k)
        ms = _candidates(name, graph, len(ranges), microbatches)
        runs.append(_best(name, graph, cluster, ms, lambda m, r=ranges: orders(r, m),
                          {"stages": [list(r) for r in ranges]}))
    # ties go to the most stages (first), the plain textbook form
    best = min(runs, key=lambda s: s.period_cycles)
    return replace(best, info={**best.info, "stage_counts_tried": [len(s.info["stages"]) for s in runs]})


def gpipe(graph: TaskGraph, cluster: Cluster, options: GPipeOptions | None = None, **kwargs: Any) -> Schedule:
    opts = GPipeOptions.coerce(options, kwargs)
    return _flush("gpipe", graph, cluster, opts.microbatches, gpipe_orders)


def one_f_one_b(graph: TaskGraph, cluster: Cluster, options: OneFOneBOptions | None = None,
                **kwargs: Any) -> Schedule:
    opts = OneFOneBOptions.coerce(options, kwargs)
    return _flush("1f1b", graph, cluster, opts.microbatches, one_f_one_b_orders)


def zero_bubble(graph: TaskGraph, cluster: Cluster, options: ZeroBubbleOptions | None = None,
                **kwargs: Any) -> Schedule:
    """ZB-H1 with the W deferral (all, half, none of p-1-k) that gives the shortest iteration."""
    opts = ZeroBubbleOptions.coerce(options, kwargs)
    runs = [_flush("zero-bubble", graph, cluster, opts.microbatches, lambda r, m, f=f: zb_h1_orders(r, m, f))
            for f in (1.0, 0.5, 0.0)]
    best = min(runs, key=lambda s: s.period_cycles)
    return best


def zbv_orders(ranges: Sequence[tuple[int, int]], p: int, m: int) -> Orders:
    """ZB-V (Qi et al. 2023, section 6): 2p chunks in a V, chunk k and chunk 2p-1-k on processor k, so the loss
    and the first forward share processor 0; B and W split. Warm-up runs 2(p-k)-1 forwards of the first chunk,
    then k pairs (second, first), then p-k rounds of F, B, W on the second chunk; the steady state alternates
    F B W on both chunks; the cool-down runs the B passes first and fills the tail with the W passes. Built for
    max(m, 2p-1) micro-batches (what the pattern needs to fill) and cut back to m."""
    n = max(m, 2 * p - 1)
    orders: Orders = {}
    for k in range(p):
        first, second = ranges[k], ranges[2 * p - 1 - k]
        nxt = {"F0": 0, "F1": 0, "B0": 0, "B1": 0, "W0": 0, "W1": 0}
        seq: list[Item] = []

        def put(op: str, chunk: int, seq: list[Item] = seq, nxt: dict[str, int] = nxt,
                first: tuple[int, int] = first, second: tuple[int, int] = second) -> None:
            mb, r = nxt[f"{op}{chunk}"], (first, second)[chunk]
            nxt[f"{op}{chunk}"] += 1
            seq.extend(_fwd(r, mb) if op == "F" else _bwd(r, mb, op))

        for _ in range(2 * (p - k) - 1):
            put("F", 0)
        for _ in range(k):
            put("F", 1)
            put("F", 0)
        for _ in range(p - k):
            for op in "FBW":
                put(op, 1)
        while nxt["F1"] < nxt["F0"] or nxt["F0"] < n:
            if nxt["F0"] < n:
                put("F", 0)
            for chunk in (0, 1):
                if chunk:
                    put("F", 1)
                put("B", chunk)
                put("W", chunk)
        for _ in range(k):
            put("B", 0)
            put("B", 1)
        for _ in range(p - k):
            put("B", 0)
            put("W", 0)
        for chunk in (1, 0):
            while nxt[f"W{chunk}"] < nxt[f"B{chunk}"]:
                put("W", chunk)
        orders[k] = [it for it in seq if it[1] < m]
    return orders


def _one_chunk_per_stage(name: str, graph: TaskGraph, cluster: Cluster, microbatches: int | None,
                         fallback: Callable[..., Schedule], why: str) -> Schedule:
    s = fallback(graph, cluster, microbatches=microbatches)
    return replace(s, name=name, info={**s.info, "virtual_stages": 1, "note": why})


def interleaved_1f1b(graph: TaskGraph, cluster: Cluster, options: InterleavedOptions | None = None,
                     **kwargs: Any) -> Schedule:
    """Megatron's interleaved 1F1B with the interleaving depth v that gives the shortest iteration, from 1 (plain
    1F1B) up to what the layer count allows (v*p chunks of at least one layer each), unless `virtual_stages` fixes
    it; v=1 also when the batch is smaller than p."""
    name = "interleaved-1f1b"
    opts = InterleavedOptions.coerce(options, kwargs)
    p = min(cluster.size, graph.num_layers)
    most = graph.num_layers // p
    if opts.virtual_stages is not None:
        depths = [max(1, min(opts.virtual_stages, most))]
    else:
        depths = list(range(1, most + 1))
    if graph.batch < p:
        depths = [1]
    runs = []
    for v in depths:
        if v == 1:
            runs.append(_one_chunk_per_stage(name, graph, cluster, opts.microbatches, one_f_one_b,
                                             "one chunk per processor: plain 1F1B"))
            continue
        ranges = stage_ranges(graph, cluster, p * v, [c % p for c in range(p * v)])
        ms = _candidates(name, graph, p, opts.microbatches, multiple=p)
        runs.append(_best(name, graph, cluster, ms, lambda m, r=ranges, v=v: interleaved_orders(r, p, v, m),
                          {"stages": [list(r) for r in ranges], "virtual_stages": v}))
    best = min(runs, key=lambda s: s.period_cycles)  # ties: the smallest v (first), the least interleaving
    return replace(best, info={**best.info, "virtual_stages_tried": depths})


def zb_v(graph: TaskGraph, cluster: Cluster, options: ZbVOptions | None = None, **kwargs: Any) -> Schedule:
    """ZB-V with two chunks per processor in a V on p processors, p from min(P, L/2) down to a quarter of that (as
    the other flush schedules try fewer stages), the shortest iteration kept; ZB-H1 when the network has fewer
    than 2 layers (or the batch is smaller than the processors a V would use)."""
    name = "zb-v"
    opts = ZbVOptions.coerce(options, kwargs)
    most = min(cluster.size, graph.num_layers // 2)
    if most < 1 or graph.batch < most:
        return _one_chunk_per_stage(name, graph, cluster, opts.microbatches, zero_bubble,
                                    "too few layers or samples for a V: ZB-H1")
    runs = []
    for p in _down_to_a_quarter(most):
        chunk_proc = [c if c < p else 2 * p - 1 - c for c in range(2 * p)]
        ranges = stage_ranges(graph, cluster, 2 * p, chunk_proc)
        ms = _candidates(name, graph, p, opts.microbatches)
        runs.append(_best(name, graph, cluster, ms, lambda m, r=ranges, p=p: zbv_orders(r, p, m),
                          {"stages": [list(r) for r in ranges], "virtual_stages": 2}))
    best = min(runs, key=lambda s: s.period_cycles)
    return replace(best, info={**best.info, "processor_counts_tried": [len(s.info["stages"]) // 2 for s in runs]})
