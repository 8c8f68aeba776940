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

    def gemm_cycles(self, m: int, k: int, n: int) -> int:
        """Stall-free compute cycles of one GEMM (SCALE-Sim 3.0.0 semantics)."""
        _check_gemm(m, k, n)
        sr, sc, t = self.mapping(m, k, n)
        row_folds, col_folds = ceil(sr / self.rows), ceil(sc / self.cols)
        # Each fold: fill the operands' skew across rows and columns, stream T, drain.
        per_fold = 2 * self.rows + self.cols + t - 2
        return row_folds * col_folds * per_fold

    def utilization(self, m: int, k: int, n: int) -> float:
        """Fraction of PE-cycles doing useful MACs."""
        return m * k * n / (self.rows * self.cols * self.gemm_cycles(m, k, n))


def _check_gemm(m: int, k: int, n: int) -> None:
    for name, v in (("m", m), ("k", k), ("n", n)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise HardwareConfigError(f"GEMM dimension {name} must be a positive integer, got {v!r}")
