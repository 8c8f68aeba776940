"""Energy of one minibatch of a schedule in steady state, priced with each processor's EnergyTable.

A period runs every slot once (periodic: each on its own minibatch; flush: one whole iteration), so one period's
work is one minibatch's. What is counted, per slot on its processor p (at its batch fraction):
- mac, ac   the task's GEMMs split by spikepipe.costs.ops_split: a GEMM whose A operand is the layer's input
            spikes costs ACs at the measured activity, every other GEMM MACs; without an activity every GEMM is
            dense MACs (the cycle model's view). Micro-batched GEMMs are priced as the scaled GEMMs they are.
- vector    elements x timesteps x ops per element of every vector-unit op (p's own ops table).
- sram      array-side buffer accesses of every GEMM (hwmodels.energy.gemm_sram_bytes) plus every byte that
            DRAM moves into or out of the buffers; a spike operand at the processor's `spike_format` (a bitmap
            holds one bit per entry).
- dram      the GEMMs' DRAM traffic (hwmodels.memory: re-streams and spills included, so smaller micro-batch GEMMs
            that re-read their weights pay for it); saved activations written by F and read back once by B/W;
            a weight stash per layer with a gradient delay (periodic schedules: F writes the version it read,
            B reads it back, on every processor running F of that layer); gradient accumulation of every W
            slot beyond a processor's first of a layer (read and write the gradient buffer); the optimiser update
            (read and write weights and optimiser state) once per processor updating a layer.
- link      bytes x hops of every transfer the replay moved (dependencies, weight broadcasts of split layers,
            the all-reduce following the topology), priced at the sender's table.
- static    every processor's static power over the simulated period, busy or idle.
Energy-delay product: joules per minibatch times seconds per minibatch (the simulated period).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from math import ceil
from typing import Protocol

from hwmodels import Cluster, EnergyTable, Processor
from hwmodels.energy import PJ, gemm_sram_words
from spikepipe.costs import layer_weight_bytes, task_ops_split
from spikepipe.ir import Gemm, Schedule, SpikePipeError, Task, TaskGraph, TaskKind

CATEGORIES = ("mac", "ac", "vector", "sram", "dram", "link", "static")


class Replay(Protocol):
    """What the energy model reads of a replay (spikepipe.sim.SimResult has it): energy sits beside the simulator,
    not inside it, so the simulator's evaluator can price a replay without a cycle between the two."""

    simulated_period_cycles: float
    link_bytes_per_processor: tuple[int, ...]


class EnergyError(SpikePipeError):
    """Energy cannot be priced (activity of the wrong length or out of range)."""


@dataclass(frozen=True)
class EnergyCounts:
    """What one minibatch does, before pricing (per processor where it matters)."""

    macs: float = 0.0
    acs: float = 0.0
    vector_ops: float = 0.0
    sram_bytes: float = 0.0
    dram_bytes: float = 0.0
    link_bytes: float = 0.0


@dataclass(frozen=True)
class EnergyReport:
    mac_joules: float
    ac_joules: float
    vector_joules: float
    sram_joules: float
    dram_joules: float
    link_joules: float
    static_joules: float
    period_seconds: float
    counts: EnergyCounts  # summed over processors

    @property
    def total_joules(self) -> float:
        return sum(self.breakdown().values())

    @property
    def energy_delay_product(self) -> float:
        """Joule-seconds per minibatch."""
        return self.total_joules * self.period_seconds

    def breakdown(self) -> dict[str, float]:
        return {c: getattr(self, f"{c}_joules") for c in CATEGORIES}

    def row(self) -> dict[str, object]:
        """The fields every simulate/compare result carries."""
        return {"energy_joules": self.total_joules, "energy_breakdown_joules": self.breakdown(),
                "energy_delay_product": self.energy_delay_product,
                "energy_counts": {k: v for k, v in asdict(self.counts).items()}}


def check_activity(activity: Sequence[float | None] | None, graph: TaskGraph) -> tuple[float | None, ...] | None:
    """Per layer the spike activity of its GEMM operand (None for a layer priced dense)."""
    if activity is None:
        return None
    act = tuple(None if a is None else float(a) for a in activity)
    if len(act) != graph.num_layers:
        raise EnergyError(f"activity has {len(act)} layers, network {graph.name} has {graph.num_layers}")
    bad = [i for i, a in enumerate(act) if a is not None and not 0.0 <= a <= 1.0]
    if bad:
        raise EnergyError(f"activity of layer {bad[0]} is {act[bad[0]]}; it must be in [0, 1]")
    return act


def _gemm_memory(proc: Processor, g: Gemm) -> tuple[float, float]:
    """(sram, dram) bytes of one GEMM (one group) on a processor. A binary A operand takes the processor's
    spike format's bytes per entry (a bitmap: one bit) in the buffers and in its DRAM traffic."""
    wb = proc.word_bytes
    traffic = proc.memory.gemm_traffic(proc.array, g.m, g.k, g.n, wb)
    a_words, b_words, c_words = gemm_sram_words(proc.array, g.m, g.k, g.n)
    a_scale = proc.spike_bytes_per_entry() / wb if g.binary_operand else 1.0
    dram = traffic.ifmap_bytes * a_scale + traffic.filter_bytes + traffic.ofmap_bytes
    return a_words * wb * a_scale + (b_words + c_words) * wb + dram, dram


def task_counts(task: Task, proc: Processor, activity: Sequence[float] | None = None,
                fraction: float = 1.0) -> EnergyCounts:
    """Arithmetic and memory traffic of (a batch fraction of) one task on a processor (no saved activations)."""
    split = task_ops_split(task, activity, fraction)
    scaled = task.scaled(fraction)
    sram = dram = 0
    for g in scaled.gemms:
        s_b, d_b = _gemm_memory(proc, g)
        sram += g.groups * s_b
        dram += g.groups * d_b
    # a measured neuron carries its own ops per element (VectorWork.ops_per_element), others use the unit's table
    vec = sum(v.elements * v.timesteps * (v.ops_per_element or proc.vector.ops_per_element[v.op])
              for v in scaled.vector)
    return EnergyCounts(split.macs, split.acs, vec, sram, dram, 0.0)


def price(counts: EnergyCounts, table: EnergyTable) -> dict[str, float]:
    """Joules per category of some counts under one table (static excluded: it needs a time)."""
    return {"mac": counts.macs * table.mac_pj * PJ, "ac": counts.acs * table.ac_pj * PJ,
            "vector": counts.vector_ops * table.vector_op_pj * PJ, "sram": counts.sram_bytes * table.sram_pj_per_byte * PJ,
            "dram": counts.dram_bytes * table.dram_pj_per_byte * PJ, "link": counts.link_bytes * table.link_pj_per_byte * PJ}


def forward_energy(graph: TaskGraph, processor: Processor, activity: Sequence[float] | None = None) -> dict[str, float]:
    """Joules of one forward pass of the minibatch (the F tasks) on one processor: inference, as per-operation
    energy models of SNNs (SpikingJelly's, Lemaire et al.'s) count it; no saved activations, links or static."""
    act = check_activity(activity, graph)
    total = EnergyCounts()
    for t in graph.tasks:
        if t.kind is TaskKind.F:
            c = task_counts(t, processor, act)
            total = EnergyCounts(*(getattr(total, f) + getattr(c, f) for f in EnergyCounts.__dataclass_fields__))
    return price(total, processor.energy)


def schedule_counts(schedule: Schedule, graph: TaskGraph, cluster: Cluster, sim: Replay,
                    activity: Sequence[float] | None = None) -> list[EnergyCounts]:
    """Per processor, what one steady-state minibatch of the schedule does."""
    act = check_activity(activity, graph)
    macs = defaultdict(float)
    acs = defaultdict(float)
    vec = defaultdict(float)
    sram = defaultdict(float)
    dram = defaultdict(float)
    w_slots: dict[tuple[int, int], int] = defaultdict(int)  # (layer, processor) -> W slots per period
    f_procs: dict[int, set[int]] = defaultdict(set)
    for sl in schedule.slots:
        p = sl.processor
        task = graph.task(sl.task)
        c = task_counts(task, cluster.processors[p], act, sl.fraction)
        macs[p] += c.macs
        acs[p] += c.acs
        vec[p] += c.vector_ops
        sram[p] += c.sram_bytes
        dram[p] += c.dram_bytes + 2 * ceil(task.activation_bytes * sl.fraction)  # saved by F, read by B/W
        if sl.kind is TaskKind.W:
            w_slots[(sl.layer, p)] += 1
        elif sl.kind is TaskKind.F:
            f_procs[sl.layer].add(p)
    for (layer, p), count in w_slots.items():
        held = layer_weight_bytes(graph, cluster, layer)
        wb, opt = held.weight_bytes, held.optimizer_bytes
        dram[p] += 2 * (wb + opt) + 2 * wb * (count - 1)
    if schedule.kind == "periodic":
        for layer, delay in enumerate(schedule.gradient_delays):
            if delay > 0:
                wb = layer_weight_bytes(graph, cluster, layer).weight_bytes
                for p in f_procs.get(layer, ()):
                    dram[p] += 2 * wb
    links = sim.link_bytes_per_processor or (0,) * cluster.size
    return [EnergyCounts(macs[p], acs[p], vec[p], sram[p], dram[p], float(links[p])) for p in range(cluster.size)]


def schedule_energy(schedule: Schedule, graph: TaskGraph, cluster: Cluster, sim: Replay,
                    activity: Sequence[float] | None = None) -> EnergyReport:
    """Joules of one steady-state minibatch of `schedule` as `sim` replayed it (see the module docstring)."""
    counts = schedule_counts(schedule, graph, cluster, sim, activity)
    # the replay's cycles are one clock for the whole cluster: the first processor's, as in its traces
    seconds = sim.simulated_period_cycles / cluster.processors[0].freq_hz
    j = dict.fromkeys(CATEGORIES, 0.0)
    for p, c in enumerate(counts):
        e = cluster.processors[p].energy
        for k, v in price(c, e).items():
            j[k] += v
        j["static"] += e.static_joules(seconds)
    total = EnergyCounts(*(sum(getattr(c, f) for c in counts) for f in EnergyCounts.__dataclass_fields__))
    return EnergyReport(**{f"{k}_joules": v for k, v in j.items()}, period_seconds=seconds, counts=total)
