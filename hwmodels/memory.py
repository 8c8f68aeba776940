"""On-chip SRAM and off-chip DRAM bandwidth; stall cycles when double buffering cannot hide the traffic.

Model (per GEMM, reported apart from the SCALE-Sim compute cycles):
- Three SRAMs as in SCALE-Sim: ifmap holds A (M x K), filter holds B (K x N), ofmap holds C (M x N).
  With double buffering each is split in halves: one feeds the array while the other is filled, so the
  usable working set is half the capacity (the whole capacity without double buffering).
- DRAM traffic follows the fold loop (SCALE-Sim's order: column folds outer, row folds inner). An operand
  reused by every column fold is read once if the whole matrix fits its working half, else re-streamed once
  per column fold; tiles used by a single fold are read once; a partial-sum block that must accumulate over
  K folds (WS, IS) is written once if it fits the ofmap half, else spilled and read back after every K fold.
- Time: the first fold's input tiles must arrive before anything computes (exposed). After that, loads for
  fold i+1 and write-back of fold i-1 overlap fold i, so only traffic beyond the compute time stalls.
  Without double buffering nothing overlaps and all transfer time is stall.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from hwmodels.errors import HardwareConfigError
from hwmodels.systolic import Dataflow, SystolicArray


@dataclass(frozen=True)
class GemmTraffic:
    ifmap_bytes: int  # A read from DRAM, re-streams included
    filter_bytes: int  # B read from DRAM, re-streams included
    ofmap_bytes: int  # C written, plus partial sums spilled and read back
    first_fold_bytes: int  # input tiles the first fold needs before it can start

    @property
    def total_bytes(self) -> int:
        return self.ifmap_bytes + self.filter_bytes + self.ofmap_bytes


@dataclass(frozen=True)
class Memory:
    ifmap_sram_bytes: int = 2 * 1024 * 1024
    filter_sram_bytes: int = 2 * 1024 * 1024
    ofmap_sram_bytes: int = 1 * 1024 * 1024
    dram_bytes_per_cycle: float = 64.0
    dram_bytes: int = 16 * 1024**3
    double_buffered: bool = True

    def __post_init__(self) -> None:
        for name in ("ifmap_sram_bytes", "filter_sram_bytes", "ofmap_sram_bytes", "dram_bytes"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise HardwareConfigError(f"memory {name} must be a positive integer, got {v!r}")
        v = self.dram_bytes_per_cycle
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
            raise HardwareConfigError(f"dram_bytes_per_cycle must be a number > 0, got {v!r}")
        if not isinstance(self.double_buffered, bool):
            raise HardwareConfigError(f"double_buffered must be true or false, got {self.double_buffered!r}")

    @property
    def sram_bytes(self) -> int:
        return self.ifmap_sram_bytes + self.filter_sram_bytes + self.ofmap_sram_bytes

    def working_bytes(self, capacity: int) -> int:
        """Bytes of one SRAM usable by the running fold (half when double buffered)."""
        return capacity // 2 if self.double_buffered else capacity

    def transfer_cycles(self, nbytes: int) -> int:
        return ceil(nbytes / self.dram_bytes_per_cycle) if nbytes > 0 else 0

    def gemm_traffic(self, array: SystolicArray, m: int, k: int, n: int, word_bytes: int) -> GemmTraffic:
        """DRAM bytes of C[MxN] = A[MxK] B[KxN] on `array` (see the module docstring for the rules)."""
        r, c, wb = array.rows, array.cols, word_bytes
        row_folds, col_folds = array.folds(m, k, n)
        a_bytes, b_bytes, c_bytes = m * k * wb, k * n * wb, m * n * wb
        if_half, fil_half, of_half = (self.working_bytes(x) for x in
                                      (self.ifmap_sram_bytes, self.filter_sram_bytes, self.ofmap_sram_bytes))
        if array.dataflow is Dataflow.OS:
            # A row tiles are swept once per column fold; a K x C tile of B serves all row folds in a row.
            a_reads = 1 if a_bytes <= if_half else col_folds
            b_reads = 1 if k * min(c, n) * wb <= fil_half else row_folds
            return GemmTraffic(a_bytes * a_reads, b_bytes * b_reads, c_bytes,
                               (min(r, m) * k + k * min(c, n)) * wb)
        if array.dataflow is Dataflow.WS:
            # B tiles stay for one fold each; A's K-slices are swept once per column fold; the M x C output
            # block accumulates over the K folds.
            a_reads = 1 if a_bytes <= if_half else col_folds
            c_moves = 1 if m * min(c, n) * wb <= of_half else 2 * row_folds - 1
            return GemmTraffic(a_bytes * a_reads, b_bytes, c_bytes * c_moves,
                               (min(r, k) * min(c, n) + m * min(r, k)) * wb)
        # IS: A tiles stay; B's K-slices are swept once per column (M) fold; the N x C block accumulates.
        b_reads = 1 if b_bytes <= fil_half else col_folds
        c_moves = 1 if n * min(c, m) * wb <= of_half else 2 * row_folds - 1
        return GemmTraffic(a_bytes, b_bytes * b_reads, c_bytes * c_moves,
                           (min(r, k) * min(c, m) + n * min(r, k)) * wb)

    def stall_cycles(self, compute_cycles: int, traffic: GemmTraffic) -> int:
        """Cycles the array waits for DRAM on top of `compute_cycles` (never negative)."""
        if not self.double_buffered:
            return self.transfer_cycles(traffic.total_bytes)
        exposed = self.transfer_cycles(traffic.first_fold_bytes)
        hidden = self.transfer_cycles(traffic.total_bytes - traffic.first_fold_bytes)
        return exposed + max(0, hidden - compute_cycles)
