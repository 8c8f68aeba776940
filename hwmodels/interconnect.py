"""Links between processors: bandwidth in bytes/cycle, latency in cycles, topology."""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from hwmodels.errors import HardwareConfigError

TOPOLOGIES = ("all-to-all", "ring")


@dataclass(frozen=True)
class Interconnect:
    link_bytes_per_cycle: float = 64.0
    link_latency_cycles: int = 100
    topology: str = "all-to-all"

    def __post_init__(self) -> None:
        bw = self.link_bytes_per_cycle
        if not isinstance(bw, (int, float)) or isinstance(bw, bool) or not bw > 0:
            raise HardwareConfigError(f"link_bytes_per_cycle must be > 0, got {self.link_bytes_per_cycle!r}")
        lat = self.link_latency_cycles
        if not isinstance(lat, int) or isinstance(lat, bool) or lat < 0:
            raise HardwareConfigError(f"link_latency_cycles must be an integer >= 0, got {self.link_latency_cycles!r}")
        if self.topology not in TOPOLOGIES:
            raise HardwareConfigError(f"unknown topology {self.topology!r}; use one of {', '.join(TOPOLOGIES)}")

    def route(self, src: int, dst: int, processors: int) -> tuple[tuple[int, int], ...]:
        """Directed links (a, b) a transfer src->dst occupies; () on one processor."""
        if src == dst:
            return ()
        if self.topology == "all-to-all":
            return ((src, dst),)
        # ring: take the shorter direction, ties go clockwise (deterministic)
        fwd = (dst - src) % processors
        step = 1 if fwd <= processors - fwd else -1
        hops, a = [], src
        while a != dst:
            b = (a + step) % processors
            hops.append((a, b))
            a = b
        return tuple(hops)

    def occupancy_cycles(self, nbytes: int) -> int:
        """Cycles one link is busy carrying nbytes (bandwidth only)."""
        return ceil(nbytes / self.link_bytes_per_cycle) if nbytes > 0 else 0

    def transfer_cycles(self, src: int, dst: int, nbytes: int, processors: int) -> int:
        """Time from the producer's end to data available at the consumer (store-and-forward per hop)."""
        hops = len(self.route(src, dst, processors))
        if hops == 0:
            return 0
        return hops * (self.link_latency_cycles + self.occupancy_cycles(nbytes))

    def allreduce_cycles(self, nbytes: int, processors: int) -> int:
        """Ring all-reduce (reduce-scatter + all-gather): 2(P-1) steps of nbytes/P each."""
        if processors <= 1 or nbytes <= 0:
            return 0
        chunk = ceil(nbytes / processors)
        return 2 * (processors - 1) * (self.link_latency_cycles + self.occupancy_cycles(chunk))
