"""The vocabulary of mappings: slots, dependencies, collectives and schedules, and the delay rule.

Plain, immutable data (spikepipe.ir re-exports every name).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from math import ceil
from typing import Any, Literal

from hwmodels import Cluster
from spikepipe.ir.graph import (
    ScheduleError,
    TaskGraph,
    TaskKind,
)

# ---------------------------------------------------------------- schedules


@dataclass(frozen=True)
class Slot:
    """One execution of (a part of) a task. Times are cycles within the period: 0 <= start < period.

    A periodic slot may run past the period end (start + duration > period, duration <= period): it then ends in
    the next period, on the same minibatch, and its tail occupies the start of every period (`pieces`,
    docs/design.md section 4.2). A flush slot ends within its period."""

    task: str  # task id in the TaskGraph
    processor: int
    start_cycles: int
    duration_cycles: int
    lag: int = 0  # in period k this slot works on minibatch k - lag
    microbatch: int = 0  # flush schedules: which micro-batch
    part: int = 0  # intra-layer split / data-parallel shard
    fraction: float = 1.0  # share of the task's minibatch work this slot does

    # id, kind and layer are read millions of times by a replay (a tenth of a flush schedule's replay time went to
    # computing them again); a Slot is immutable, so each is computed once per slot (cached_property writes the
    # instance's __dict__, which a frozen dataclass allows; fields, equality and hashing are unchanged)
    @cached_property
    def id(self) -> str:
        s = self.task
        if self.microbatch:
            s += f".m{self.microbatch}"
        if self.part:
            s += f".p{self.part}"
        return s

    @property
    def end_cycles(self) -> int:
        return self.start_cycles + self.duration_cycles

    def wraps(self, period_cycles: int) -> bool:
        """Whether the slot runs past the period end into the next period."""
        return self.end_cycles > period_cycles

    def pieces(self, period_cycles: int) -> tuple[tuple[int, int], ...]:
        """The in-period intervals [a, b) the slot occupies in every period of the steady state: one, or two when
        it wraps (its start to the period end, then the tail [0, end - period) that the previous period's run
        spills into this one). Offsets are taken modulo the period; a slot as long as the period fills it."""
        if period_cycles <= 0:
            raise ScheduleError(f"period must be positive, got {period_cycles}")
        if self.duration_cycles >= period_cycles:
            return ((0, period_cycles),)
        a = self.start_cycles % period_cycles
        b = a + self.duration_cycles
        if b <= period_cycles:
            return ((a, b),)
        return ((a, period_cycles), (0, b - period_cycles))

    @cached_property
    def kind(self) -> TaskKind:
        return TaskKind(self.task[0])

    @cached_property
    def layer(self) -> int:
        return int(self.task[1:])

    def __str__(self) -> str:  # compact form, as torch.distributed.pipelining's actions
        return f"{self.id}@p{self.processor}:{self.start_cycles}+{self.duration_cycles}r{self.lag}"


@dataclass(frozen=True)
class Dependency:
    """src slot must finish (and its data arrive) before dst slot starts, both for the same minibatch."""

    src: str  # slot id
    dst: str  # slot id
    bytes: int = 0


@dataclass(frozen=True)
class Collective:
    """A collective on the interconnect (data parallel's gradient all-reduce): starts after all `after` slots,
    occupies every link for `duration_cycles`, and must end before all `before` slots of the next use."""

    id: str
    kind: Literal["allreduce"]
    layer: int
    bytes: int
    start_cycles: int
    duration_cycles: int
    after: tuple[str, ...] = ()
    lag: int = 0

    @property
    def end_cycles(self) -> int:
        return self.start_cycles + self.duration_cycles


@dataclass(frozen=True)
class Schedule:
    """The mapping: which processor runs each slot, when within the period, and for which minibatch (lag).

    periodic: the steady state of a pipeline, one minibatch enters per period; gradient delays may be > 0.
    flush:    one whole iteration per period (micro-batches, then a flush); all lags 0; delays 0.
    """

    name: str
    kind: Literal["periodic", "flush"]
    processors: int
    period_cycles: int
    slots: tuple[Slot, ...]
    dependencies: tuple[Dependency, ...]
    gradient_delays: tuple[int, ...]
    collectives: tuple[Collective, ...] = ()
    microbatches: int = 1
    info: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def slot(self, sid: str) -> Slot:
        for s in self.slots:
            if s.id == sid:
                return s
        raise ScheduleError(f"no slot {sid!r} in schedule {self.name}")

    def by_processor(self) -> dict[int, list[Slot]]:
        out: dict[int, list[Slot]] = {p: [] for p in range(self.processors)}
        for s in self.slots:
            out.setdefault(s.processor, []).append(s)
        for lst in out.values():
            lst.sort(key=lambda s: (s.start_cycles, s.id))
        return out

    @property
    def max_lag(self) -> int:
        return max((s.lag for s in self.slots), default=0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["info"] = dict(self.info)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Schedule:
        return cls(
            name=d["name"], kind=d["kind"], processors=d["processors"], period_cycles=d["period_cycles"],
            slots=tuple(Slot(**s) for s in d["slots"]),
            dependencies=tuple(Dependency(**x) for x in d["dependencies"]),
            gradient_delays=tuple(d["gradient_delays"]),
            collectives=tuple(Collective(**{**c, "after": tuple(c["after"])}) for c in d.get("collectives", ())),
            microbatches=d.get("microbatches", 1), info=dict(d.get("info", {})),
        )

    def compact(self) -> str:
        """One line per processor: slots in start order in their compact form."""
        return "\n".join(f"P{p}: " + " ".join(str(s) for s in lst) for p, lst in self.by_processor().items())

    def grid(self, mark: str | None = None, width: int = 100) -> str:
        """An ASCII Gantt chart of one period; the slot with id `mark` is drawn with '!' and named below."""
        if self.period_cycles <= 0:
            return self.compact()
        scale = width / self.period_cycles
        lines = [f"schedule {self.name} ({self.kind}), period {self.period_cycles} cycles, "
                 f"{self.processors} processors; cells = {self.period_cycles / width:.1f} cycles"]
        for p, lst in self.by_processor().items():
            row = ["."] * width
            for s in lst:
                # a slot that wraps past the period end is drawn to the row's end and its tail from the row's
                # start; a broken slot (start outside the period) is drawn clamped to the row, where the message
                # names it
                inside = 0 <= s.start_cycles < self.period_cycles
                spans = s.pieces(self.period_cycles) if inside else ((s.start_cycles, s.end_cycles),)
                for lo, hi in spans:
                    a = max(0, min(width - 1, int(lo * scale)))
                    b = max(a + 1, min(width, int(hi * scale)))
                    for i in range(a, b):
                        row[i] = s.id[(i - a) % len(s.id)] if s.id != mark else "!"
            lines.append(f"P{p:<3}|" + "".join(row) + "|")
        if mark is not None:
            lines.append(f"marked '!': {mark}")
        return "\n".join(lines)


def slot_lag_delays(slots: Iterable[Slot], num_layers: int, period_cycles: int) -> tuple[int, ...]:
    """Gradient delay of every layer, derived from the slots of F_l and W_l (docs/design.md section 4).

    F_l(n) reads its weights at (n + r_F) * period + s_F. The update of minibatch n' is applied when W_l(n')
    ends, at (n' + r_W) * period + s_W + d_W. The newest update F_l(n) sees is n* = max n' with that end
    <= the read time; the delay is n - 1 - n*, which simplifies to
        r_W - r_F - 1 + ceil((s_W + d_W - s_F) / period).
    With split tasks, F reads when its earliest part starts and the update lands when the last W part ends.
    A layer with F slots but no W slot has no weights (a layer without a W task): nothing it reads can be stale,
    so its delay is 0; the tuple keeps one entry per layer.
    """
    if period_cycles <= 0:
        raise ScheduleError(f"period must be positive, got {period_cycles}")
    read: dict[int, tuple[int, int]] = {}
    write: dict[int, tuple[int, int]] = {}
    for s in slots:
        if s.microbatch:
            continue
        t_abs_start = s.lag * period_cycles + s.start_cycles  # absolute time for minibatch 0
        if s.kind is TaskKind.F:
            cur = read.get(s.layer)
            if cur is None or t_abs_start < cur[0] * period_cycles + cur[1]:
                read[s.layer] = (s.lag, s.start_cycles)
        elif s.kind is TaskKind.W:
            end_abs = s.lag * period_cycles + s.end_cycles
            cur = write.get(s.layer)
            if cur is None or end_abs > cur[0] * period_cycles + cur[1]:
                write[s.layer] = (s.lag, s.end_cycles)
    delays = []
    for layer in range(num_layers):
        if layer not in read:
            raise ScheduleError(f"layer {layer} has no F slot; cannot derive its gradient delay")
        if layer not in write:  # no W task: no weights, no delay
            delays.append(0)
            continue
        r_f, s_f = read[layer]
        r_w, e_w = write[layer]
        d = r_w - r_f - 1 + -((s_f - e_w) // period_cycles)  # ceil((e_w - s_f) / period)
        if d < 0:
            raise ScheduleError(f"layer {layer}: W ends before F starts for the same minibatch")
        delays.append(d)
    return tuple(delays)


def lower_bound_cycles(graph: TaskGraph, cluster: Cluster, microbatches: Iterable[int] | None = None) -> int:
    """max(total work / P, largest task) for unsplit tasks, each priced on its cheapest processor.

    A task's work is the least a schedule can pay for it: whole, or as m micro-batches run one after another on
    one processor, for m in `microbatches` (default: every m a generator may pick, 1 <= m <= min(batch, 4P), which
    bounds every unsplit schedule). Micro-batches are not always dearer: a smaller GEMM can fit SRAM and lose its
    DRAM stalls, so the whole-batch price alone only bounds schedules of whole tasks (`microbatches=(1,)`)."""
    procs = tuple(dict.fromkeys(cluster.processors))  # distinct kinds: a homogeneous cluster prices once
    ms = (range(1, max(1, min(graph.batch, 4 * len(cluster.processors))) + 1) if microbatches is None
          else tuple(microbatches))
    work = [min(m * graph.cycles(t, p, 1.0 / m) if m > 1 else graph.cycles(t, p) for p in procs for m in ms)
            for t in graph.topological_order()]
    return max(ceil(sum(work) / len(cluster.processors)), max(work, default=0))
