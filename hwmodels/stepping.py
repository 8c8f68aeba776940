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


def _skewed(stream: np.ndarray) -> np.ndarray:
    """Feed schedule of a skewed edge for a batch of folds: stream is (F, T, lanes); result (F, lanes,
    T + lanes - 1) holds at [f, i, c] the element lane i takes in cycle c, i.e. stream[f, c - i, i] (0 outside)."""
    f, t_len, lanes = stream.shape
    out = np.zeros((f, lanes, t_len + lanes - 1), dtype=stream.dtype)
    lane = np.arange(lanes)
    t = np.arange(t_len)
    out[:, lane[:, None], lane[:, None] + t[None, :]] = stream.transpose(0, 2, 1)
    return out


def _feed_index(cycle: int, lanes: int) -> np.ndarray:
    # operand index entering each lane; -1 (not yet started) is the register's reset value too, so index
    # registers of operands that must meet stay equal everywhere when (and only when) the skew is right
    return np.maximum(cycle - np.arange(lanes), -1)


def _os_folds(a_tiles: np.ndarray, b_tiles: np.ndarray) -> tuple[np.ndarray, int]:
    """Output stationary, a batch of F independent folds stepped together: A tiles (F, R, T) enter from
    the left, B tiles (F, T, C) from the top, sums stay in the PEs. Returns (F, R, C) and cycles per fold."""
    f, rows, t_len = a_tiles.shape
    cols = b_tiles.shape[2]
    dt = np.result_type(a_tiles, b_tiles)
    a_feed, b_feed = _skewed(a_tiles.transpose(0, 2, 1)), _skewed(b_tiles)
    a_reg, b_reg, acc, prod = (np.zeros((f, rows, cols), dtype=dt) for _ in range(4))
    a_idx, b_idx = np.full((rows, cols), -1), np.full((rows, cols), -1)  # same timing in every fold
    written = np.zeros((rows, cols), bool)
    cycle = 0
    while True:
        a_reg[:, :, 1:] = a_reg[:, :, :-1]
        b_reg[:, 1:, :] = b_reg[:, :-1, :]
        a_idx[:, 1:] = a_idx[:, :-1]
        b_idx[1:, :] = b_idx[:-1, :]
        a_reg[:, :, 0] = a_feed[:, :, cycle] if cycle < a_feed.shape[2] else 0
        b_reg[:, 0, :] = b_feed[:, :, cycle] if cycle < b_feed.shape[2] else 0
        a_idx[:, 0], b_idx[0, :] = _feed_index(cycle, rows), _feed_index(cycle, cols)
        if not np.array_equal(a_idx, b_idx):
            raise SteppingError(f"OS operands out of step at cycle {cycle}")
        np.multiply(a_reg, b_reg, out=prod)
        acc += prod
        written |= a_idx == t_len - 1  # a PE's result is final (and leaves) in the cycle of its last MAC
        if written.all():
            return acc, cycle + 1
        cycle += 1


def _ws_folds(stationary: np.ndarray, stream: np.ndarray) -> tuple[np.ndarray, int]:
    """Weight-stationary machine on a batch of F independent folds: the (F, R, C) stationary tiles shift in
    from the top (R cycles), then the streamed operand (F, T, R) enters skewed from the left, partial sums
    flow down and row t of the (T x C) result leaves the bottom of column j at cycle R + t + (R - 1) + j.
    Returns (F, T, C) and cycles per fold."""
    f, rows, cols = stationary.shape
    t_len = stream.shape[1]
    dt = np.result_type(stationary, stream)
    w_reg = np.zeros((f, rows, cols), dtype=dt)
    w_loaded = np.zeros(rows, bool)
    cycle = 0
    while not w_loaded.all():
        # The bottom row enters first so that after R shifts row i of the tile sits in PE row i.
        w_reg[:, 1:, :] = w_reg[:, :-1, :]
        w_loaded[1:] = w_loaded[:-1]
        w_reg[:, 0, :], w_loaded[0] = stationary[:, rows - 1 - cycle, :], True
        cycle += 1
    a_feed = _skewed(stream)
    a_reg, psum, prod = (np.zeros((f, rows, cols), dtype=dt) for _ in range(3))
    a_idx, p_idx = np.full((rows, cols), -1), np.full((rows, cols), -1)
    out = np.zeros((f, t_len, cols), dtype=dt)
    emitted = np.zeros(cols, bool)
    col = np.arange(cols)
    start = cycle
    while True:
        s = cycle - start
        a_reg[:, :, 1:] = a_reg[:, :, :-1]
        a_idx[:, 1:] = a_idx[:, :-1]
        a_reg[:, :, 0] = a_feed[:, :, s] if s < a_feed.shape[2] else 0
        a_idx[:, 0] = _feed_index(s, rows)
        # Partial sums move one PE down per cycle; the top row starts from zero.
        psum[:, 1:, :] = psum[:, :-1, :]
        psum[:, 0, :] = 0
        p_idx[1:, :] = p_idx[:-1, :]
        p_idx[0, :] = a_idx[0, :]
        if not np.array_equal(p_idx, a_idx):
            raise SteppingError(f"WS partial sums and operands out of step at cycle {cycle}")
        np.multiply(a_reg, w_reg, out=prod)
        psum += prod
        t_out = p_idx[rows - 1]
        leaving = (t_out >= 0) & (t_out < t_len)
        if leaving.any():
            out[:, t_out[leaving], col[leaving]] = psum[:, rows - 1, leaving]
        emitted |= t_out == t_len - 1
        if emitted.all():
            return out, cycle + 1
        cycle += 1


def _pad_to(x: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.zeros((rows, cols), dtype=x.dtype)
    out[: x.shape[0], : x.shape[1]] = x
    return out


def _check_operands(a: np.ndarray, b: np.ndarray) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0] or 0 in a.shape or 0 in b.shape:
        raise HardwareConfigError(f"step_gemm needs A (M x K) and B (K x N) with K equal and sizes > 0, "
                                  f"got {a.shape} and {b.shape}")


def _stationary_folds(stat: np.ndarray, streamed: np.ndarray, r: int, c: int) -> tuple[np.ndarray, int, int]:
    """Shared WS/IS folding: stat (S_r x S_c) is tiled R x C and stays; streamed (T x S_r) is cut into the
    matching K slices. Fold f = (col fold, row fold) in SCALE-Sim's order; K folds are partial sums added at
    the output. Returns the (T x S_c) result, cycles per fold and the number of folds."""
    sr, sc = stat.shape
    rf, cf = -(-sr // r), -(-sc // c)
    stat_p = _pad_to(stat, rf * r, cf * c).reshape(rf, r, cf, c).transpose(2, 0, 1, 3).reshape(cf * rf, r, c)
    t_len = streamed.shape[0]
    str_p = _pad_to(streamed, t_len, rf * r).reshape(t_len, rf, r).transpose(1, 0, 2)  # (rf, T, R)
    out, fold_cycles = _ws_folds(stat_p, str_p[np.tile(np.arange(rf), cf)])
    result = out.reshape(cf, rf, t_len, c).sum(axis=1).transpose(1, 0, 2).reshape(t_len, cf * c)[:, :sc]
    return result, fold_cycles, rf * cf


def step_gemm(array: SystolicArray, a: np.ndarray, b: np.ndarray) -> SteppedGemm:
    """Run C = A @ B through the array cycle by cycle, fold by fold.

    Folds share no state (each drains before the next starts, as in SCALE-Sim), so they are stepped together
    along a batch axis and then laid end to end on the clock; each fold's length comes from its valid/index
    registers, not from a formula."""
    a, b = np.asarray(a), np.asarray(b)
    _check_operands(a, b)
    m, k = a.shape
    n = b.shape[1]
    r, c = array.rows, array.cols
    if array.dataflow is Dataflow.OS:
        # M on rows, N on columns, K streamed; fold f = (col fold, row fold), column folds outer.
        rf, cf = -(-m // r), -(-n // c)
        a_t = _pad_to(a, rf * r, k).reshape(rf, r, k)
        b_t = _pad_to(b, k, cf * c).reshape(k, cf, c).transpose(1, 0, 2)
        out, fold_cycles = _os_folds(a_t[np.tile(np.arange(rf), cf)], b_t[np.repeat(np.arange(cf), rf)])
        product = out.reshape(cf, rf, r, c).transpose(1, 2, 0, 3).reshape(rf * r, cf * c)[:m, :n]
        folds = rf * cf
    elif array.dataflow is Dataflow.WS:
        # K on rows, N on columns (weights B stay), M streamed.
        product, fold_cycles, folds = _stationary_folds(b, a, r, c)
    else:
        # IS: K on rows, M on columns (inputs A^T stay), N streamed; the array emits C^T.
        ct, fold_cycles, folds = _stationary_folds(a.T, b.T, r, c)
        product = ct.T
    return SteppedGemm(product=np.ascontiguousarray(product), cycles=folds * fold_cycles - 1, folds=folds)


def step_gemm_cycles(array: SystolicArray, m: int, k: int, n: int, seed: int = 0) -> int:
    """Cycles of an M x K x N GEMM by stepping it with random small-integer operands."""
    for name, v in (("m", m), ("k", k), ("n", n)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise HardwareConfigError(f"GEMM dimension {name} must be a positive integer, got {v!r}")
    rng = np.random.default_rng(seed)
    a = rng.integers(-8, 8, size=(m, k))
    b = rng.integers(-8, 8, size=(k, n))
    return step_gemm(array, a, b).cycles
