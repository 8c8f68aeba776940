"""Memory held by each processor over a replay: weights, stashed weight versions, activations in flight.

- Weights: one copy of every layer with a slot on the processor (parameters + optimiser state, LayerMemory;
  when the graph gives no bytes, the layer's weight count times the processor's word size).
- Stashed versions (periodic schedules, weight stashing on): a minibatch is in flight at layer l from the start of
  its F_l until its W_l has applied the update; every in-flight minibatch beyond the first may need its own copy of
  the weights (PipeDream keeps p - s versions at stage s), held on the processors that run F_l or B_l.
- Activations: a task's activation_bytes (times its slot's fraction) are held on the slot's processor from the
  slot's end until W_l of the same minibatch and micro-batch ends (the matching shard's W if W is split the same
  way), as Task.activation_bytes is defined; for a layer without W (no weights) until its B ends, the last task
  that reads them. Such a layer has no weights and so no stashed versions.
Peaks come from a sweep over (time, delta) events, releases before allocations at equal times.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from math import ceil

from hwmodels import Cluster
from spikepipe.costs import layer_weight_bytes  # the cost model's, shared with spikepipe.energy
from spikepipe.ir import Schedule, Slot, TaskGraph, TaskKind


@dataclass(frozen=True)
class MemoryPeaks:
    total: tuple[int, ...]
    weights: tuple[int, ...]
    stash: tuple[int, ...]
    activations: tuple[int, ...]


class MemoryTracker:
    def __init__(self, schedule: Schedule, cluster: Cluster, graph: TaskGraph | None, *,
                 weight_stashing: bool) -> None:
        self.graph = graph
        procs = schedule.processors
        self.weights = [0] * procs
        self.events: dict[str, list[tuple[int, int, int]]] = {"stash": [], "act": []}  # (t, delta, processor)
        self.enabled = graph is not None
        self.stashing = weight_stashing and schedule.kind == "periodic"
        if not self.enabled:
            return
        hosts: dict[int, set[int]] = defaultdict(set)
        readers: dict[int, set[int]] = defaultdict(set)
        for sl in schedule.slots:
            hosts[sl.layer].add(sl.processor)
            if sl.kind is not TaskKind.W:
                readers[sl.layer].add(sl.processor)
        self.wbytes = {}
        for layer, ps in hosts.items():
            held = layer_weight_bytes(graph, cluster, layer)
            wb, opt = held.weight_bytes, held.optimizer_bytes
            self.wbytes[layer] = wb
            for p in ps:
                self.weights[p] += wb + opt
        self.readers = {layer: sorted(ps) for layer, ps in readers.items()}
        self.inflight: dict[int, int] = defaultdict(int)
        # activations wait for the W slot of the same (layer, microbatch, part) when W is split like the producer;
        # a layer without W slots releases them when its B (its last task) ends
        weighted = {sl.layer for sl in schedule.slots if sl.kind is TaskKind.W}
        self.last = {sl.layer: TaskKind.W if sl.layer in weighted else TaskKind.B for sl in schedule.slots}
        self.w_parts: dict[tuple[int, int], set[int]] = defaultdict(set)
        self.w_count: dict[tuple[int, int], int] = defaultdict(int)
        for sl in schedule.slots:
            if sl.kind is self.last[sl.layer]:
                self.w_parts[(sl.layer, sl.microbatch)].add(sl.part)
                self.w_count[(sl.layer, sl.microbatch)] += 1
        self.pending: dict[tuple, list[tuple[int, int]]] = defaultdict(list)  # key -> [(processor, bytes)]
        self.w_seen: dict[tuple[int, int, int], int] = defaultdict(int)

    # -- stashed versions
    def forward_started(self, layer: int, n: int, t: int) -> None:
        if self.enabled and self.stashing:
            self._inflight(layer, +1, t)

    def update_applied(self, layer: int, n: int, t: int) -> None:
        if self.enabled and self.stashing:
            self._inflight(layer, -1, t)

    def _inflight(self, layer: int, step: int, t: int) -> None:
        old = self.inflight[layer]
        new = old + step
        self.inflight[layer] = new
        delta = self.wbytes.get(layer, 0) * (max(0, new - 1) - max(0, old - 1))
        if delta:
            for p in self.readers.get(layer, ()):
                self.events["stash"].append((t, delta, p))

    # -- activations
    def slot_ended(self, sl: Slot, n: int, t: int) -> None:
        if not self.enabled:
            return
        mb = sl.microbatch
        if sl.kind is not self.last[sl.layer]:
            nbytes = ceil(self.graph.task(sl.task).activation_bytes * sl.fraction)
            if nbytes > 0:
                parts = self.w_parts[(sl.layer, mb)]
                key = (sl.layer, n, mb, sl.part) if len(parts) > 1 and sl.part in parts else (sl.layer, n, mb)
                self.pending[key].append((sl.processor, nbytes))
                self.events["act"].append((t, nbytes, sl.processor))
            return
        for p, nbytes in self.pending.pop((sl.layer, n, mb, sl.part), ()):
            self.events["act"].append((t, -nbytes, p))
        seen = self.w_seen[(sl.layer, n, mb)] = self.w_seen[(sl.layer, n, mb)] + 1
        if seen == self.w_count[(sl.layer, mb)]:
            del self.w_seen[(sl.layer, n, mb)]
            for p, nbytes in self.pending.pop((sl.layer, n, mb), ()):
                self.events["act"].append((t, -nbytes, p))

    # -- peaks
    def peaks(self, processors: int) -> MemoryPeaks:
        def peak(events: list[tuple[int, int, int]]) -> list[int]:
            cur, best = [0] * processors, [0] * processors
            for _t, delta, p in sorted(events):
                cur[p] += delta
                best[p] = max(best[p], cur[p])
            return best

        stash = peak(self.events["stash"])
        act = peak(self.events["act"])
        both = peak(self.events["stash"] + self.events["act"])
        total = tuple(w + b for w, b in zip(self.weights, both, strict=True))
        return MemoryPeaks(total, tuple(self.weights), tuple(stash), tuple(act))
