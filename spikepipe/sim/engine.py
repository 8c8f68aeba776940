"""SimPy replay of a Schedule on a modelled Cluster.

Every processor is a SimPy process that walks its slots in start order, period after period. In period k a slot
with lag r works on minibatch k - r (flush schedules: iteration k). A slot never starts before k * period + start,
and it waits for its processor and for the data of its own minibatch (and micro-batch / shard): the replay
measures the schedule, it does not re-schedule it. A periodic slot that runs past the period end (docs/design.md
section 4.2) has the largest start of its processor's slots, so it is the last of its period in that walk, and it
ends no later than the next period's first slot starts (cyclic no-overlap): walking the slots in start order,
period after period, replays it with nothing pushed late. Links are SimPy resources: a transfer holds each hop of its
route for ceil(bytes / bandwidth) cycles, then pays the hop latency (store-and-forward, the same cost the
schedulers use), and runs beside compute (DMA) unless `overlap_comm=False`, when the sender is busy for it.
Collectives hold every link of the topology for their duration.

The dependencies come from the schedule and, when the graph is given, also from the graph's own edges, so a
schedule that dropped or mis-lagged a dependency is caught here without the validator's help.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from math import ceil

import simpy

from hwmodels import Cluster
from spikepipe.ir import Schedule, Slot, TaskGraph, TaskKind
from spikepipe.sim.memory import MemoryTracker, layer_weight_bytes
from spikepipe.sim.result import SimResult, SimulationError, SlotRecord, TransferRecord, Violation

log = logging.getLogger(__name__)

_MAX_VIOLATIONS = 20


@dataclass(frozen=True)
class _Dep:
    index: int
    src: str
    dst: str
    bytes: int
    route: tuple[tuple[int, int], ...]


def graph_dependencies(graph: TaskGraph, slots: Sequence[Slot]) -> list[tuple[str, str, int]]:
    """Slot-level edges a graph implies, derived here independently of the schedulers: for every edge u->v and
    micro-batch, shard i of u feeds shard i of v when both are split the same way, else every slot of u feeds
    every slot of v with u's bytes spread over v's slots by their fractions."""
    by_task: dict[tuple[str, int], list[Slot]] = defaultdict(list)
    for s in slots:
        by_task[(s.task, s.microbatch)].append(s)
    out: list[tuple[str, str, int]] = []
    for u, v, nbytes in graph.edges:
        for (task, mb), us in list(by_task.items()):
            if task != u:
                continue
            vs = by_task.get((v, mb), [])
            if not vs:
                continue
            if len(us) > 1 and sorted(s.part for s in us) == sorted(s.part for s in vs):
                vpart = {s.part: s for s in vs}
                out += [(su.id, vpart[su.part].id, ceil(nbytes * su.fraction)) for su in us]
                continue
            vtotal = sum(s.fraction for s in vs)
            # one consumer slot takes exactly all of it (nbytes*f*f/f can round one ulp up, one byte more)
            out += [(su.id, sv.id, ceil(nbytes * su.fraction * (1.0 if len(vs) == 1 else sv.fraction / vtotal)))
                    for su in us for sv in vs]
    return out


class _AfterAll(simpy.events.Event):
    """A timeout processed after every ordinary event of its instant: a slot due at t sees data that arrives at t."""

    def __init__(self, env: simpy.Environment, delay: int) -> None:
        super().__init__(env)
        self._ok = True
        self._value = None
        env.schedule(self, priority=2, delay=delay)  # simpy's NORMAL is 1, URGENT 0


class _Replay:
    def __init__(self, schedule: Schedule, cluster: Cluster, graph: TaskGraph | None, iterations: int,
                 strict: bool, overlap_comm: bool, weight_stashing: bool, record: bool,
                 link_contention: bool) -> None:
        self.s = schedule
        self.cluster = cluster
        self.graph = graph
        self.n = iterations
        self.strict = strict
        self.overlap = overlap_comm
        self.record = record
        self.contention = link_contention
        self.period = schedule.period_cycles
        self.env = simpy.Environment()
        self.slots = {sl.id: sl for sl in schedule.slots}
        self.order = schedule.by_processor()
        self.max_lag = max([schedule.max_lag] + [c.lag for c in schedule.collectives])
        self.periods = iterations + self.max_lag
        net = cluster.interconnect
        self.latency = net.link_latency_cycles
        self.occupancy = net.occupancy_cycles
        self.links: dict[tuple[int, int], simpy.Resource] = {}
        self._build_deps()
        self._events: dict[tuple, simpy.Event] = {}
        # a layer's update is applied when all its W slots (every micro-batch and shard) of a minibatch are done
        self.w_all: dict[int, int] = defaultdict(int)
        for sl in schedule.slots:
            if sl.kind is TaskKind.W:
                self.w_all[sl.layer] += 1
        self.w_done: dict[tuple[int, int], int] = defaultdict(int)  # (layer, minibatch) -> finished W slots
        self.coll_by_layer = {c.layer: c for c in schedule.collectives}
        self.memory = MemoryTracker(schedule, cluster, graph, weight_stashing=weight_stashing)
        # measurements
        self.read: dict[tuple[int, int], int] = {}  # (layer, minibatch) -> first F start
        self.update: dict[tuple[int, int], int] = {}  # (layer, minibatch) -> weights updated (last W / all-reduce)
        self.complete: dict[int, int] = defaultdict(int)  # minibatch -> last end of anything
        self.slot_recs: list[SlotRecord] = []
        self.xfer_recs: list[TransferRecord] = []
        self.comm_time: dict[int, int] = defaultdict(int)  # minibatch -> transfer + collective cycles
        self.violations: list[Violation] = []
        self.late = 0
        self.max_late = 0
        self.events = 0
        self.waiting: dict[int, str] = {}

    # ------------------------------------------------------------ set-up
    def _build_deps(self) -> None:
        pairs: dict[tuple[str, str], int] = {}
        for d in self.s.dependencies:
            if d.src not in self.slots or d.dst not in self.slots:
                raise SimulationError(f"schedule {self.s.name}: dependency {d.src}->{d.dst} names an unknown slot; "
                                      "regenerate the schedule", slot=d.dst)
            pairs[(d.src, d.dst)] = max(pairs.get((d.src, d.dst), 0), d.bytes)
        if self.graph is not None:
            known = {t.id for t in self.graph.tasks}
            for sl in self.s.slots:
                if sl.task not in known:
                    raise SimulationError(f"schedule {self.s.name}: slot {sl.id} names task {sl.task!r}, which the "
                                          f"graph {self.graph.name} does not have", slot=sl.id)
            for src, dst, nbytes in graph_dependencies(self.graph, self.s.slots):
                if (src, dst) not in pairs:
                    log.info("schedule %s lacks dependency %s->%s; the replay enforces it", self.s.name, src, dst)
                pairs[(src, dst)] = max(pairs.get((src, dst), 0), nbytes)
        self.deps: list[_Dep] = []
        self.in_deps: dict[str, list[_Dep]] = defaultdict(list)
        self.out_deps: dict[str, list[_Dep]] = defaultdict(list)
        for i, ((src, dst), nbytes) in enumerate(sorted(pairs.items())):
            a, b = self.slots[src].processor, self.slots[dst].processor
            d = _Dep(i, src, dst, nbytes, self.cluster.route(a, b) if a != b else ())
            self.deps.append(d)
            self.in_deps[dst].append(d)
            self.out_deps[src].append(d)
        # a split layer's new weights go from its updater to its other holders once the update lands; nothing in
        # the schedule waits for them (the next read is a later minibatch), but they load the links
        self.bcasts: dict[int, list[_Dep]] = defaultdict(list)
        if self.graph is not None:
            from schedules.common import weight_broadcasts  # schedules imports spikepipe.ir: import late

            sends = weight_broadcasts(self.graph, self.cluster, self.s.slots, self.s.collectives)
            for j, (lay, a, b, nbytes) in enumerate(sends):
                self.bcasts[lay].append(_Dep(-1 - j, f"W{lay} weights", f"P{b}", nbytes, self.cluster.route(a, b)))

    def _ev(self, key: tuple) -> simpy.Event:
        ev = self._events.get(key)
        if ev is None:
            ev = self._events[key] = self.env.event()
        return ev

    def _link(self, link: tuple[int, int]) -> simpy.Resource:
        res = self.links.get(link)
        if res is None:
            res = self.links[link] = simpy.Resource(self.env, capacity=1)
        return res

    def _note_late(self, sl: Slot, n: int, late: int, reason: str) -> None:
        self.late += 1
        self.max_late = max(self.max_late, late)
        if len(self.violations) < _MAX_VIOLATIONS:
            self.violations.append(Violation(sl.id, n, late, reason))

    # ------------------------------------------------------------ processes
    def processor(self, p: int, order: list[Slot]):
        env = self.env
        for k in range(self.periods):
            base = k * self.period
            for sl in order:
                n = k - sl.lag
                if n < 0 or n >= self.n:
                    continue
                sched = base + sl.start_cycles
                if env.now <= sched:
                    yield _AfterAll(env, sched - env.now)
                else:
                    if self.strict:
                        raise SimulationError(
                            f"schedule {self.s.name}: processor {p} is still busy at cycle {env.now} when slot "
                            f"{sl.id} of minibatch {n} should start at {sched}", slot=sl.id, minibatch=n)
                    self._note_late(sl, n, env.now - sched, "processor")
                waits = [ev for d in self.in_deps.get(sl.id, ()) if not (ev := self._ev(("a", d.index, n))).triggered]
                weights = self._weight_wait(sl, n)
                if waits or weights is not None:
                    missing = waits + ([weights] if weights is not None else [])
                    if self.strict:
                        names = [d.src for d in self.in_deps.get(sl.id, ()) if not self._ev(("a", d.index, n)).triggered]
                        what = f"data from {', '.join(names)}" if names else f"the weight update of layer {sl.layer}"
                        raise SimulationError(
                            f"schedule {self.s.name}: slot {sl.id} of minibatch {n} starts at cycle {sched} on "
                            f"processor {p} but {what} is not ready; the schedule breaks a dependency",
                            slot=sl.id, minibatch=n)
                    self.waiting[p] = f"slot {sl.id} of minibatch {n}"
                    yield env.all_of(missing)
                    del self.waiting[p]
                    if env.now > sched:
                        self._note_late(sl, n, env.now - sched, "input" if waits else "weights")
                start = env.now
                self._on_start(sl, n, start)
                yield env.timeout(sl.duration_cycles)
                end = env.now
                self._on_end(sl, n, p, sched, start, end)
                for d in self.out_deps.get(sl.id, ()):
                    if not d.route:
                        self._ev(("a", d.index, n)).succeed()
                    elif self.overlap:
                        env.process(self.transfer(d, n))
                    else:
                        yield from self.transfer(d, n)

    def _weight_wait(self, sl: Slot, n: int) -> simpy.Event | None:
        """Flush schedules apply every update before the next iteration reads: F_l of iteration n waits for the
        update of iteration n - 1 (its last W_l slot, or its all-reduce)."""
        if self.s.kind != "flush" or sl.kind is not TaskKind.F or n == 0 or not self._updated(sl.layer):
            return None
        ev = self._ev(("u", sl.layer, n - 1))
        return None if ev.triggered else ev

    def _updated(self, layer: int) -> bool:
        """Whether the layer's weights are ever updated: a layer without W slots (no weights) never is."""
        return self.w_all[layer] > 0 or layer in self.coll_by_layer

    def _on_start(self, sl: Slot, n: int, t: int) -> None:
        if sl.kind is TaskKind.F:
            key = (sl.layer, n)
            if key not in self.read:
                self.read[key] = t
                self.memory.forward_started(sl.layer, n, t)

    def _on_end(self, sl: Slot, n: int, p: int, sched: int, start: int, end: int) -> None:
        self.events += 1
        self._ev(("d", sl.id, n)).succeed()
        if end > self.complete[n]:
            self.complete[n] = end
        if self.record:
            self.slot_recs.append(SlotRecord(p, sl.id, sl.task, n, sl.microbatch, sched, start, end))
        self.memory.slot_ended(sl, n, end)
        if sl.kind is TaskKind.W:
            key = (sl.layer, n)
            self.w_done[key] += 1
            if self.w_done[key] == self.w_all[sl.layer]:
                self.memory.update_applied(sl.layer, n, end)
                for d in self.bcasts.get(sl.layer, ()):
                    self.env.process(self.transfer(d, n))
                if sl.layer not in self.coll_by_layer:
                    self.update[key] = end
                    self._ev(("u", sl.layer, n)).succeed()

    def transfer(self, d: _Dep, n: int):
        env = self.env
        t0 = env.now
        occ = self.occupancy(d.bytes)
        for link in d.route:
            if occ > 0 and not self.contention:
                a = env.now
                yield env.timeout(occ)
                if self.record:
                    self.xfer_recs.append(TransferRecord(d.src, d.dst, n, link, a, env.now, d.bytes))
            elif occ > 0:
                with self._link(link).request() as req:
                    yield req
                    a = env.now
                    yield env.timeout(occ)
                    if self.record:
                        self.xfer_recs.append(TransferRecord(d.src, d.dst, n, link, a, env.now, d.bytes))
            if self.latency:
                yield env.timeout(self.latency)
            self.events += 1
        self.comm_time[n] += env.now - t0
        if env.now > self.complete[n]:
            self.complete[n] = env.now
        self._ev(("a", d.index, n)).succeed()

    def collectives(self):
        env = self.env
        colls = sorted(self.s.collectives, key=lambda c: (c.start_cycles, c.id))
        hop_links = list(self.cluster.links())
        for k in range(self.periods):
            for c in colls:
                n = k - c.lag
                if n < 0 or n >= self.n:
                    continue
                sched = k * self.period + c.start_cycles
                if env.now <= sched:
                    yield _AfterAll(env, sched - env.now)
                waits = [ev for sid in c.after if not (ev := self._ev(("d", sid, n))).triggered]
                if waits:
                    if self.strict:
                        raise SimulationError(f"schedule {self.s.name}: collective {c.id} of minibatch {n} starts at "
                                              f"cycle {sched} before its inputs are done", slot=c.id, minibatch=n)
                    yield env.all_of(waits)
                reqs = [self._link(ln).request() for ln in hop_links]
                if reqs:
                    yield env.all_of(reqs)
                start = env.now
                yield env.timeout(c.duration_cycles)
                for ln, req in zip(hop_links, reqs, strict=True):
                    self.links[ln].release(req)
                self.events += 1
                self.comm_time[n] += env.now - start
                if env.now > self.complete[n]:
                    self.complete[n] = env.now
                if self.record:
                    self.xfer_recs.append(TransferRecord(c.id, c.id, n, None, start, env.now, c.bytes, True))
                self.update[(c.layer, n)] = env.now
                self._ev(("u", c.layer, n)).succeed()

    # ------------------------------------------------------------ run and measure
    def run(self) -> SimResult:
        t0 = time.perf_counter()
        procs = [self.env.process(self.processor(p, lst)) for p, lst in sorted(self.order.items()) if lst]
        if self.s.collectives:
            procs.append(self.env.process(self.collectives()))
        try:
            self.env.run()
        except SimulationError as exc:  # SimPy re-raises a copy built from args: give back the original
            if isinstance(exc.__cause__, SimulationError):
                raise exc.__cause__.with_traceback(None) from None
            raise
        stuck = [p for p in procs if p.is_alive]
        if stuck:
            where = "; ".join(f"processor {p} waits for {w}" for p, w in sorted(self.waiting.items()))
            first = min(self.waiting.items())[1] if self.waiting else "?"
            raise SimulationError(f"schedule {self.s.name}: the replay deadlocks ({where or 'collective stuck'}); "
                                  "a dependency goes against the processors' slot order", slot=first.split()[1]
                                  if self.waiting else None)
        return self._result(time.perf_counter() - t0)

    def _result(self, wall_s: float) -> SimResult:
        n = self.n
        lo, hi = self.steady_range()
        if hi > lo:
            sim_period = (self.complete[hi] - self.complete[lo]) / (hi - lo)
        else:
            sim_period = float(self.complete[hi] - min((r.start_cycles for r in self.slot_recs), default=0))
        # busy time per minibatch over the steady period: exact in steady state, and blind to warm-up and drain
        steady = range(lo, hi + 1)
        per = max(1e-9, sim_period) * max(1, len(steady))
        busy: dict[int, int] = defaultdict(int)
        for sl in self.s.slots:
            busy[sl.processor] += sl.duration_cycles
        link_busy: dict[object, int] = defaultdict(int)
        for r in self.xfer_recs:
            if r.minibatch in steady:
                link_busy[r.link if r.link is not None else "collective"] += r.end_cycles - r.start_cycles
        util = tuple(min(1.0, busy[p] / max(1e-9, sim_period)) for p in range(self.s.processors))
        compute = sum(sl.duration_cycles for sl in self.s.slots)
        comm = sum(self.comm_time[i] for i in steady) / max(1, len(steady))
        bcast = sum(d.bytes for ds in self.bcasts.values() for d in ds)
        cross = sum(d.bytes for d in self.deps if d.route) + bcast
        total_bytes = sum(d.bytes for d in self.deps) + bcast
        coll_bytes = sum(c.bytes for c in self.s.collectives) if self.cluster.size > 1 else 0
        mem = self.memory.peaks(self.s.processors)
        link_bytes = [0] * self.s.processors
        for d in self.deps:
            if d.route:
                link_bytes[self.slots[d.src].processor] += d.bytes * len(d.route)
        for ds in self.bcasts.values():
            for d in ds:
                link_bytes[d.route[0][0]] += d.bytes * len(d.route)
        for c in self.s.collectives:  # every processor sends the same share of a collective
            total = self.cluster.interconnect.allreduce_link_bytes(c.bytes, self.cluster.size)
            for p in range(self.s.processors):
                link_bytes[p] += total // self.s.processors + (p < total % self.s.processors)
        first_start = min((r.start_cycles for r in self.slot_recs), default=0)
        return SimResult(
            schedule=self.s.name, kind=self.s.kind, processors=self.s.processors, iterations=n,
            period_cycles=self.period, simulated_period_cycles=sim_period,
            makespan_cycles=max(self.complete.values(), default=0) - first_start, steady_first_minibatch=lo,
            utilisation=util, compute_cycles_per_iteration=float(compute), comm_cycles_per_iteration=float(comm),
            comm_fraction=comm / (comm + compute) if comm + compute else 0.0,
            comm_bytes_per_iteration=cross + coll_bytes,
            comm_bytes_fraction=(cross + coll_bytes) / (total_bytes + coll_bytes) if total_bytes + coll_bytes else 0.0,
            link_utilisation_max=max(link_busy.values(), default=0) / per,
            peak_memory_bytes=mem.total, weight_bytes=mem.weights, peak_stash_bytes=mem.stash,
            peak_activation_bytes=mem.activations, gradient_delays=self._delays(steady),
            late_slots=self.late, max_late_cycles=self.max_late, violations=tuple(self.violations),
            events=self.events, wall_s=wall_s, link_bytes_per_processor=tuple(link_bytes),
            slot_records=tuple(self.slot_recs), transfer_records=tuple(self.xfer_recs))

    def steady_range(self) -> tuple[int, int]:
        """Minibatches [lo, hi] measured: every slot of the periods they occupy (n .. n + max lag) works on a real
        minibatch (no warm-up or drain in front of them in any processor's order), and the first half of those is
        skipped so that a replay that runs late has reached its backlog."""
        hi = self.n - 1 - self.max_lag
        if hi - self.max_lag < 1:
            log.warning("schedule %s: %d iterations are too few to measure a steady state with lags up to %d; "
                        "use at least %d", self.s.name, self.n, self.max_lag, 2 * self.max_lag + 2)
            return (0, self.n - 1) if self.n >= 2 else (0, 0)
        return self.max_lag + (hi - self.max_lag) // 2, hi

    def _delays(self, steady: range) -> tuple[int, ...]:
        """Per layer, the most updates any steady-state minibatch's forward missed: n - 1 - (newest minibatch
        whose update landed by the time F_l(n) read its weights)."""
        layers = sorted({sl.layer for sl in self.s.slots})
        num = (max(layers) + 1) if layers else 0
        span = self.max_lag + 3
        out = []
        for layer in range(num):
            worst = 0
            for n in steady if self._updated(layer) else ():  # no weights, nothing to be stale: delay 0
                t = self.read.get((layer, n))
                if t is None:
                    continue
                newest = -1
                for m in range(n, max(-1, n - span - 1), -1):
                    u = self.update.get((layer, m))
                    if u is not None and u <= t:
                        newest = m
                        break
                if newest == -1 and n - span - 1 >= 0:
                    newest = n - span - 1  # older than the search window: report the window's edge
                worst = max(worst, n - 1 - newest)
            out.append(worst)
        return tuple(out)


def simulate(schedule: Schedule, cluster: Cluster, *, iterations: int | None = None, graph: TaskGraph | None = None,
             strict: bool = False, overlap_comm: bool = True, weight_stashing: bool = True,
             record: bool = True, link_contention: bool = True) -> SimResult:
    """Replay `schedule` for `iterations` minibatches (default: enough to reach and measure the steady state).

    strict: raise SimulationError at the first slot whose input (or processor) is not ready at its scheduled
    start; otherwise run it late, count it, and let the measured period show the cost.
    link_contention: transfers queue for a link (True, the default) or each gets the full bandwidth, which is
    what the schedulers assume when they price an edge; the difference is how much contention costs.
    graph: enables memory accounting and adds the graph's own edges to the dependencies the replay enforces.
    """
    if schedule.processors != cluster.size:
        raise SimulationError(f"schedule {schedule.name} is for {schedule.processors} processors, the cluster has "
                              f"{cluster.size}; build the cluster with --processors {schedule.processors}")
    if not isinstance(schedule.period_cycles, int) or schedule.period_cycles <= 0:
        raise SimulationError(f"schedule {schedule.name} has period {schedule.period_cycles!r}; it must be a "
                              "positive integer")
    for sl in schedule.slots:
        if sl.lag < 0 or sl.duration_cycles < 0 or not 0 <= sl.processor < cluster.size:
            raise SimulationError(f"schedule {schedule.name}: slot {sl} has a negative lag or duration or an unknown "
                                  "processor", slot=sl.id)
    if iterations is None:
        lag = max([schedule.max_lag] + [c.lag for c in schedule.collectives])
        iterations = max(8, 4 * lag + 4)
    if not isinstance(iterations, int) or iterations < 1:
        raise SimulationError(f"iterations must be a positive integer, got {iterations!r}")
    replay = _Replay(schedule, cluster, graph, iterations, strict, overlap_comm, weight_stashing, record,
                     link_contention)
    return replay.run()


__all__ = ["simulate", "graph_dependencies", "layer_weight_bytes"]
