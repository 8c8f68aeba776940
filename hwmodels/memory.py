"""On-chip SRAM and off-chip DRAM bandwidth; stall cycles when double buffering cannot hide traffic."""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from hwmodels.errors import HardwareConfigError


@dataclass(frozen=True)
class Memory:
    ifmap_sram_bytes: int = 2 * 1024 * 1024
    filter_sram_bytes: int = 2 * 1024 * 1024
    ofmap_sram_bytes: int = 1 * 1024 * 1024
    dram_bytes_per_cycle: float = 64.0
    dram_bytes: int = 16 * 1024**3

    def __post_init__(self) -> None:
        for name in ("ifmap_sram_bytes", "filter_sram_bytes", "ofmap_sram_bytes", "dram_bytes"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise HardwareConfigError(f"memory {name} must be a positive integer, got {v!r}")
        if not self.dram_bytes_per_cycle > 0:
            raise HardwareConfigError(f"dram_bytes_per_cycle must be > 0, got {self.dram_bytes_per_cycle!r}")

    @property
    def sram_bytes(self) -> int:
        return self.ifmap_sram_bytes + self.filter_sram_bytes + self.ofmap_sram_bytes

    def stall_cycles(self, compute_cycles: int, dram_traffic_bytes: int) -> int:
        """Cycles the array waits because DRAM traffic takes longer than compute (double buffered)."""
        transfer = ceil(dram_traffic_bytes / self.dram_bytes_per_cycle)
        return max(0, transfer - compute_cycles)
