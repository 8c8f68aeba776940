"""The packing the order search scores (schedules.order_search): each processor runs its slots back to back in
its own cyclic order from its own offset, the lags follow from the edges and the link waits, and the score is
(total delay, total span). Also the rotation step (each processor's offset chosen among the values that make one
of its edges wait-free) and the fold of a packing back into slots within the period.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import networkx as nx

from hwmodels import Cluster
from schedules.common import queue_waits, transfer_cycles
from spikepipe.ir import Dependency, Slot, TaskKind

# link-queue results kept per search (request tuples of a few dozen ints each): bounded so a long search's memory
# stays flat
_QUEUE_MEMO = 50_000


@dataclass(frozen=True)
class PackingProblem:
    ids: tuple[str, ...]  # slot ids in a topological order of the dependencies
    proc: tuple[int, ...]
    dur: tuple[int, ...]
    preds: tuple[tuple[tuple[int, int], ...], ...]  # (pred index, transfer cycles)
    period: int
    whole: tuple[tuple[int, int], ...]  # (F index, W index) of each layer with weights and one part of each
    parted: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]  # (F parts, W parts) of the other layers with weights
    # the link waits of a packing (starts by index -> waits by (pred index, index)): every score counts them
    queue: Callable[[list[int]], dict[tuple[int, int], int]]
    # per processor, its edges to and from other processors, (pred, succ, transfer cycles, whether the succ is
    # the processor's, edge number): the only edges whose waits its offset moves (offset_candidates, rotate_offsets)
    crossing: tuple[tuple[tuple[int, int, int, bool, int], ...], ...]
    # preds again with each edge's number instead of its transfer cycles: (pred index, edge number)
    edges: tuple[tuple[tuple[int, int], ...], ...]


def packing_problem(slots: Sequence[Slot], deps: Sequence[Dependency], cluster: Cluster, num_layers: int,
             period: int) -> PackingProblem:
    by_id = {s.id: s for s in slots}
    g = nx.DiGraph()
    g.add_nodes_from(sorted(by_id))
    for d in deps:
        g.add_edge(d.src, d.dst, bytes=d.bytes)
    ids = tuple(nx.lexicographical_topological_sort(g))
    idx = {t: i for i, t in enumerate(ids)}
    preds = tuple(tuple((idx[u], transfer_cycles(cluster, by_id[u].processor, by_id[v].processor,
                                                  g.edges[u, v]["bytes"])) for u in sorted(g.predecessors(v)))
                  for v in ids)
    layers = tuple((tuple(i for i, t in enumerate(ids) if by_id[t].kind is TaskKind.F and by_id[t].layer == lay),
                    tuple(i for i, t in enumerate(ids) if by_id[t].kind is TaskKind.W and by_id[t].layer == lay))
                   for lay in range(num_layers))
    # the transfers between processors in the dependencies' order (the link queue's tie-break)
    cross = [(idx[d.src], idx[d.dst], d.bytes) for d in deps
             if by_id[d.src].processor != by_id[d.dst].processor and d.bytes > 0]
    net = cluster.interconnect
    routes = [cluster.route(by_id[ids[u]].processor, by_id[ids[v]].processor) for u, v, _ in cross]
    occupancy = [net.occupancy_cycles(b) for _, _, b in cross]
    dur = [by_id[t].duration_cycles for t in ids]

    memo: dict[tuple[int, ...], dict[tuple[int, int], int]] = {}

    def queue(start: list[int]) -> dict[tuple[int, int], int]:
        """The waits the lags will count (schedules.common.assign_lags), by (pred index, index). Memoised on the
        request times: the climb's rotations score some packings again (a third of the calls on vgg11, a tenth
        on resnet18), and the replay of the link queue costs most of a score."""
        requests = tuple([start[u] % period + dur[u] for u, _, _ in cross])
        hit = memo.get(requests)
        if hit is not None:
            return hit
        waits = queue_waits(requests, occupancy, routes, period, net.link_latency_cycles)
        out: dict[tuple[int, int], int] = {}
        for (u, v, _), w in zip(cross, waits, strict=True):
            if w > out.get((u, v), 0):
                out[(u, v)] = w
        if len(memo) >= _QUEUE_MEMO:
            memo.clear()
        memo[requests] = out
        return out

    weighted = [(fs, ws) for fs, ws in layers if fs and ws]  # a layer without weights has no gradient delay
    whole = tuple((fs[0], ws[0]) for fs, ws in weighted if len(fs) == len(ws) == 1)
    parted = tuple((fs, ws) for fs, ws in weighted if not len(fs) == len(ws) == 1)
    proc = tuple(by_id[t].processor for t in ids)
    crossing: list[list[tuple[int, int, int, bool, int]]] = [[] for _ in range(cluster.size)]
    edges: list[tuple[tuple[int, int], ...]] = []
    e = 0
    for v, ps in enumerate(preds):
        numbered = []
        for u, c in ps:
            numbered.append((u, e))
            if proc[u] != proc[v]:
                crossing[proc[v]].append((u, v, c, True, e))
                crossing[proc[u]].append((u, v, c, False, e))
            e += 1
        edges.append(tuple(numbered))
    return PackingProblem(ids, proc, tuple(by_id[t].duration_cycles for t in ids), preds, period, whole, parted,
                          queue, tuple(map(tuple, crossing)), tuple(edges))


@dataclass(frozen=True)
class Packing:
    """A scored packing: `score` is (total delay, total span), compared as a tuple (span falls before the delays
    do); starts and lags per slot index."""
    score: tuple[int, int]
    starts: list[int]
    lags: list[int]


@dataclass(frozen=True)
class Rotation:
    """rotate_offsets' answer: the offsets, their packing's score and the trials scored with link waits."""
    offsets: list[int]
    score: tuple[int, int]
    evaluations: int


def score_packing(pb: PackingProblem, orders: Sequence[Sequence[int]], offsets: Sequence[int] | None = None,
                  links: bool = True) -> Packing:
    """The score, starts and lags of back-to-back packing in the given per-processor orders, each
    processor starting at its offset (0 by default) in [0, period). A processor's run may go past the period end
    (its last slots wrap into the next period, docs/design.md section 4.2), so starts are absolute for the
    minibatch of lag 0 and may exceed the period; placed_slots folds them back. With pb.queue the link waits of the
    packing count too."""
    start, end = _packed(pb, orders, offsets)
    total, span, lag = _evaluate(pb, start, end, links)
    return Packing((total, span), start, lag)


def _evaluate(pb: PackingProblem, start: Sequence[int], end: Sequence[int],
              links: bool = True) -> tuple[int, int, list[int]]:
    """(total delay, total span, lags) of the packing with these starts and ends, with the link waits or
    without them. (The rotation's prefilter computes the same lags from edge terms: _terms, _shifted_lags.)"""
    per = pb.period
    wait = pb.queue(start) if links else {}
    # plain integer arithmetic, ceil(x / per) as (x + per - 1) // per, which holds for negative x too
    lag = [0] * len(pb.preds)
    for v, ps in enumerate(pb.preds):
        sv = start[v] - per + 1
        r = -(start[v] // per)  # the folded lag (lag + start // period) must not be negative
        for u, c in ps:
            x = lag[u] + (end[u] + c + wait.get((u, v), 0) - sv) // per
            if x > r:
                r = x
        lag[v] = r
    total, span = _totals(pb, start, end, lag)
    return total, span, lag


def _totals(pb: PackingProblem, start: Sequence[int], end: Sequence[int], lag: Sequence[int]) -> tuple[int, int]:
    """(total delay, total span) of a packing with these lags."""
    per = pb.period
    total = span = 0
    for f, w in pb.whole:  # layers of one F and one W part (unsplit tasks)
        d = lag[w] * per + end[w] - lag[f] * per - start[f]
        total += (d + per - 1) // per - 1
        span += d
    for fs, ws in pb.parted:  # F reads at its earliest part, the update lands when the last W part ends
        read = min([lag[i] * per + start[i] for i in fs])
        write = max([lag[i] * per + end[i] for i in ws])
        total += (write - read + per - 1) // per - 1
        span += write - read
    return total, span


def _packed(pb: PackingProblem, orders: Sequence[Sequence[int]],
            offsets: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
    """(starts, ends) of back-to-back packing in the per-processor orders from the offsets (0 by default)."""
    dur = pb.dur
    start = [0] * len(pb.ids)
    end = [0] * len(pb.ids)
    for p, seq in enumerate(orders):
        t = offsets[p] if offsets else 0
        for i in seq:
            start[i] = t
            t += dur[i]
            end[i] = t
    return start, end


def offset_candidates(pb: PackingProblem, start: Sequence[int], offsets: Sequence[int], q: int) -> list[int]:
    """Offsets of processor q at which one of its cross-processor edges has no wait: a slot of q starts the
    moment its data arrives, or a slot elsewhere gets q's data the moment it starts. With every processor packed
    full, each processor's rotation is the one free continuous choice left, and only these values can move a lag
    (a lag changes when an edge's slack crosses a multiple of the period)."""
    per = pb.period
    out = {offsets[q]}
    for u, v, c, inbound, _ in pb.crossing[q]:
        if inbound:
            out.add((start[u] + pb.dur[u] + c - (start[v] - offsets[q])) % per)
        else:
            out.add((start[v] - c - pb.dur[u] - (start[u] - offsets[q])) % per)
    return sorted(out)


def rotate_offsets(pb: PackingProblem, orders: Sequence[Sequence[int]], offsets: list[int], procs: Sequence[int],
                   score: tuple[int, int]) -> Rotation:
    """Coordinate descent on the offsets of `procs` (each in turn, the best of its candidates, until none
    improves), from offsets whose packing scores `score`."""
    evaluations = 0
    # the packing at the current offsets, its lags without link waits and its edge terms, kept up to date on
    # every acceptance
    start, end = _packed(pb, orders, offsets)
    terms, floors = _terms(pb, start, end)
    known = _shifted_lags(pb, terms, floors, (), 0)
    per = pb.period
    improved = True
    while improved:
        improved = False
        for q in procs:
            mine = orders[q]
            if not mine:
                continue
            # a trial moves only q's slots: the lags before q's first slot (topological index) stay
            first = min(mine)
            parts = _ShiftParts.of(pb, q, mine, start, end)
            for x in offset_candidates(pb, start, offsets, q):
                if x == offsets[q]:
                    continue
                shift = x - offsets[q]
                # the shift moves only q's slot floors and the terms of q's edges to and from other processors
                fl = list(floors)
                for i, s0 in parts.starts:
                    fl[i] = -((s0 + shift) // per)
                tm = list(terms)
                for e, b in parts.inbound:
                    tm[e] = (b - shift) // per
                for e, b in parts.outbound:
                    tm[e] = (b + shift) // per
                # link waits cost most of a score: only a candidate that beats the score without them is
                # scored with them (waits almost always add delay)
                lags = _shifted_lags(pb, tm, fl, known, first)
                unlinked = (_totals(pb, *_shifted(start, end, mine, shift), lags) if pb.parted  # split tasks
                            else parts.totals(lags, shift))
                if unlinked >= score:
                    continue
                ts, te = _shifted(start, end, mine, shift)
                sc = _evaluate(pb, ts, te)[:2]
                evaluations += 1
                if sc < score:
                    offsets, score, improved = offsets[:q] + [x] + offsets[q + 1:], sc, True
                    start, end, known, terms, floors = ts, te, lags, tm, fl
                    parts = _ShiftParts.of(pb, q, mine, start, end)
    return Rotation(offsets, score, evaluations)


def _shifted(start: Sequence[int], end: Sequence[int], mine: Sequence[int], shift: int) -> tuple[list[int], list[int]]:
    ts, te = list(start), list(end)
    for i in mine:
        ts[i] += shift
        te[i] += shift
    return ts, te


@dataclass(frozen=True)
class _ShiftParts:
    """What a shift of processor q's slots changes in the prefilter's terms, precomputed for the current packing:
    q's slot starts, the ceil-division numerators of q's inbound and outbound edge terms (the shift is subtracted
    from the one, added to the other), and per unsplit layer (F, W, end_W - start_F, how the shift moves it)."""
    period: int
    starts: tuple[tuple[int, int], ...]
    inbound: tuple[tuple[int, int], ...]
    outbound: tuple[tuple[int, int], ...]
    layers: tuple[tuple[int, int, int, int], ...]

    @classmethod
    def of(cls, pb: PackingProblem, q: int, mine: Sequence[int], start: Sequence[int],
           end: Sequence[int]) -> _ShiftParts:
        per, proc = pb.period, pb.proc
        edges = [(e, end[u] + c - start[v] + per - 1, inbound) for u, v, c, inbound, e in pb.crossing[q]]
        return cls(per, tuple((i, start[i]) for i in mine), tuple((e, b) for e, b, inb in edges if inb),
                   tuple((e, b) for e, b, inb in edges if not inb),
                   tuple((f, w, end[w] - start[f], (proc[w] == q) - (proc[f] == q)) for f, w in pb.whole))

    def totals(self, lag: Sequence[int], shift: int) -> tuple[int, int]:
        """_totals of the shifted packing (unsplit layers only)."""
        per = self.period
        total = span = 0
        for f, w, d0, k in self.layers:
            d = (lag[w] - lag[f]) * per + d0 + k * shift
            total += (d + per - 1) // per - 1
            span += d
        return total, span


def _terms(pb: PackingProblem, start: Sequence[int], end: Sequence[int]) -> tuple[list[int], list[int]]:
    """Per edge u -> v, ceil((end_u + transfer - start_v) / period), the periods v's lag must exceed u's by
    without link waits; per slot, the least lag that keeps its folded lag non-negative (_evaluate's terms)."""
    per = pb.period
    terms = [0] * sum(map(len, pb.edges))
    for v, ps in enumerate(pb.preds):
        for (u, c), (_, e) in zip(ps, pb.edges[v], strict=True):
            terms[e] = (end[u] + c - start[v] + per - 1) // per
    return terms, [-(t // per) for t in start]


def _shifted_lags(pb: PackingProblem, terms: Sequence[int], floors: Sequence[int], known: Sequence[int],
                  first: int) -> list[int]:
    """_evaluate's lags without link waits from the edge terms (_terms), the slots before `first` known: the
    rotation's prefilter, most of the order search's time, so the per-edge arithmetic is done once per edge
    that moves."""
    lag = list(known[:first]) + [0] * (len(pb.edges) - first)
    edges = pb.edges
    for v in range(first, len(edges)):
        r = floors[v]
        for u, e in edges[v]:
            x = lag[u] + terms[e]
            if x > r:
                r = x
        lag[v] = r
    return lag


def placed_slots(pb: PackingProblem, slots: Sequence[Slot], orders: Sequence[Sequence[int]],
                 offsets: Sequence[int]) -> list[Slot]:
    """The slots at the packing's offsets folded into [0, period) (a slot past the period end wraps), the lags
    raised by the periods folded away, so every absolute time stays."""
    packing = score_packing(pb, orders, offsets)
    start, lag = packing.starts, packing.lags
    per = pb.period
    pos = {t: i for i, t in enumerate(pb.ids)}
    return [replace(s, start_cycles=start[pos[s.id]] % per, lag=lag[pos[s.id]] + start[pos[s.id]] // per)
            for s in sorted(slots, key=lambda x: x.id)]
