"""Pure validation of a Schedule against its TaskGraph and Cluster.

Every check raises ScheduleError with one first line saying what is wrong, followed by the schedule grid with the
failing slot marked. Checks: slot ids and tasks known, coverage (fractions per task sum to 1, each micro-batch an
equal share), slot start inside [0, period) and duration at most the period (a periodic slot may run past the
period end into the next period, docs/design.md section 4.2; a flush slot and a collective may not), durations
equal to the cost model, no processor overlap, cyclically (the in-period pieces of a processor's slots, a wrapped
slot's tail included, are disjoint), every graph edge present as slot dependencies and satisfied with its
transfer time (s(v) + period*(r(v) - r(u)) >= s(u) + d(u) + c(u, v), d the full duration), collectives after
their inputs and not overlapping, link capacity per period (split layers' weight broadcasts included), flush
schedules without lags, and gradient delays equal to ir.slot_lag_delays.
"""

from __future__ import annotations

from collections import defaultdict

from hwmodels import Cluster
from schedules.common import expected_dependencies, link_loads, slot_cycles, transfer_cycles
from spikepipe.ir import Schedule, ScheduleError, Slot, TaskGraph, slot_lag_delays

_EPS = 1e-9


def _fail(schedule: Schedule, message: str, mark: str | None = None) -> ScheduleError:
    try:
        grid = schedule.grid(mark=mark)
    except Exception:  # a schedule broken enough to break the printer still gets its message out
        grid = "(grid unavailable)"
    return ScheduleError(f"schedule {schedule.name}: {message}\n{grid}")


def validate(schedule: Schedule, graph: TaskGraph, cluster: Cluster) -> None:
    s = schedule
    period = s.period_cycles
    if not isinstance(period, int) or period <= 0:
        raise ScheduleError(f"schedule {s.name}: period must be a positive integer, got {period!r}")
    if s.processors != cluster.size:
        raise _fail(s, f"schedule is for {s.processors} processors, the cluster has {cluster.size}")
    if s.kind not in ("periodic", "flush"):
        raise _fail(s, f"unknown schedule kind {s.kind!r}; expected periodic or flush")
    if s.microbatches < 1:
        raise _fail(s, f"microbatches must be >= 1, got {s.microbatches}")
    _check_slots(s, graph, cluster)
    _check_overlap(s)
    _check_dependencies(s, graph, cluster)
    _check_collectives(s)
    _check_links(s, cluster, graph)
    _check_delays(s, graph)


def _check_slots(s: Schedule, graph: TaskGraph, cluster: Cluster) -> None:
    period = s.period_cycles
    known = {t.id for t in graph.tasks}
    seen: set[str] = set()
    share: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for sl in s.slots:
        if sl.id in seen:
            raise _fail(s, f"two slots have the id {sl.id}", sl.id)
        seen.add(sl.id)
        if sl.task not in known:
            raise _fail(s, f"slot {sl.id} names task {sl.task!r}, which the graph does not have", sl.id)
        if not 0 <= sl.processor < cluster.size:
            raise _fail(s, f"slot {sl.id} is on processor {sl.processor}, cluster has {cluster.size}", sl.id)
        if not 0 <= sl.start_cycles < period:
            raise _fail(s, f"slot {sl.id} [{sl.start_cycles}, {sl.end_cycles}) is outside the period [0, {period})",
                        sl.id)
        if sl.duration_cycles > period:
            raise _fail(s, f"slot {sl.id} lasts {sl.duration_cycles} cycles, longer than the period {period}", sl.id)
        if s.kind == "flush" and sl.wraps(period):
            raise _fail(s, f"slot {sl.id} [{sl.start_cycles}, {sl.end_cycles}) is outside the period [0, {period}): "
                           "a flush schedule's slots end within their iteration", sl.id)
        if sl.lag < 0:
            raise _fail(s, f"slot {sl.id} has negative lag {sl.lag}", sl.id)
        if s.kind == "flush" and sl.lag != 0:
            raise _fail(s, f"flush schedule slot {sl.id} has lag {sl.lag}; flush schedules run one iteration "
                           "per period", sl.id)
        if not 0 <= sl.microbatch < s.microbatches:
            raise _fail(s, f"slot {sl.id} names micro-batch {sl.microbatch}, schedule has {s.microbatches}", sl.id)
        if not 0 < sl.fraction <= 1:
            raise _fail(s, f"slot {sl.id} has fraction {sl.fraction}, must be in (0, 1]", sl.id)
        want = slot_cycles(graph, cluster, sl.task, sl.processor, sl.fraction)
        if sl.duration_cycles != want:
            raise _fail(s, f"slot {sl.id} lasts {sl.duration_cycles} cycles, the cost model charges {want} for "
                           f"fraction {sl.fraction:g} on processor {sl.processor}", sl.id)
        share[sl.task][sl.microbatch] += sl.fraction
    for tid in known:
        if tid not in share:
            raise _fail(s, f"task {tid} has no slot")
        per_mb = share[tid]
        if abs(sum(per_mb.values()) - 1.0) > 1e-6:
            raise _fail(s, f"fractions of task {tid} sum to {sum(per_mb.values()):.6g}, not 1", f"{tid}")
        for mb in range(s.microbatches):
            if abs(per_mb.get(mb, 0.0) - 1.0 / s.microbatches) > 1e-6:
                raise _fail(s, f"task {tid} micro-batch {mb} covers {per_mb.get(mb, 0.0):.6g} of the minibatch, "
                               f"expected 1/{s.microbatches}", tid)


def _span(sl: Slot, period: int) -> str:
    pieces = sl.pieces(period)
    whole = f"[{sl.start_cycles}, {sl.end_cycles})"
    return whole if len(pieces) == 1 else f"{whole} (wrapping: [{pieces[1][0]}, {pieces[1][1]}) of the next period)"


def _check_overlap(s: Schedule) -> None:
    """Cyclic: every period a processor runs the in-period pieces of all its slots, so they must be disjoint; a
    wrapped slot's tail [0, end - period) meets the first slots of the period."""
    period = s.period_cycles
    for p, lst in s.by_processor().items():
        pieces = sorted((a, sl.id, b) for sl in lst for a, b in sl.pieces(period))
        by_id = {sl.id: sl for sl in lst}
        for (_, a_id, a_end), (b_start, b_id, _) in zip(pieces, pieces[1:], strict=False):
            if b_start < a_end:
                a, b = by_id[a_id], by_id[b_id]
                marked = a if a.wraps(period) and not b.wraps(period) else b  # the wrapping slot, if one
                raise _fail(s, f"processor {p} runs {a.id} {_span(a, period)} and {b.id} {_span(b, period)} at once",
                            marked.id)


def _check_dependencies(s: Schedule, graph: TaskGraph, cluster: Cluster) -> None:
    slots = {sl.id: sl for sl in s.slots}
    have: dict[tuple[str, str], int] = {}
    for d in s.dependencies:
        if d.src not in slots or d.dst not in slots:
            raise _fail(s, f"dependency {d.src}->{d.dst} names an unknown slot")
        if d.bytes < 0:
            raise _fail(s, f"dependency {d.src}->{d.dst} has negative bytes", d.dst)
        have[(d.src, d.dst)] = max(have.get((d.src, d.dst), 0), d.bytes)
    for d in expected_dependencies(graph, s.slots):
        if (d.src, d.dst) not in have:
            raise _fail(s, f"graph edge {d.src}->{d.dst} is missing from the schedule's dependencies", d.dst)
        if have[(d.src, d.dst)] < d.bytes:
            raise _fail(s, f"dependency {d.src}->{d.dst} carries {have[(d.src, d.dst)]} bytes, the graph needs "
                           f"{d.bytes}", d.dst)
    period = s.period_cycles
    for d in s.dependencies:
        u, v = slots[d.src], slots[d.dst]
        c = transfer_cycles(cluster, u.processor, v.processor, d.bytes)
        lhs = v.start_cycles + period * (v.lag - u.lag)
        if lhs < u.end_cycles + c:
            raise _fail(s, f"edge {u.id}->{v.id} violated: {v.id} starts at {v.start_cycles} (lag {v.lag}) but "
                           f"{u.id} ends at {u.end_cycles} (lag {u.lag}) and the transfer takes {c} cycles", v.id)


def _check_collectives(s: Schedule) -> None:
    slots = {sl.id: sl for sl in s.slots}
    period = s.period_cycles
    coll = sorted(s.collectives, key=lambda c: c.start_cycles)
    for c in coll:
        if not 0 <= c.start_cycles < period or c.end_cycles > period or c.duration_cycles < 0:
            raise _fail(s, f"collective {c.id} [{c.start_cycles}, {c.end_cycles}) is outside [0, {period})")
        for sid in c.after:
            if sid not in slots:
                raise _fail(s, f"collective {c.id} waits for unknown slot {sid}")
            sl = slots[sid]
            if c.start_cycles + period * (c.lag - sl.lag) < sl.end_cycles:
                raise _fail(s, f"collective {c.id} starts at {c.start_cycles} before {sid} ends at {sl.end_cycles}",
                            sid)
    for a, b in zip(coll, coll[1:], strict=False):
        if b.start_cycles < a.end_cycles:
            raise _fail(s, f"collectives {a.id} and {b.id} overlap; each occupies every link")


def _check_links(s: Schedule, cluster: Cluster, graph: TaskGraph) -> None:
    for link, load in sorted(link_loads(s, cluster, graph).items()):
        if load > s.period_cycles:
            raise _fail(s, f"link {link[0]}->{link[1]} is busy {load} cycles per period of {s.period_cycles}")


def _check_delays(s: Schedule, graph: TaskGraph) -> None:
    try:
        want = slot_lag_delays(s.slots, graph.num_layers, s.period_cycles)
    except ScheduleError as exc:
        raise _fail(s, str(exc)) from None
    if tuple(s.gradient_delays) != want:
        bad = next(i for i, (a, b) in enumerate(zip(s.gradient_delays, want, strict=False)) if a != b) \
            if len(s.gradient_delays) == len(want) else 0
        raise _fail(s, f"gradient delays {tuple(s.gradient_delays)} differ from those the lags and offsets give "
                       f"{want} (first at layer {bad})", f"W{bad}" if graph.has_task(bad, "W") else f"F{bad}")
    if s.kind == "flush" and any(want):
        raise _fail(s, f"flush schedule has non-zero gradient delays {want}")
