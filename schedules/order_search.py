"""Phase-2 seed of the SpikePipe scheduler: per-processor cyclic orders found by a seeded local search.

With the period packed to the lower bound, an ASAP modulo placement fragments the busiest processors and fails,
and packing every processor in one global training order makes a minibatch wrap around the period at every hop
between processors, which costs gradient delay. Here each processor runs its tasks back to back in its own cyclic
order from its own offset (its rotation; the run may wrap past the period end, docs/design.md section 4.2); lags
follow from the edges (schedules.common.assign_lags) and the delays from lags and offsets.

Why rotations matter: at the shortest period every processor is full, so a minibatch that hops to another
processor waits there until that processor's current slot ends. Holding every processor's sequence at offset 0
puts a task boundary at phase 0 on all of them at once, and the waits at the hops then add up to whole periods of
delay (vgg11 at P=4: total delay 23 with offsets 0, 16 with rotations, at the same period and assignment).

The start order puts each task at its ideal phase (earliest start of the unconstrained minibatch, modulo the
period); a local search (swap, move, rotate; after each move the moved processor's offset is chosen among the
values that make one of its edges wait-free; fixed move budget, so the same seed gives the same answer) then
minimises (total delay, total span: the summed F-to-W times, which falls before the delays do).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import networkx as nx

from hwmodels import Cluster
from schedules.common import expected_dependencies, queue_waits, slot_cycles, transfer_cycles
from schedules.deadline import Deadline
from schedules.workers import run_jobs
from spikepipe.ir import Dependency, Slot, TaskGraph, TaskKind

# independent climbs the order search's moves are shared among (search_slot_orders)
RESTARTS = 3
# a climb stops after half its moves, and at least this many, without a new best: a small graph's climb has
# converged long before its share (snn-cnn at P=4: 12 slots), and the budget stays counted in moves
STALL_MOVES = 150
# link-queue results kept per search (request tuples of a few dozen ints each): bounded so a long search's memory
# stays flat
_QUEUE_MEMO = 50_000


@dataclass(frozen=True)
class _Problem:
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
    # the processor's, edge number): the only edges whose waits its offset moves (_offset_candidates, _rotate)
    crossing: tuple[tuple[tuple[int, int, int, bool, int], ...], ...]
    # preds again with each edge's number instead of its transfer cycles: (pred index, edge number)
    edges: tuple[tuple[tuple[int, int], ...], ...]


def _problem(slots: Sequence[Slot], deps: Sequence[Dependency], cluster: Cluster, num_layers: int,
             period: int) -> _Problem:
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
    return _Problem(ids, proc, tuple(by_id[t].duration_cycles for t in ids), preds, period, whole, parted, queue,
                    tuple(map(tuple, crossing)), tuple(edges))


def _score(pb: _Problem, orders: Sequence[Sequence[int]], offsets: Sequence[int] | None = None,
           links: bool = True) -> tuple[int, int, list[int], list[int]]:
    """(total delay, total span, starts, lags) of back-to-back packing in the given per-processor orders, each
    processor starting at its offset (0 by default) in [0, period). A processor's run may go past the period end
    (its last slots wrap into the next period, docs/design.md section 4.2), so starts are absolute for the
    minibatch of lag 0 and may exceed the period; _placed folds them back. With pb.queue the link waits of the
    packing count too."""
    start, end = _packed(pb, orders, offsets)
    total, span, lag = _evaluate(pb, start, end, links)
    return total, span, start, lag


def _evaluate(pb: _Problem, start: Sequence[int], end: Sequence[int],
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


def _totals(pb: _Problem, start: Sequence[int], end: Sequence[int], lag: Sequence[int]) -> tuple[int, int]:
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


def _packed(pb: _Problem, orders: Sequence[Sequence[int]],
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


def _offset_candidates(pb: _Problem, start: Sequence[int], offsets: Sequence[int], q: int) -> list[int]:
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


def _rotate(pb: _Problem, orders: Sequence[Sequence[int]], offsets: list[int], procs: Sequence[int],
            score: tuple[int, int]) -> tuple[list[int], tuple[int, int], int]:
    """Coordinate descent on the offsets of `procs` (each in turn, the best of its candidates, until none
    improves): (offsets, score, evaluations)."""
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
            for x in _offset_candidates(pb, start, offsets, q):
                if x == offsets[q]:
                    continue
                shift = x - offsets[q]
                ts, te = list(start), list(end)
                fl = list(floors)
                for i in mine:
                    ts[i] += shift
                    te[i] += shift
                    fl[i] = -(ts[i] // per)
                # the shift moves only the terms of q's edges to and from other processors
                tm = list(terms)
                for u, v, c, _, e in pb.crossing[q]:
                    tm[e] = (te[u] + c - ts[v] + per - 1) // per
                # link waits cost most of a score: only a candidate that beats the score without them is
                # scored with them (waits almost always add delay)
                lags = _shifted_lags(pb, tm, fl, known, first)
                if _totals(pb, ts, te, lags) >= score:
                    continue
                sc = _evaluate(pb, ts, te)[:2]
                evaluations += 1
                if sc < score:
                    offsets, score, improved = offsets[:q] + [x] + offsets[q + 1:], sc, True
                    start, end, known, terms, floors = ts, te, lags, tm, fl
    return offsets, score, evaluations


def _terms(pb: _Problem, start: Sequence[int], end: Sequence[int]) -> tuple[list[int], list[int]]:
    """Per edge u -> v, ceil((end_u + transfer - start_v) / period), the periods v's lag must exceed u's by
    without link waits; per slot, the least lag that keeps its folded lag non-negative (_evaluate's terms)."""
    per = pb.period
    terms = [0] * sum(map(len, pb.edges))
    for v, ps in enumerate(pb.preds):
        for (u, c), (_, e) in zip(ps, pb.edges[v], strict=True):
            terms[e] = (end[u] + c - start[v] + per - 1) // per
    return terms, [-(t // per) for t in start]


def _shifted_lags(pb: _Problem, terms: Sequence[int], floors: Sequence[int], known: Sequence[int],
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


def _ideal_orders(pb: _Problem, procs: int) -> list[list[int]]:
    """Each processor's slots sorted by their earliest start in an unconstrained run, modulo the period."""
    est = [0] * len(pb.ids)
    for v, ps in enumerate(pb.preds):
        est[v] = max((est[u] + pb.dur[u] + c for u, c in ps), default=0)
    orders: list[list[int]] = [[] for _ in range(procs)]
    for i in sorted(range(len(pb.ids)), key=lambda i: (est[i] % pb.period, i)):
        orders[pb.proc[i]].append(i)
    return orders


def _ranked_orders(pb: _Problem, procs: int, rank: Mapping[str, int]) -> list[list[int]]:
    orders: list[list[int]] = [[] for _ in range(procs)]
    for i in sorted(range(len(pb.ids)), key=lambda i: (rank.get(pb.ids[i].split(".")[0], 0), i)):
        orders[pb.proc[i]].append(i)
    return orders


def _climb(pb: _Problem, orders: list[list[int]], offsets: Sequence[int], rng: random.Random,
           evaluations: int, deadline: Deadline | None) -> tuple[list[list[int]], list[int], int, bool]:
    """Seeded hill climbing over per-processor cyclic orders (swap, move, rotate) and rotations (offsets),
    sideways moves allowed: (best orders, their offsets, moves done, whether the clock cut the moves). After each
    move the offsets are re-chosen (_rotate). The climb ends when its moves are spent or after half of them,
    at least STALL_MOVES, without a new best."""
    procs = range(len(orders))
    cur, cur_off = [list(o) for o in orders], list(offsets)
    cur_off, cur_sc, _ = _rotate(pb, cur, cur_off, procs, _score(pb, cur, cur_off)[:2])
    best, best_orders, best_off = cur_sc, [list(o) for o in cur], list(cur_off)
    movable = [p for p, o in enumerate(cur) if len(o) > 1]
    done = since_best = 0
    patience = max(STALL_MOVES, evaluations // 2)
    while movable and done < evaluations and since_best < patience:
        if deadline is not None and deadline.expired():
            return best_orders, best_off, done, True
        done += 1
        since_best += 1
        p = movable[rng.randrange(len(movable))]
        seq = cur[p]
        n = len(seq)
        move = rng.random()
        cand = list(seq)
        if move < 0.4:
            a, b = rng.randrange(n), rng.randrange(n)
            cand[a], cand[b] = cand[b], cand[a]
        elif move < 0.85:
            a = rng.randrange(n)
            x = cand.pop(a)
            cand.insert(rng.randrange(n), x)
        else:
            k = rng.randrange(1, n)
            cand = cand[k:] + cand[:k]
        trial = cur[:p] + [cand] + cur[p + 1:]
        off, sc, _ = _rotate(pb, trial, cur_off, procs, _score(pb, trial, cur_off)[:2])
        if sc <= cur_sc:  # sideways moves let the search cross plateaus of equal delay
            cur, cur_off, cur_sc = trial, off, sc
            if sc < best:
                cur_off, cur_sc, _ = _rotate(pb, cur, cur_off, procs, cur_sc)
                best, best_orders, best_off = cur_sc, [list(o) for o in cur], list(cur_off)
                since_best = 0
    return best_orders, best_off, done, False


def _placed(pb: _Problem, slots: Sequence[Slot], orders: Sequence[Sequence[int]],
            offsets: Sequence[int]) -> list[Slot]:
    """The slots at the packing's offsets folded into [0, period) (a slot past the period end wraps), the lags
    raised by the periods folded away, so every absolute time stays."""
    _, _, start, lag = _score(pb, orders, offsets)
    per = pb.period
    pos = {t: i for i, t in enumerate(pb.ids)}
    return [replace(s, start_cycles=start[pos[s.id]] % per, lag=lag[pos[s.id]] + start[pos[s.id]] // per)
            for s in sorted(slots, key=lambda x: x.id)]


def search_slot_orders(slots: Sequence[Slot], deps: Sequence[Dependency], cluster: Cluster, num_layers: int,
                       period: int, training: Sequence[str], *, seed: int = 0,
                       evaluations: int = 4000, deadline: Deadline | None = None,
                       stats: dict[str, Any] | None = None, workers: int = 1) -> list[Slot]:
    """The slots re-packed back to back per processor in the best cyclic orders found, with the smallest lags;
    deterministic for a seed and budget. Processors and durations are kept; the period must hold every
    processor's load. The moves are shared among RESTARTS climbs from the same start with their own random
    streams (the climbs end far apart: 13 to 16 total delay on vgg11 at P=4), and the best of them is kept.
    The climbs are independent: `workers` processes run them side by side (schedules.workers), with the same
    answer as one. `deadline` ends the search early, which makes the answer depend on the
    machine's speed; `stats` receives the evaluations done and whether the clock cut them."""
    pb, climb, shares = _start(slots, deps, cluster, num_layers, period, training, evaluations, deadline)
    if workers > 1:
        climbs = run_jobs(climb, [(seed * RESTARTS + k, share) for k, share in enumerate(shares)], workers)
    else:  # here, on this problem (its link-queue memo shared by the climbs), stopping at the first cut
        climbs = []
        for k, share in enumerate(shares):
            climbs.append(_climb(pb, climb.first, [0] * cluster.size, random.Random(seed * RESTARTS + k), share,
                                 deadline))
            if climbs[-1][3]:
                break
    return _finish(pb, climb, shares, climbs, stats)


def _start(slots: Sequence[Slot], deps: Sequence[Dependency], cluster: Cluster, num_layers: int, period: int,
           training: Sequence[str], evaluations: int,
           deadline: Deadline | None) -> tuple[_Problem, _Climb, list[int]]:
    """The problem, the climbs' common start (the better of the ideal and the training order) as a job, and the
    climbs' shares of the moves."""
    pb = _problem(slots, deps, cluster, num_layers, period)
    rank = {t: i for i, t in enumerate(training)}
    starts = (_ideal_orders(pb, cluster.size), _ranked_orders(pb, cluster.size, rank))
    first = min(starts, key=lambda o: _score(pb, o)[:2])
    shares = [evaluations // RESTARTS + (1 if k < evaluations % RESTARTS else 0) for k in range(RESTARTS)]
    return pb, _Climb(tuple(slots), tuple(deps), cluster, num_layers, period, first, deadline), shares


def _finish(pb: _Problem, climb: _Climb, shares: Sequence[int],
            climbs: Sequence[tuple[list[list[int]], list[int], int, bool]], stats: dict[str, Any] | None) -> list[Slot]:
    """The best of the climbs, in their order up to the first one the clock cut (as one worker ends them)."""
    runs, done, cut, stalled = [], 0, False, 0
    for k, (orders, offsets, moves, cut) in enumerate(climbs):
        done += moves
        stalled += not cut and moves < shares[k]
        runs.append((_score(pb, orders, offsets)[:2], k, orders, offsets))
        if cut:
            break
    _, _, best, offsets = min(runs)
    if stats is not None:
        # stalled: climbs that ended without a new best for their patience (moves left unspent, by design)
        stats.update(evaluations=done, evaluations_asked=sum(shares), cut_for_time=cut, restarts=len(runs),
                     stalled=stalled)
    return _placed(pb, climb.slots, best, offsets)


@dataclass(frozen=True)
class _Climb:
    """One climb of search_slot_orders as a job for another process: (seed, moves) -> _climb's answer."""
    slots: tuple[Slot, ...]
    deps: tuple[Dependency, ...]
    cluster: Cluster
    num_layers: int
    period: int
    first: list[list[int]]
    deadline: Deadline | None

    def problem(self) -> _Problem:
        return _problem(self.slots, self.deps, self.cluster, self.num_layers, self.period)

    def __call__(self, job: tuple[int, int]) -> tuple[list[list[int]], list[int], int, bool]:
        seed, moves = job
        return _climb(self.problem(), self.first, [0] * self.cluster.size, random.Random(seed), moves,
                      self.deadline)


def polish_slots(slots: Sequence[Slot], deps: Sequence[Dependency], cluster: Cluster, num_layers: int,
                 period: int, *, seed: int = 0, evaluations: int = 500, deadline: Deadline | None = None,
                 stats: dict[str, Any] | None = None) -> list[Slot]:
    """A finished schedule's slots improved by the same moves (the link waits that the lags will count,
    schedules.common.assign_lags, are part of every evaluation, which the CP-SAT model leaves out). It starts from the slots' own per-processor cyclic orders, each processor packed back to
    back from the slot after its longest idle gap; the caller keeps the original when the polished slots are
    not better."""
    pb = _problem(slots, deps, cluster, num_layers, period)
    pos = {t: i for i, t in enumerate(pb.ids)}
    orders: list[list[int]] = [[] for _ in range(cluster.size)]
    offsets = [0] * cluster.size
    for p in range(cluster.size):
        mine = sorted((s for s in slots if s.processor == p), key=lambda x: (x.start_cycles, x.id))
        if not mine:
            continue
        # the cyclic sequence starts after its longest idle gap, so packing back to back moves slots least
        gaps = [(mine[k].start_cycles - mine[k - 1].end_cycles) % period if k else
                (mine[0].start_cycles + period - mine[-1].end_cycles) % period for k in range(len(mine))]
        first = max(range(len(mine)), key=lambda k: (gaps[k], -k))
        orders[p] = [pos[s.id] for s in mine[first:] + mine[:first]]
        offsets[p] = mine[first].start_cycles
    best, offsets, done, cut = _climb(pb, orders, offsets, random.Random(seed), evaluations, deadline)
    if stats is not None:
        stats.update(evaluations=done, evaluations_asked=evaluations, cut_for_time=cut,
                     stalled=int(not cut and done < evaluations))
    return _placed(pb, slots, best, offsets)


def search_orders(graph: TaskGraph, cluster: Cluster, assignment: Mapping[str, int], period: int,
                  training: Sequence[str], *, seed: int = 0, evaluations: int = 4000,
                  deadline: Deadline | None = None, stats: dict[str, Any] | None = None,
                  workers: int = 1) -> list[Slot]:
    """Unsplit tasks: one slot per task on its assigned processor, then search_slot_orders."""
    return search_orders_batch(graph, cluster, [OrderSearch(assignment, period, deadline, stats)], training,
                               seed=seed, evaluations=evaluations, workers=workers)[0]


@dataclass(frozen=True)
class OrderSearch:
    """One search_orders call of a batch (search_orders_batch): the assignment, the period, when its climbs stop
    and where its stats go."""
    assignment: Mapping[str, int]
    period: int
    deadline: Deadline | None = None
    stats: dict[str, Any] | None = None


def search_orders_batch(graph: TaskGraph, cluster: Cluster, searches: Sequence[OrderSearch],
                        training: Sequence[str], *, seed: int = 0, evaluations: int = 4000,
                        workers: int = 1) -> list[list[Slot]]:
    """[search_orders(...) for each search], the same answers, with the climbs of all the searches in one batch
    of jobs on `workers` processes: two searches of three climbs on 2 workers take three rounds instead of four."""
    slots = [[Slot(t, x.assignment[t], 0, slot_cycles(graph, cluster, t, x.assignment[t]))
              for t in graph.topological_order()] for x in searches]
    if workers <= 1:
        return [search_slot_orders(s, expected_dependencies(graph, s), cluster, graph.num_layers, x.period,
                                   training, seed=seed, evaluations=evaluations, deadline=x.deadline, stats=x.stats)
                for s, x in zip(slots, searches, strict=True)]
    started = [_start(s, expected_dependencies(graph, s), cluster, graph.num_layers, x.period, training,
                      evaluations, x.deadline) for s, x in zip(slots, searches, strict=True)]
    jobs = [(climb, (seed * RESTARTS + k, share)) for _, climb, shares in started for k, share in enumerate(shares)]
    results = run_jobs(_run_climb, jobs, workers)
    out, at = [], 0
    for (pb, climb, shares), x in zip(started, searches, strict=True):
        out.append(_finish(pb, climb, shares, results[at:at + len(shares)], x.stats))
        at += len(shares)
    return out


def _run_climb(job: tuple[_Climb, tuple[int, int]]) -> tuple[list[list[int]], list[int], int, bool]:
    climb, args = job
    return climb(args)
