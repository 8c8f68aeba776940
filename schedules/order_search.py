"""Phase-2 seed of the SpikePipe scheduler: per-processor cyclic orders found by a seeded local search.

With the period packed to the lower bound, an ASAP modulo placement fragments the busiest processors and fails,
and packing every processor in one global training order makes a minibatch wrap around the period at every hop
between processors, which costs gradient delay. Here each processor runs its tasks back to back from offset 0 in
its own order; lags follow from the edges (schedules.common.assign_lags) and the delays from lags and offsets.

The start order puts each task at its ideal phase (earliest start of the unconstrained minibatch, modulo the
period); a local search (swap, move, rotate; fixed evaluation budget, so the same seed gives the same answer)
then minimises (total delay, total lag). Also: lower bounds on every layer's delay from critical paths.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import networkx as nx

from hwmodels import Cluster
from schedules.common import expected_dependencies, slot_cycles, transfer_cycles
from spikepipe.ir import Dependency, Slot, TaskGraph, TaskKind, task_id


def delay_lower_bounds(graph: TaskGraph, cluster: Cluster, period: int,
                       assignment: Mapping[str, int] | None = None) -> tuple[int, ...]:
    """delay_l >= ceil(longest path from F_l's start to W_l's end / period) - 1 (docs/design.md section 4 formula:
    the span of one minibatch from F_l to W_l is a whole number of periods plus offsets). Durations are the
    fastest processor's and transfers 0, unless an assignment is given (then both are exact for it)."""
    order = graph.topological_order()
    procs = range(cluster.size)
    if assignment is None:
        dur = {t: min(slot_cycles(graph, cluster, t, p) for p in procs) for t in order}
    else:
        dur = {t: slot_cycles(graph, cluster, t, assignment[t]) for t in order}
    pos = {t: i for i, t in enumerate(order)}
    out = []
    for layer in range(graph.num_layers):
        if not graph.has_task(layer, TaskKind.W):  # no weights: delay 0 (ir.slot_lag_delays)
            out.append(0)
            continue
        f, w = task_id(TaskKind.F, layer), task_id(TaskKind.W, layer)
        end = {f: dur[f]}  # longest F_l-start-to-end path
        for t in order[pos[f] + 1:pos[w] + 1]:
            best = None
            for u in graph.predecessors(t):
                if u in end:
                    c = 0 if assignment is None else transfer_cycles(
                        cluster, assignment[u], assignment[t], graph.edge_bytes(u, t))
                    best = max(best or 0, end[u] + c)
            if best is not None:
                end[t] = best + dur[t]
        span = end.get(w, dur[f] + dur[w])
        out.append(max(0, -(-span // period) - 1))
    return tuple(out)


@dataclass(frozen=True)
class _Problem:
    ids: tuple[str, ...]  # slot ids in a topological order of the dependencies
    proc: tuple[int, ...]
    dur: tuple[int, ...]
    preds: tuple[tuple[tuple[int, int], ...], ...]  # (pred index, transfer cycles)
    layers: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]  # (F part indices, W part indices) per layer
    period: int


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
    return _Problem(ids, tuple(by_id[t].processor for t in ids), tuple(by_id[t].duration_cycles for t in ids),
                    preds, layers, period)


def _score(pb: _Problem, orders: Sequence[Sequence[int]]) -> tuple[int, int, list[int], list[int]]:
    """(total delay, total lag, starts, lags) of back-to-back packing in the given per-processor orders."""
    start = [0] * len(pb.ids)
    for seq in orders:
        t = 0
        for i in seq:
            start[i] = t
            t += pb.dur[i]
    lag = [0] * len(pb.ids)
    per = pb.period
    for v, ps in enumerate(pb.preds):
        r = 0
        for u, c in ps:
            need = start[u] + pb.dur[u] + c - start[v]
            r = max(r, lag[u] - (-need // per))
        lag[v] = r
    total = 0
    for fs, ws in pb.layers:  # F reads at its earliest part, the update lands when the last W part ends
        if not ws:  # a layer without W has no weights and delay 0
            continue
        read = min(lag[i] * per + start[i] for i in fs)
        write = max(lag[i] * per + start[i] + pb.dur[i] for i in ws)
        total += -((read - write) // per) - 1
    return total, sum(lag), start, lag


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


def search_slot_orders(slots: Sequence[Slot], deps: Sequence[Dependency], cluster: Cluster, num_layers: int,
                       period: int, training: Sequence[str], *, seed: int = 0,
                       evaluations: int = 4000, stop_at_s: float | None = None,
                       stats: dict[str, Any] | None = None) -> list[Slot]:
    """The slots re-packed back to back per processor in the best cyclic orders found, with the smallest lags;
    deterministic for a seed and budget. Processors and durations are kept; the period must hold every
    processor's load. `stop_at_s` (a time.perf_counter() instant) ends the search early, which makes the answer
    depend on the machine's speed; `stats` receives the evaluations done and whether the clock cut them."""
    pb = _problem(slots, deps, cluster, num_layers, period)
    rank = {t: i for i, t in enumerate(training)}
    rng = random.Random(seed)
    best_orders, best = None, None
    for orders in (_ideal_orders(pb, cluster.size), _ranked_orders(pb, cluster.size, rank)):
        sc = _score(pb, orders)[:2]
        if best is None or sc < best:
            best, best_orders = sc, [list(o) for o in orders]
    cur, cur_sc = [list(o) for o in best_orders], best
    movable = [p for p, o in enumerate(cur) if len(o) > 1]
    done, cut = 0, False
    while movable and done < evaluations:
        if stop_at_s is not None and time.perf_counter() >= stop_at_s:
            cut = True
            break
        done += 1
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
        sc = _score(pb, trial)[:2]
        if sc <= cur_sc:  # sideways moves let the search cross plateaus of equal delay
            cur, cur_sc = trial, sc
            if sc < best:
                best, best_orders = sc, [list(o) for o in trial]
    if stats is not None:
        stats.update(evaluations=done, evaluations_asked=evaluations, cut_for_time=cut)
    _, _, start, lag = _score(pb, best_orders)
    by_id = {s.id: s for s in slots}
    pos = {t: i for i, t in enumerate(pb.ids)}
    return [replace(s, start_cycles=start[pos[s.id]], lag=lag[pos[s.id]]) for s in (by_id[t] for t in
                                                                                      sorted(by_id))]


def search_orders(graph: TaskGraph, cluster: Cluster, assignment: Mapping[str, int], period: int,
                  training: Sequence[str], *, seed: int = 0, evaluations: int = 4000,
                  stop_at_s: float | None = None, stats: dict[str, Any] | None = None) -> list[Slot]:
    """Unsplit tasks: one slot per task on its assigned processor, then search_slot_orders."""
    slots = [Slot(t, assignment[t], 0, slot_cycles(graph, cluster, t, assignment[t]))
             for t in graph.topological_order()]
    return search_slot_orders(slots, expected_dependencies(graph, slots), cluster, graph.num_layers, period,
                              training, seed=seed, evaluations=evaluations, stop_at_s=stop_at_s, stats=stats)
