"""A processor (systolic array + vector unit + memory) and a cluster of them joined by an interconnect."""

from __future__ import annotations

from dataclasses import dataclass, field

from hwmodels.energy import EnergyTable
from hwmodels.errors import HardwareConfigError
from hwmodels.interconnect import Interconnect
from hwmodels.memory import Memory
from hwmodels.systolic import SystolicArray
from hwmodels.vector import VectorUnit

SPIKE_FORMATS = ("dense", "bitmap")


@dataclass(frozen=True)
class GemmCost:
    compute_cycles: int
    stall_cycles: int
    dram_bytes: int

    @property
    def total_cycles(self) -> int:
        return self.compute_cycles + self.stall_cycles


@dataclass(frozen=True)
class Processor:
    name: str = "pe"
    array: SystolicArray = field(default_factory=lambda: SystolicArray(128, 128))
    vector: VectorUnit = field(default_factory=VectorUnit)
    memory: Memory = field(default_factory=Memory)
    freq_hz: float = 1e9
    word_bytes: int = 2  # operand precision on the array (bf16/fp16 by default)
    energy: EnergyTable = field(default_factory=EnergyTable)  # per-operation energies (all 0: not priced)
    # how spike operands sit in the buffers and DRAM: "dense" as words like every operand, "bitmap" one bit per
    # entry (what the energy counts move; cycles and DRAM stalls stay those of the dense words)
    spike_format: str = "dense"

    def __post_init__(self) -> None:
        if not self.freq_hz > 0:
            raise HardwareConfigError(f"freq_hz must be > 0, got {self.freq_hz!r}")
        if self.word_bytes not in (1, 2, 4, 8):
            raise HardwareConfigError(f"word_bytes must be 1, 2, 4 or 8, got {self.word_bytes!r}")
        if self.spike_format not in SPIKE_FORMATS:
            raise HardwareConfigError(f"spike_format must be one of {', '.join(SPIKE_FORMATS)}, got {self.spike_format!r}")

    def spike_bytes_per_entry(self) -> float:
        """Bytes one entry of a binary spike operand takes in the buffers and DRAM."""
        return 1 / 8 if self.spike_format == "bitmap" else float(self.word_bytes)

    def gemm_cost(self, m: int, k: int, n: int) -> GemmCost:
        """Compute cycles (SCALE-Sim stall-free) plus, separately, stalls when DRAM traffic cannot be hidden."""
        compute = self.array.gemm_cycles(m, k, n)
        traffic = self.memory.gemm_traffic(self.array, m, k, n, self.word_bytes)
        return GemmCost(compute, self.memory.stall_cycles(compute, traffic), traffic.total_bytes)

    def gemm_cycles(self, m: int, k: int, n: int) -> int:
        return self.gemm_cost(m, k, n).total_cycles

    def seconds(self, cycles: int) -> float:
        return cycles / self.freq_hz


@dataclass(frozen=True)
class Cluster:
    processors: tuple[Processor, ...]
    interconnect: Interconnect = field(default_factory=Interconnect)

    def __post_init__(self) -> None:
        if len(self.processors) < 1:
            raise HardwareConfigError("a cluster needs at least one processor")
        object.__setattr__(self, "processors", tuple(self.processors))
        if len(self.processors) > 1:  # one processor has no links; a file's grid may be for the resized cluster
            self.interconnect.check_size(len(self.processors))

    @classmethod
    def homogeneous(cls, count: int, processor: Processor | None = None,
                    interconnect: Interconnect | None = None) -> Cluster:
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise HardwareConfigError(f"processor count must be a positive integer, got {count!r}")
        proc = processor or Processor()
        return cls(tuple(proc for _ in range(count)), interconnect or Interconnect())

    @property
    def size(self) -> int:
        return len(self.processors)

    @property
    def homogeneous_(self) -> bool:
        return len(set(self.processors)) == 1

    def with_size(self, count: int) -> Cluster:
        """The same kind of cluster with `count` processors (cycling through the given ones)."""
        if not isinstance(count, int) or count < 1:
            raise HardwareConfigError(f"processor count must be a positive integer, got {count!r}")
        procs = tuple(self.processors[i % len(self.processors)] for i in range(count))
        return Cluster(procs, self.interconnect)

    def route(self, src: int, dst: int) -> tuple[tuple[int, int], ...]:
        return self.interconnect.route(src, dst, self.size)

    def transfer_cycles(self, src: int, dst: int, nbytes: int) -> int:
        return self.interconnect.transfer_cycles(src, dst, nbytes, self.size)

    def allreduce_cycles(self, nbytes: int) -> int:
        return self.interconnect.allreduce_cycles(nbytes, self.size)

    def links(self) -> tuple[tuple[int, int], ...]:
        return self.interconnect.links(self.size)
