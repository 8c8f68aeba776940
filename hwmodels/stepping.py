"""Cycle-stepping register-level model of the systolic array: the oracle for the analytic model.

Every PE holds registers (operand, partial sum, valid bit, and the index of the operand it carries) that
move one hop per clock; one numpy step updates the whole R x C grid at once. The fold's length is not a
formula here: a fold ends in the cycle its last output leaves the array, detected from the valid bits. Tiles
are zero-padded to the full array, as the controller sequences (and SCALE-Sim charges) a full-size fold.
The index registers double as a check that operands meet where they should: a misaligned skew raises.

Cycle convention (SCALE-Sim's): folds run back to back, the first operand is demanded at cycle 0, and the
reported count is the clock stamp of the last output write, i.e. cycles occupied minus one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwmodels.errors import HardwareConfigError
from hwmodels.systolic import Dataflow, SystolicArray


class SteppingError(HardwareConfigError):
    """The register model went wrong (operands met out of step); a bug, never a user error."""


@dataclass(frozen=True, eq=False)
class SteppedGemm:
    product: np.ndarray
    cycles: int  # SCALE-Sim convention: stamp of the last output write (occupied cycles - 1)
    folds: int


def _pad(tile: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.zeros((rows, cols), dtype=tile.dtype)
    out[: tile.shape[0], : tile.shape[1]] = tile
    return out


def _edge_feed(stream: np.ndarray, cycle: int, lanes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What enters each lane this cycle from a skewed edge: lane i gets element t = cycle - i of its stream.

    stream is (T, lanes); returns (values, valid, t-index)."""
    t = cycle - np.arange(lanes)
    valid = (t >= 0) & (t < stream.shape[0])
    tc = np.clip(t, 0, stream.shape[0] - 1)
    values = np.where(valid, stream[tc, np.arange(lanes)], 0)
    return values, valid, t


def _os_fold(a_tile: np.ndarray, b_tile: np.ndarray) -> tuple[np.ndarray, int]:
    """Output stationary: A (R x T) enters from the left, B (T x C) from the top; sums stay in the PEs.

    Returns the R x C tile and the cycles the fold occupies."""
    rows, t_len = a_tile.shape
    cols = b_tile.shape[1]
    dt = np.result_type(a_tile, b_tile)
    a_reg, b_reg, acc = (np.zeros((rows, cols), dtype=dt) for _ in range(3))
    a_val, b_val = np.zeros((rows, cols), bool), np.zeros((rows, cols), bool)
    a_idx, b_idx = np.full((rows, cols), -1), np.full((rows, cols), -1)
    macs = np.zeros((rows, cols), dtype=np.int64)
    out = np.zeros((rows, cols), dtype=dt)
    written = np.zeros((rows, cols), bool)
    a_stream, b_stream = a_tile.T, b_tile  # both (T, lanes)
    cycle = 0
    while True:
        for reg in (a_reg, a_val, a_idx):
            reg[:, 1:] = reg[:, :-1]
        for reg in (b_reg, b_val, b_idx):
            reg[1:, :] = reg[:-1, :]
        a_reg[:, 0], a_val[:, 0], a_idx[:, 0] = _edge_feed(a_stream, cycle, rows)
        b_reg[0, :], b_val[0, :], b_idx[0, :] = _edge_feed(b_stream, cycle, cols)
        fire = a_val & b_val
        if np.any(a_val != b_val) or np.any(a_idx[fire] != b_idx[fire]):
            raise SteppingError(f"OS operands out of step at cycle {cycle}")
        acc += np.where(fire, a_reg * b_reg, 0)
        macs += fire
        done = (macs == t_len) & ~written
        out[done] = acc[done]  # the result leaves the PE in the cycle of its last MAC
        written |= done
        if written.all():
            return out, cycle + 1
        cycle += 1


def _ws_fold(stationary: np.ndarray, stream: np.ndarray) -> tuple[np.ndarray, int]:
    """Weight-stationary machine: the R x C stationary tile shifts in from the top (R cycles), then the
    streamed operand (T x R) enters skewed from the left, partial sums flow down, and row t of the
    (T x C) result leaves the bottom of column j at cycle R + t + (R - 1) + j.

    Returns the T x C result and the cycles the fold occupies."""
    rows, cols = stationary.shape
    t_len = stream.shape[0]
    dt = np.result_type(stationary, stream)
    w_reg = np.zeros((rows, cols), dtype=dt)
    w_loaded = np.zeros((rows, cols), bool)
    cycle = 0
    while not w_loaded.all():
        # The bottom row enters first so that after R shifts row i of the tile sits in PE row i.
        w_reg[1:, :], w_loaded[1:, :] = w_reg[:-1, :], w_loaded[:-1, :]
        w_reg[0, :], w_loaded[0, :] = stationary[rows - 1 - cycle, :], True
        cycle += 1
    a_reg, psum = np.zeros((rows, cols), dtype=dt), np.zeros((rows, cols), dtype=dt)
    a_val, p_val = np.zeros((rows, cols), bool), np.zeros((rows, cols), bool)
    a_idx, p_idx = np.full((rows, cols), -1), np.full((rows, cols), -1)
    out = np.zeros((t_len, cols), dtype=dt)
    count = np.zeros(cols, dtype=np.int64)
    start = cycle
    while True:
        for reg in (a_reg, a_val, a_idx):
            reg[:, 1:] = reg[:, :-1]
        a_reg[:, 0], a_val[:, 0], a_idx[:, 0] = _edge_feed(stream, cycle - start, rows)
        # Partial sums move one PE down per cycle; the top row starts from zero.
        inflow, in_val, in_idx = np.zeros_like(psum), np.ones((rows, cols), bool), a_idx.copy()
        inflow[1:], in_val[1:], in_idx[1:] = psum[:-1], p_val[:-1], p_idx[:-1]
        in_val[0] = a_val[0]
        if np.any(in_val != a_val) or np.any(in_idx[a_val] != a_idx[a_val]):
            raise SteppingError(f"WS partial sums and operands out of step at cycle {cycle}")
        psum = inflow + np.where(a_val, a_reg * w_reg, 0)
        p_val, p_idx = a_val.copy(), a_idx.copy()
        leaving = p_val[rows - 1]
        out[p_idx[rows - 1, leaving], np.flatnonzero(leaving)] = psum[rows - 1, leaving]
        count += leaving
        if (count == t_len).all():
            return out, cycle + 1
        cycle += 1


def _check_operands(a: np.ndarray, b: np.ndarray) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0] or 0 in a.shape or 0 in b.shape:
        raise HardwareConfigError(f"step_gemm needs A (M x K) and B (K x N) with K equal and sizes > 0, "
                                  f"got {a.shape} and {b.shape}")


def step_gemm(array: SystolicArray, a: np.ndarray, b: np.ndarray) -> SteppedGemm:
    """Run C = A @ B through the array cycle by cycle, fold by fold (folds back to back, as SCALE-Sim)."""
    a, b = np.asarray(a), np.asarray(b)
    _check_operands(a, b)
    m, k = a.shape
    n = b.shape[1]
    r, c = array.rows, array.cols
    product = np.zeros((m, n), dtype=np.result_type(a, b))
    occupied = 0
    folds = 0
    if array.dataflow is Dataflow.OS:
        # M on rows, N on columns, K streamed; SCALE-Sim's loop order: column folds outer.
        for j0 in range(0, n, c):
            for i0 in range(0, m, r):
                a_t = _pad(a[i0:i0 + r, :], r, k)
                b_t = _pad(b[:, j0:j0 + c], k, c)
                tile, cyc = _os_fold(a_t, b_t)
                product[i0:i0 + r, j0:j0 + c] = tile[: min(r, m - i0), : min(c, n - j0)]
                occupied += cyc
                folds += 1
    elif array.dataflow is Dataflow.WS:
        # K on rows, N on columns (weights B stay), M streamed; K folds are partial sums added at the output.
        for j0 in range(0, n, c):
            for k0 in range(0, k, r):
                w_t = _pad(b[k0:k0 + r, j0:j0 + c], r, c)
                s_t = _pad(a[:, k0:k0 + r], m, r)
                tile, cyc = _ws_fold(w_t, s_t)
                product[:, j0:j0 + c] += tile[:, : min(c, n - j0)]
                occupied += cyc
                folds += 1
    else:
        # IS: K on rows, M on columns (inputs A^T stay), N streamed; the array emits C^T.
        for i0 in range(0, m, c):
            for k0 in range(0, k, r):
                x_t = _pad(a[i0:i0 + c, k0:k0 + r].T, r, c)
                s_t = _pad(b[k0:k0 + r, :].T, n, r)
                tile, cyc = _ws_fold(x_t, s_t)
                product[i0:i0 + c, :] += tile[:, : min(c, m - i0)].T
                occupied += cyc
                folds += 1
    return SteppedGemm(product=product, cycles=occupied - 1, folds=folds)


def step_gemm_cycles(array: SystolicArray, m: int, k: int, n: int, seed: int = 0) -> int:
    """Cycles of an M x K x N GEMM by stepping it with random small-integer operands."""
    for name, v in (("m", m), ("k", k), ("n", n)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise HardwareConfigError(f"GEMM dimension {name} must be a positive integer, got {v!r}")
    rng = np.random.default_rng(seed)
    a = rng.integers(-8, 8, size=(m, k))
    b = rng.integers(-8, 8, size=(k, n))
    return step_gemm(array, a, b).cycles
