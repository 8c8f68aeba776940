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
minimises (total delay, total span: the summed F-to-W times, which falls before the delays do). The packing, its
score and the rotation step are schedules.order_packing.
"""

from __future__ import annotations

import functools
import random
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hwmodels import Cluster
from schedules.common import expected_dependencies, slot_cycles
from schedules.deadline import Deadline
from schedules.order_packing import (
    PackingProblem,
    packing_problem,
    placed_slots,
    rotate_offsets,
    score_packing,
)
from schedules.workers import Helper, run_jobs
from spikepipe.ir import Dependency, Slot, TaskGraph

# independent climbs the order search's moves are shared among (search_slot_orders)
RESTARTS = 3
# a climb stops after half its moves, and at least this many, without a new best: a small graph's climb has
# converged long before its share (snn-cnn at P=4: 12 slots), and the budget stays counted in moves
STALL_MOVES = 150


def _ideal_orders(pb: PackingProblem, procs: int) -> list[list[int]]:
    """Each processor's slots sorted by their earliest start in an unconstrained run, modulo the period."""
    est = [0] * len(pb.ids)
    for v, ps in enumerate(pb.preds):
        est[v] = max((est[u] + pb.dur[u] + c for u, c in ps), default=0)
    orders: list[list[int]] = [[] for _ in range(procs)]
    for i in sorted(range(len(pb.ids)), key=lambda i: (est[i] % pb.period, i)):
        orders[pb.proc[i]].append(i)
    return orders


def _ranked_orders(pb: PackingProblem, procs: int, rank: Mapping[str, int]) -> list[list[int]]:
    orders: list[list[int]] = [[] for _ in range(procs)]
    for i in sorted(range(len(pb.ids)), key=lambda i: (rank.get(pb.ids[i].split(".")[0], 0), i)):
        orders[pb.proc[i]].append(i)
    return orders


# a move of the climb: (processor, kind: 0 swap, 1 move, 2 rotate, a, b), drawn before the state is known
_Move = tuple[int, int, int, int]


def _climb(pb: PackingProblem, orders: list[list[int]], offsets: Sequence[int], rng: random.Random,
           evaluations: int, deadline: Deadline | None,
           helper: Helper | None = None) -> tuple[list[list[int]], list[int], int, bool]:
    """Seeded hill climbing over per-processor cyclic orders (swap, move, rotate) and rotations (offsets),
    sideways moves allowed: (best orders, their offsets, moves done, whether the clock cut the moves). After each
    move the offsets are re-chosen (rotate_offsets). The climb ends when its moves are spent or after half of them,
    at least STALL_MOVES, without a new best.

    `helper` (schedules.workers.Helper over _rotated_job on this problem) tries the next move on the same state
    meanwhile. Moves are drawn independently of the state and most are rejected (92% in resnet18's polish), so
    the next move's try usually stands; when this move is taken, the guess is dropped and tried again on the new
    state. The same moves are done in the same order either way: the same answer, in less wall time."""
    procs = range(len(orders))
    cur, cur_off = [list(o) for o in orders], list(offsets)
    r = rotate_offsets(pb, cur, cur_off, procs, score_packing(pb, cur, cur_off).score)
    cur_off, cur_sc = r.offsets, r.score
    best, best_orders, best_off = cur_sc, [list(o) for o in cur], list(cur_off)
    movable = [p for p, o in enumerate(cur) if len(o) > 1]
    lengths = [len(o) for o in cur]
    done = since_best = 0
    patience = max(STALL_MOVES, evaluations // 2)
    drawn: deque[_Move] = deque()  # moves drawn ahead for the helper, not done yet
    # (orders, offsets) -> the rotation's answer: a climb stuck near an optimum draws some moves again (5 to 9% of
    # resnet18's), and the answer is a function of them
    memo: dict[tuple[tuple[tuple[int, ...], ...], tuple[int, ...]], tuple[list[int], tuple[int, int]]] = {}
    while movable and done < evaluations and since_best < patience:
        if deadline is not None and deadline.expired():
            return best_orders, best_off, done, True
        move = drawn.popleft() if drawn else _draw(rng, movable, lengths)
        tries = [_applied(cur, move)]
        if helper is not None and done + 1 < evaluations:
            if not drawn:
                drawn.append(_draw(rng, movable, lengths))
            tries.append(_applied(cur, drawn[0]))
        keys = [(tuple(map(tuple, t)), tuple(cur_off)) for t in tries]
        ask = len(keys) > 1 and keys[1] not in memo and keys[1] != keys[0]
        if ask:
            helper.submit((tries[1], cur_off))
        if keys[0] not in memo:
            memo[keys[0]] = _rotated(pb, tries[0], cur_off)
        if ask:
            memo[keys[1]] = helper.result()
        moved = False
        for k, (trial, (off, sc)) in enumerate(zip(tries, [memo[x] for x in keys], strict=True)):
            if k:  # the guess holds only on the state it was tried on, and only if the climb goes on
                if moved or not (done < evaluations and since_best < patience):
                    break
                if deadline is not None and deadline.expired():
                    return best_orders, best_off, done, True
                drawn.popleft()
            done += 1
            since_best += 1
            moved = sc <= cur_sc  # sideways moves let the search cross plateaus of equal delay
            if moved:
                cur, cur_off, cur_sc = trial, off, sc
                if sc < best:
                    r = rotate_offsets(pb, cur, cur_off, procs, cur_sc)
                    cur_off, cur_sc = r.offsets, r.score
                    best, best_orders, best_off = cur_sc, [list(o) for o in cur], list(cur_off)
                    since_best = 0
    return best_orders, best_off, done, False


def _draw(rng: random.Random, movable: Sequence[int], lengths: Sequence[int]) -> _Move:
    """The next move, from the random stream alone (a processor's length never changes)."""
    p = movable[rng.randrange(len(movable))]
    n = lengths[p]
    move = rng.random()
    if move < 0.4:
        return p, 0, rng.randrange(n), rng.randrange(n)
    if move < 0.85:
        a = rng.randrange(n)
        return p, 1, a, rng.randrange(n)
    return p, 2, rng.randrange(1, n), 0


def _applied(cur: list[list[int]], move: _Move) -> list[list[int]]:
    """The orders with the move applied (the other processors' lists shared, not copied)."""
    p, kind, a, b = move
    cand = list(cur[p])
    if kind == 0:
        cand[a], cand[b] = cand[b], cand[a]
    elif kind == 1:
        x = cand.pop(a)
        cand.insert(b, x)
    else:
        cand = cand[a:] + cand[:a]
    return cur[:p] + [cand] + cur[p + 1:]


def _rotated(pb: PackingProblem, orders: list[list[int]], offsets: list[int]) -> tuple[list[int], tuple[int, int]]:
    """The orders' offsets re-chosen from `offsets`: (offsets, score)."""
    r = rotate_offsets(pb, orders, offsets, range(len(orders)), score_packing(pb, orders, offsets).score)
    return r.offsets, r.score


def _rotated_job(pb: PackingProblem, job: tuple[list[list[int]], list[int]]) -> tuple[list[int], tuple[int, int]]:
    return _rotated(pb, *job)


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
    started = _start(slots, deps, cluster, num_layers, period, training, evaluations, deadline)
    pb, climb, shares = started
    if workers > 1:
        climbs = _on_processes([started], seed, workers)[0]
    else:  # here, on this problem (its link-queue memo shared by the climbs), stopping at the first cut
        climbs = []
        for k, share in enumerate(shares):
            climbs.append(climb.run(pb, seed * RESTARTS + k, share))
            if climbs[-1][3]:
                break
    return _finish(pb, climb, shares, climbs, stats)


def _on_processes(started: Sequence[tuple[PackingProblem, _Climb, list[int]]], seed: int,
                  workers: int) -> list[list[tuple[list[list[int]], list[int], int, bool]]]:
    """Every climb of the started searches as one batch of jobs on `workers` processes: per search, its
    climbs' answers in order."""
    jobs = [(climb, (seed * RESTARTS + k, share)) for _, climb, shares in started for k, share in enumerate(shares)]
    results = run_jobs(_run_climb, jobs, workers)
    out, at = [], 0
    for _, _, shares in started:
        out.append(results[at:at + len(shares)])
        at += len(shares)
    return out


def _start(slots: Sequence[Slot], deps: Sequence[Dependency], cluster: Cluster, num_layers: int, period: int,
           training: Sequence[str], evaluations: int,
           deadline: Deadline | None) -> tuple[PackingProblem, _Climb, list[int]]:
    """The problem, the climbs' common start (the better of the ideal and the training order) as a job, and the
    climbs' shares of the moves."""
    pb = packing_problem(slots, deps, cluster, num_layers, period)
    rank = {t: i for i, t in enumerate(training)}
    starts = (_ideal_orders(pb, cluster.size), _ranked_orders(pb, cluster.size, rank))
    first = min(starts, key=lambda o: score_packing(pb, o).score)
    shares = [evaluations // RESTARTS + (1 if k < evaluations % RESTARTS else 0) for k in range(RESTARTS)]
    return pb, _Climb(tuple(slots), tuple(deps), cluster, num_layers, period, first, deadline), shares


def _finish(pb: PackingProblem, climb: _Climb, shares: Sequence[int],
            climbs: Sequence[tuple[list[list[int]], list[int], int, bool]], stats: dict[str, Any] | None) -> list[Slot]:
    """The best of the climbs, in their order up to the first one the clock cut (as one worker ends them)."""
    runs, done, cut, stalled = [], 0, False, 0
    for k, (orders, offsets, moves, cut) in enumerate(climbs):
        done += moves
        stalled += not cut and moves < shares[k]
        runs.append((score_packing(pb, orders, offsets).score, k, orders, offsets))
        if cut:
            break
    _, _, best, offsets = min(runs)
    if stats is not None:
        # stalled: climbs that ended without a new best for their patience (moves left unspent, by design)
        stats.update(evaluations=done, evaluations_asked=sum(shares), cut_for_time=cut, restarts=len(runs),
                     stalled=stalled)
    return placed_slots(pb, climb.slots, best, offsets)


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

    def problem(self) -> PackingProblem:
        return packing_problem(self.slots, self.deps, self.cluster, self.num_layers, self.period)

    def run(self, pb: PackingProblem, seed: int, moves: int) -> tuple[list[list[int]], list[int], int, bool]:
        return _climb(pb, self.first, [0] * self.cluster.size, random.Random(seed), moves, self.deadline)

    def __call__(self, job: tuple[int, int]) -> tuple[list[list[int]], list[int], int, bool]:
        return self.run(self.problem(), *job)


def polish_slots(slots: Sequence[Slot], deps: Sequence[Dependency], cluster: Cluster, num_layers: int,
                 period: int, *, seed: int = 0, evaluations: int = 500, deadline: Deadline | None = None,
                 stats: dict[str, Any] | None = None, workers: int = 1) -> list[Slot]:
    """A finished schedule's slots improved by the same moves (the link waits that the lags will count,
    schedules.common.assign_lags, are part of every evaluation, which the CP-SAT model leaves out). It starts from the slots' own per-processor cyclic orders, each processor packed back to
    back from the slot after its longest idle gap; the caller keeps the original when the polished slots are
    not better."""
    pb = packing_problem(slots, deps, cluster, num_layers, period)
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
    rng = random.Random(seed)
    # one climb: a second worker tries its next move meanwhile (_climb)
    helper = Helper.start(functools.partial(_rotated_job, pb)) if workers > 1 else None
    if helper is None:
        best, offsets, done, cut = _climb(pb, orders, offsets, rng, evaluations, deadline)
    else:
        with helper:
            best, offsets, done, cut = _climb(pb, orders, offsets, rng, evaluations, deadline, helper)
    if stats is not None:
        stats.update(evaluations=done, evaluations_asked=evaluations, cut_for_time=cut,
                     stalled=int(not cut and done < evaluations))
    return placed_slots(pb, slots, best, offsets)


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
    return [_finish(pb, climb, shares, climbs, x.stats) for (pb, climb, shares), climbs, x
            in zip(started, _on_processes(started, seed, workers), searches, strict=True)]


def _run_climb(job: tuple[_Climb, tuple[int, int]]) -> tuple[list[list[int]], list[int], int, bool]:
    climb, args = job
    return climb(args)
