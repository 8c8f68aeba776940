"""Energy per operation of one processor: the `[energy]` table of the hardware description.

Units are in the field names: picojoules per operation or per byte, milliwatts of static power. Every key defaults
to 0, so a table that sets only `mac_pj` prices only multiply-accumulates (the oracle of the tests). What an
operation is:
- mac_pj            one multiply-accumulate on the systolic array (dense operands)
- ac_pj             one accumulate driven by a binary spike operand (an addition, no multiply)
- vector_op_pj      one vector-unit operation on one element (an op of hwmodels.vector's ops-per-element table)
- sram_pj_per_byte  one byte read from or written to an on-chip buffer by the array
- dram_pj_per_byte  one byte moved between DRAM and the on-chip buffers
- link_pj_per_byte  one byte carried over one link (a transfer over h hops pays h times)
- static_mw         leakage and clocking of one processor, paid for the whole period whether busy or idle
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from hwmodels.errors import HardwareConfigError
from hwmodels.systolic import Dataflow, SystolicArray

PJ = 1e-12  # joules per picojoule


@dataclass(frozen=True)
class EnergyTable:
    mac_pj: float = 0.0
    ac_pj: float = 0.0
    vector_op_pj: float = 0.0
    sram_pj_per_byte: float = 0.0
    dram_pj_per_byte: float = 0.0
    link_pj_per_byte: float = 0.0
    static_mw: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise HardwareConfigError(f"[energy] {f.name} must be a number >= 0, got {v!r}")
            if not v >= 0 or v == float("inf"):  # also refuses NaN
                raise HardwareConfigError(f"[energy] {f.name} must be a number >= 0, got {v!r}")
            object.__setattr__(self, f.name, float(v))

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, d: Any, where: str = "[energy]", base: EnergyTable | None = None) -> EnergyTable:
        """A table from parsed TOML; keys not given come from `base` (the file's global table) or are 0.
        Errors name the offending key in one line."""
        if not isinstance(d, dict):
            raise HardwareConfigError(f"{where} must be a table, got {type(d).__name__}")
        known = cls.keys()
        for key in d:
            if key not in known:
                raise HardwareConfigError(f"{where}: unknown key {key!r}; known: {', '.join(known)}")
        for key, v in d.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0 or v == float("inf"):
                raise HardwareConfigError(f"{where}: {key} must be a number >= 0, got {v!r}")
        merged = {k: getattr(base, k) for k in known} if base is not None else {}
        merged.update(d)
        return cls(**merged)

    @property
    def is_zero(self) -> bool:
        return all(getattr(self, k) == 0 for k in self.keys())

    def static_joules(self, seconds: float) -> float:
        return self.static_mw * 1e-3 * seconds


def gemm_sram_bytes(array: SystolicArray, m: int, k: int, n: int, word_bytes: int) -> int:
    """Bytes the array reads from and writes to its on-chip buffers for C[MxN] = A[MxK] B[KxN], by dataflow
    (the mapping of hwmodels.systolic: OS maps M x N and streams K, WS maps K x N and streams M, IS maps K x M
    and streams N). A mapped-and-streamed operand is re-read once per fold of the other mapped dimension; a
    stationary operand is read once; outputs are written once (OS), or, when they accumulate over the K folds
    (WS, IS), written after every K fold and read back before every fold but the first."""
    return sum(gemm_sram_words(array, m, k, n)) * word_bytes


def gemm_sram_words(array: SystolicArray, m: int, k: int, n: int) -> tuple[int, int, int]:
    """Entries of A, B and C the array reads or writes in its buffers (the rules of gemm_sram_bytes)."""
    row_folds, col_folds = array.folds(m, k, n)
    a, b, c = m * k, k * n, m * n
    if array.dataflow is Dataflow.OS:
        return a * col_folds, b * row_folds, c
    if array.dataflow is Dataflow.WS:
        return a * col_folds, b, c * (2 * row_folds - 1)
    return a, b * col_folds, c * (2 * row_folds - 1)
