"""Systolic-array cycle model (analytic), matching SCALE-Sim 3.0.0's stall-free compute cycles.

GEMM convention (as SCALE-Sim's GEMM topology): C[M x N] = A[M x K] . B[K x N], K is the reduction.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from math import ceil

from hwmodels.errors import HardwareConfigError


class Dataflow(StrEnum):
    OS = "os"  # output stationary
    WS = "ws"  # weight stationary
    IS = "is"  # input stationary

    @classmethod
    def parse(cls, text: str) -> Dataflow:
        try:
            return cls(str(text).lower())
        except ValueError:
            raise HardwareConfigError(f"unknown dataflow {text!r}; use one of os, ws, is") from None


@dataclass(frozen=True)
class SystolicArray:
    rows: int
    cols: int
    dataflow: Dataflow = Dataflow.OS

    def __post_init__(self) -> None:
        if not (isinstance(self.rows, int) and isinstance(self.cols, int)) or self.rows < 1 or self.cols < 1:
            raise HardwareConfigError(f"array size must be positive integers, got {self.rows}x{self.cols}")
        if not isinstance(self.dataflow, Dataflow):
            object.__setattr__(self, "dataflow", Dataflow.parse(self.dataflow))

    @classmethod
    def parse(cls, text: str, dataflow: str | Dataflow = Dataflow.OS) -> SystolicArray:
        """Parse 'RxC' (e.g. '128x128')."""
        parts = str(text).lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise HardwareConfigError(f"array must look like RxC (e.g. 128x128), got {text!r}")
        return cls(int(parts[0]), int(parts[1]), Dataflow.parse(dataflow) if isinstance(dataflow, str) else dataflow)

    def mapping(self, m: int, k: int, n: int) -> tuple[int, int, int]:
        """(spatial rows, spatial cols, temporal) extents of the GEMM on this array for its dataflow.

        These are SCALE-Sim's Sr, Sc, T: OS maps M on rows, N on columns and streams K;
        WS maps K on rows, N on columns and streams M; IS maps K on rows, M on columns and streams N.
        """
        if self.dataflow is Dataflow.OS:
            return m, n, k
        if self.dataflow is Dataflow.WS:
            return k, n, m
        return k, m, n

    def folds(self, m: int, k: int, n: int) -> tuple[int, int]:
        sr, sc, _ = self.mapping(m, k, n)
        return ceil(sr / self.rows), ceil(sc / self.cols)

    def fill_cycles(self) -> int:
        """Cycles per fold before streaming starts: WS and IS first shift the stationary tile in, one
        array row per cycle; OS keeps partial sums stationary and loads nothing up front."""
        return 0 if self.dataflow is Dataflow.OS else self.rows

    def fold_cycles(self, m: int, k: int, n: int) -> int:
        """Cycles one fold occupies: preload, then the skewed wavefront crosses R rows and C columns while T
        operands stream (R + C + T - 2). Partial folds are charged the full array, as SCALE-Sim pads them."""
        _, _, t = self.mapping(m, k, n)
        return self.fill_cycles() + self.rows + self.cols + t - 2

    def gemm_cycles(self, m: int, k: int, n: int) -> int:
        """Stall-free compute cycles of one GEMM, exactly SCALE-Sim 3.0.0's 'Total Cycles' with no stalls.

        Folds run back to back (each drains before the next starts). SCALE-Sim reports the clock stamp of
        the last output write with the first demand at cycle 0, i.e. one less than the cycles occupied:
        OS: folds * (R + C + T - 2) - 1;  WS and IS: folds * (2R + C + T - 2) - 1.
        """
        _check_gemm(m, k, n)
        row_folds, col_folds = self.folds(m, k, n)
        return row_folds * col_folds * self.fold_cycles(m, k, n) - 1

    def utilization(self, m: int, k: int, n: int) -> float:
        """Fraction of PE-cycles doing useful MACs."""
        return m * k * n / (self.rows * self.cols * self.gemm_cycles(m, k, n))


def _check_gemm(m: int, k: int, n: int) -> None:
    for name, v in (("m", m), ("k", k), ("n", n)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise HardwareConfigError(f"GEMM dimension {name} must be a positive integer, got {v!r}")
