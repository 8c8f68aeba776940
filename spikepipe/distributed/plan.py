"""What each rank does in one epoch: its events in order, and the messages between ranks. Pure data, no torch.

The events and their order are the trainer's (spikepipe.train.pipelined, docs/design.md section 4): a periodic slot
with lag r and start s runs minibatch n at (n + r) * period + s; reads at the start of F and B, the update at the
end of W; at equal times an ending update precedes the reads. The events of one epoch sorted by that key are the
order the single-process emulation runs them in; each rank runs its own subsequence of it. Because every
dependency is satisfied earlier in that global order, a rank that blocks on its receives and sends without
waiting cannot deadlock (induction on the global order), and each computation sees exactly the inputs and weight
versions the emulation gives it.

Flush schedules (GPipe, 1F1B, data parallel) run their slots per micro-batch and shard ("chunk"), accumulate the
weight gradients of a minibatch, all-reduce them among the ranks that hold the layer's W slots and update at the
end of the last W chunk (event U), so every F of the next minibatch reads the new weights. A periodic schedule
with split tasks (a layer's tasks cut into parts along the batch, on several processors) runs the same way: its
minibatch is cut into as many chunks as the finest split has parts, each part runs its chunks, and the ranks
holding W parts of a layer all-reduce their partial gradients and update together when the last W part ends.

Data items a rank may need from another rank (each sent once per receiving rank, to its first event needing it):
  ("act", l, n, c)        output of F_l(n, c): for the consumers' F, and for B's that recompute on another rank
  ("grad", k, role, n, c) input gradient B_k(n, c) returns to its source (role 0) or residual (role 1)
  ("wgrad", l, n, c)      weight gradients of B_l(n, c), for W_l(n, c)
  ("ver", l, v)           layer l's weights after v updates of this epoch (v = 0: the epoch's start weights)
  ("meta", l, n)          the version F_l(n) read (measured, not assumed), for the update's delay count
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from spikepipe.ir import Schedule
from spikepipe.train.pipelined import TrainerError, layer_timings

PERIODIC_TIE = {"W": 0, "U": 0, "F": 1, "B": 2}  # the emulation's order at equal times (updates before reads)
FLUSH_TIE = {"W": 0, "U": 1, "F": 2, "B": 3}
SUB = {"W": 0, "U": 1, "F": 2, "B": 3}  # W_l(n) before its own U_l(n) when both sit at one time


class PlanError(TrainerError):
    """The distributed backend cannot execute this schedule."""


@dataclass(frozen=True)
class Event:
    kind: str  # F | B | W | U
    layer: int
    n: int  # minibatch index within the epoch
    chunk: int  # micro-batch/shard index (0 for periodic schedules)
    rank: int
    slot: str  # slot id, for messages naming where a rank was


@dataclass(frozen=True)
class Message:
    src: int
    dst: int
    key: tuple
    src_event: int  # global event index that sends it (after running)
    dst_event: int  # global event index that receives it (before running)


@dataclass
class Plan:
    processors: int
    num_layers: int
    num_batches: int
    kind: str  # periodic | flush
    chunks: int  # chunks per minibatch
    chunk_parts: tuple[tuple[int, int], ...]  # chunk c = (micro-batch index, part index within it)
    microbatches: int
    parts: int
    events: list[Event]
    messages: list[Message]
    rank_events: dict[int, list[int]]
    recvs: dict[int, list[int]]  # event -> messages received before it runs
    sends: dict[int, list[int]]  # event -> messages sent after it runs
    reads: dict[int, int]  # F/B event -> version (local to the epoch) of its layer's weights it uses
    w_ranks: dict[int, tuple[int, ...]]  # layer -> ranks holding its W slots (replicated update)
    owner: dict[int, int]  # layer -> the rank that sends its versions and reports its final state
    releases: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # event -> (layer, version) to drop
    last_of_batch: dict[int, list[int]] = field(default_factory=dict)  # event -> minibatches this rank is done with
    recompute: dict[int, bool] = field(default_factory=dict)  # B event -> rebuild the layer's graph (not local)
    kept: set[tuple[int, int, int]] = field(default_factory=set)  # (rank, layer, version) read on that rank

    def where(self, event: int) -> str:
        e = self.events[event]
        return f"slot {e.slot} of minibatch {e.n}"


def _slots_by_task(schedule: Schedule) -> dict[tuple[str, int], list]:
    out: dict[tuple[str, int], list] = {}
    for s in schedule.slots:
        out.setdefault((s.kind.value, s.layer), []).append(s)
    return out


def _split_grid(schedule: Schedule, by_task: dict[tuple[str, int], list]) -> int:
    """Chunks per minibatch for a periodic schedule: the most parts any task is split into (split tasks: each part
    of a task cut into k parts covers K / k consecutive chunks, K a multiple of every k)."""
    K = max(len(lst) for lst in by_task.values())
    for (kind, layer), lst in sorted(by_task.items()):
        k = len(lst)
        if K % k or sorted(sl.part for sl in lst) != list(range(k)) or \
                any(abs(sl.fraction * k - 1.0) > 1e-6 for sl in lst):
            raise PlanError(f"schedule {schedule.name} splits {kind}{layer} into {k} parts of fractions "
                            f"{[round(sl.fraction, 3) for sl in lst]}; the distributed backend needs equal parts "
                            f"whose numbers divide {K} (the finest split), so that every part covers whole chunks")
    return K


def _periodic_events(schedule: Schedule, num_layers: int, num_batches: int) -> tuple[list[tuple[tuple, Event]], int]:
    """Events at the emulation's times (a split task reads when its first part starts and updates when its last
    W part ends, as layer_timings collapses it), one per chunk of its part; the chunks of one task follow each
    other in the global order, so they all read the same version."""
    timing = layer_timings(schedule, num_layers)  # the trainer's own view of the slots
    by_task = _slots_by_task(schedule)
    K = _split_grid(schedule, by_task)
    period = schedule.period_cycles
    keyed = []
    for layer, t in enumerate(timing):
        for kind, lag, cyc in (("F", t.f_lag, t.f_cycles), ("B", t.b_lag, t.b_cycles), ("W", t.w_lag, t.w_cycles)):
            parts = sorted(by_task.get((kind, layer), ()), key=lambda sl: sl.part)
            if not parts or lag is None:  # a layer without weights has no W task (layer_timings decides whether that is valid)
                continue
            per = K // len(parts)
            for n in range(num_batches):
                time = (n + lag) * period + cyc
                for c in range(K):
                    slot = parts[c // per]
                    keyed.append(((time, PERIODIC_TIE[kind], layer, n, SUB[kind], c),
                                  Event(kind, layer, n, c, slot.processor, slot.id)))
                if kind == "W":  # every rank holding a W part updates (partial gradients all-reduced first)
                    for slot in {sl.processor: sl for sl in reversed(parts)}.values():
                        keyed.append(((time, PERIODIC_TIE["U"], layer, n, SUB["U"], slot.processor),
                                      Event("U", layer, n, 0, slot.processor, slot.id)))
    return keyed, K


def _flush_chunks(schedule: Schedule, num_layers: int) -> tuple[tuple[tuple[int, int], ...], int, int]:
    by_task = _slots_by_task(schedule)
    ref = None
    for layer in range(num_layers):
        for kind in ("F", "B", "W"):
            slots = by_task.get((kind, layer))
            if not slots and kind == "W" and by_task.get(("F", layer)):
                continue  # a layer without W (no weights) has F and B only
            if not slots:
                raise PlanError(f"schedule {schedule.name} has no {kind} slot for layer {layer}")
            chunks = tuple(sorted((s.microbatch, s.part) for s in slots))
            if ref is None:
                ref = chunks
            elif chunks != ref:
                raise PlanError(f"schedule {schedule.name} splits {kind}{layer} into other chunks than the rest "
                                f"of the network; the distributed backend needs one micro-batch/shard grid")
    assert ref is not None
    mbs = sorted({m for m, _ in ref})
    parts = sorted({p for _, p in ref})
    if mbs != list(range(len(mbs))) or parts != list(range(len(parts))) or len(ref) != len(mbs) * len(parts):
        raise PlanError(f"schedule {schedule.name}: micro-batches {mbs} and shards {parts} do not form a grid")
    for s in schedule.slots:
        if abs(s.fraction * len(ref) - 1.0) > 1e-6:
            raise PlanError(f"schedule {schedule.name}: slot {s.id} does {s.fraction:.3f} of its task; the "
                            f"distributed backend needs equal micro-batches and shards")
    return ref, len(mbs), len(parts)


def _flush_events(schedule: Schedule, num_layers: int, num_batches: int,
                  chunks: Sequence[tuple[int, int]]) -> list[tuple[tuple, Event]]:
    if any(s.lag for s in schedule.slots):
        raise PlanError(f"flush schedule {schedule.name} has lags; flush schedules run one minibatch per period")
    index = {c: i for i, c in enumerate(chunks)}
    period = schedule.period_cycles
    keyed = []
    w_end: dict[int, int] = {}
    w_ranks: dict[int, set[int]] = {}
    for s in schedule.slots:
        kind, layer, c = s.kind.value, s.layer, index[(s.microbatch, s.part)]
        at = s.end_cycles if kind == "W" else s.start_cycles
        if kind == "W":
            w_end[layer] = max(w_end.get(layer, 0), s.end_cycles)
            w_ranks.setdefault(layer, set()).add(s.processor)
        for n in range(num_batches):
            keyed.append(((n * period + at, FLUSH_TIE[kind], layer, n, SUB[kind], c),
                          Event(kind, layer, n, c, s.processor, s.id)))
    for layer, end in w_end.items():
        for rank in sorted(w_ranks[layer]):
            for n in range(num_batches):
                keyed.append(((n * period + end, FLUSH_TIE["U"], layer, n, SUB["U"], rank),
                              Event("U", layer, n, 0, rank, f"U{layer}")))
    return keyed


def block_producers(sources: Sequence[int], residuals: Sequence[int | None]) -> tuple[tuple[int, ...], ...]:
    """The layers each block reads (-1: the network input): its source, then its residual."""
    return tuple(tuple(p for p in (s, r) if p is not None) for s, r in zip(sources, residuals, strict=True))


def build_plan(schedule: Schedule, producers: Sequence[Sequence[int]], num_batches: int, *, stash: bool) -> Plan:
    """Every rank's events of one epoch and every message between ranks (see the module docstring).
    producers[l]: the layers whose outputs layer l reads, in its argument order (-1: the network input)."""
    L = len(producers)
    if schedule.kind == "periodic":
        keyed, parts = _periodic_events(schedule, L, num_batches)
        chunks: tuple[tuple[int, int], ...] = tuple((0, c) for c in range(parts))
        mbs = 1
    else:
        chunks, mbs, parts = _flush_chunks(schedule, L)
        keyed = _flush_events(schedule, L, num_batches, chunks)
    keyed.sort(key=lambda kv: kv[0])
    events = [e for _, e in keyed]
    bad = [e for e in events if not 0 <= e.rank < schedule.processors]
    if bad:
        raise PlanError(f"slot {bad[0].slot} runs on processor {bad[0].rank}, the schedule has "
                        f"{schedule.processors}")
    plan = Plan(schedule.processors, L, num_batches, schedule.kind, len(chunks), tuple(chunks), mbs, parts, events,
                [], {r: [] for r in range(schedule.processors)}, {}, {}, {}, {}, {})
    for i, e in enumerate(events):
        plan.rank_events[e.rank].append(i)
    _wire(plan, producers, stash)
    _in_send_order(plan)
    return plan


def _wire(plan: Plan, producers: Sequence[Sequence[int]], stash: bool) -> None:
    events, L = plan.events, plan.num_layers
    consumers: dict[int, list[tuple[int, int]]] = {layer: [] for layer in range(L)}  # layer -> (consumer, role)
    for k in range(L):
        for role, src in enumerate(producers[k]):
            if src >= 0:
                consumers[src].append((k, role))
    w_ranks: dict[int, set[int]] = {}
    for e in events:
        if e.kind == "U":
            w_ranks.setdefault(e.layer, set()).add(e.rank)
    plan.w_ranks = {layer: tuple(sorted(r)) for layer, r in w_ranks.items()}
    plan.owner = {layer: r[0] for layer, r in plan.w_ranks.items()}
    f_rank = {(e.layer, e.n, e.chunk): e.rank for e in events if e.kind == "F"}
    producer: dict[tuple, tuple[int, set[int]]] = {}  # item -> (event that makes it on the owner, ranks holding it)
    updates = [0] * L  # updates of each layer seen so far in the global order
    f_reads: dict[tuple[int, int, int], int] = {}  # (layer, n, chunk) -> version F read
    planned: dict[tuple[int, tuple], int] = {}  # (rank, item) -> message index or -1 (local)
    last_use: dict[tuple[int, int, int], int] = {}  # (rank, layer, version) -> last event using it
    last_event_of: dict[tuple[int, int], int] = {}  # (rank, n) -> last event of minibatch n on that rank

    def need(i: int, item: tuple, what: str) -> None:
        rank = events[i].rank
        if (rank, item) in planned:
            return
        if item[0] == "ver" and item[2] == 0:  # the epoch's start weights are on every rank
            planned[(rank, item)] = -1
            return
        if item not in producer:
            e = events[i]
            raise PlanError(f"schedule runs {e.kind}{e.layer} (slot {e.slot}) of minibatch {e.n} before "
                            f"{what}; the schedule is not executable")
        src_event, holders = producer[item]
        if rank in holders:
            planned[(rank, item)] = -1
            return
        m = len(plan.messages)
        plan.messages.append(Message(events[src_event].rank, rank, item, src_event, i))
        plan.recvs.setdefault(i, []).append(m)
        plan.sends.setdefault(src_event, []).append(m)
        planned[(rank, item)] = m

    def read(i: int, layer: int, version: int) -> None:
        need(i, ("ver", layer, version), f"layer {layer}'s weights after {version} updates exist")
        plan.reads[i] = version
        last_use[(events[i].rank, layer, version)] = i

    for i, e in enumerate(events):
        lay, n, c = e.layer, e.n, e.chunk
        last_event_of[(e.rank, n)] = i
        if e.kind == "F":
            for src in producers[lay]:
                if src >= 0:
                    need(i, ("act", src, n, c), f"F{src} produced its input")
            read(i, lay, updates[lay])
            f_reads[(lay, n, c)] = updates[lay]
            producer[("act", lay, n, c)] = (i, {e.rank})
            if c == 0:
                producer[("meta", lay, n)] = (i, {e.rank})
        elif e.kind == "B":
            last = lay == L - 1
            for k, role in consumers[lay]:
                need(i, ("grad", k, role, n, c), f"B{k} returned the gradient of layer {lay}'s output")
            local = f_rank.get((lay, n, c)) == e.rank
            plan.recompute[i] = not (local and stash)
            if plan.recompute[i]:
                for src in producers[lay]:
                    if src >= 0:
                        need(i, ("act", src, n, c), f"F{src} produced the input of layer {lay}")
                if last and not stash:
                    need(i, ("act", lay, n, c), f"F{lay}")
                if stash:  # the version F_l(n) read: the stashed weights
                    read(i, lay, f_reads[(lay, n, c)])
                else:
                    read(i, lay, updates[lay])
            if ("act", lay, n, c) not in producer:
                raise PlanError(f"schedule runs B{lay} (slot {e.slot}) of minibatch {n} before F{lay}")
            for role, src in enumerate(producers[lay]):
                if src >= 0:
                    producer[("grad", lay, role, n, c)] = (i, {e.rank})
            producer[("wgrad", lay, n, c)] = (i, {e.rank})
        elif e.kind == "W":
            need(i, ("wgrad", lay, n, c), f"B{lay}")
        else:  # U: one per rank holding W slots of the layer
            if e.rank == plan.owner[lay]:
                need(i, ("meta", lay, n), f"F{lay}")
                updates[lay] += 1
                producer[("ver", lay, updates[lay])] = (i, set(plan.w_ranks[lay]))
    _lifetimes(plan, last_use, last_event_of)


def _in_send_order(plan: Plan) -> None:
    """Receive every pair's messages in the order the sender posts them (NCCL matches point-to-point messages by
    order, not by tag): an event that needs message m also receives, first, every earlier message of m's sender not
    yet received. Each was sent before m, so this waits for nothing the sender has not already posted."""
    order: dict[tuple[int, int], list[int]] = {}
    for event in sorted(plan.sends):
        for m in plan.sends[event]:
            msg = plan.messages[m]
            order.setdefault((msg.src, msg.dst), []).append(m)
    pos = {m: (pair, i) for pair, ms in order.items() for i, m in enumerate(ms)}
    done = {pair: 0 for pair in order}  # how many of the pair's messages the receiver has taken
    recvs: dict[int, list[int]] = {}
    for event in range(len(plan.events)):
        for m in plan.recvs.get(event, ()):
            pair, i = pos[m]
            if i >= done[pair]:
                recvs.setdefault(event, []).extend(order[pair][done[pair]:i + 1])
                done[pair] = i + 1
    plan.recvs = recvs


def _lifetimes(plan: Plan, last_use: dict, last_event_of: dict) -> None:
    for (rank, layer, version), i in last_use.items():
        plan.releases.setdefault(i, []).append((layer, version))
        plan.kept.add((rank, layer, version))
    for (_rank, n), i in last_event_of.items():
        plan.last_of_batch.setdefault(i, []).append(n)
