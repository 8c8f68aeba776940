"""The cycle-stepping register model is the oracle: its product equals numpy's and its cycle count equals
the analytic model on a grid of dataflows, array shapes and GEMM shapes (smaller/equal/larger, primes)."""

from __future__ import annotations

import numpy as np
import pytest

from hwmodels import HardwareConfigError, SystolicArray
from hwmodels.stepping import step_gemm, step_gemm_cycles

ARRAYS = [(1, 1), (4, 4), (3, 5), (8, 4), (5, 3), (7, 7)]
# (M, K, N): below, at and above the arrays in each dimension, primes, ones
SHAPES = [(1, 1, 1), (2, 3, 5), (4, 4, 4), (7, 7, 7), (5, 1, 9), (1, 13, 2), (11, 5, 3), (3, 17, 8),
          (13, 11, 7), (16, 9, 12), (8, 8, 8), (19, 2, 23)]


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
@pytest.mark.parametrize("rows,cols", ARRAYS)
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_stepping_equals_analytic_and_numpy(dataflow, rows, cols, m, k, n):
    arr = SystolicArray(rows, cols, dataflow)
    rng = np.random.default_rng(m * 10007 + k * 101 + n)
    a = rng.integers(-9, 10, size=(m, k))
    b = rng.integers(-9, 10, size=(k, n))
    res = step_gemm(arr, a, b)
    np.testing.assert_array_equal(res.product, a @ b)
    assert res.cycles == arr.gemm_cycles(m, k, n)
    row_folds, col_folds = arr.folds(m, k, n)
    assert res.folds == row_folds * col_folds


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_stepping_float_product(dataflow):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((9, 14)), rng.standard_normal((14, 6))
    res = step_gemm(SystolicArray(4, 3, dataflow), a, b)
    np.testing.assert_allclose(res.product, a @ b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_step_gemm_cycles_matches_analytic(dataflow):
    arr = SystolicArray(6, 4, dataflow)
    assert step_gemm_cycles(arr, 10, 7, 9) == arr.gemm_cycles(10, 7, 9)


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_a_fold_that_fits_has_no_folding_and_one_pass(dataflow):
    # hand count on a 2x2 array, 2x2x2 GEMM: OS occupies R+C+T-2 = 4 cycles, WS/IS add R preload = 6,
    # and the reported stamp is the last occupied cycle (occupied - 1).
    res = step_gemm(SystolicArray(2, 2, dataflow), np.eye(2), np.eye(2))
    assert res.cycles == (3 if dataflow == "os" else 5)
    assert res.folds == 1


@pytest.mark.parametrize("a_shape,b_shape", [((2, 3), (4, 2)), ((0, 2), (2, 2)), ((3,), (3, 1))])
def test_bad_operands_are_rejected(a_shape, b_shape):
    with pytest.raises(HardwareConfigError):
        step_gemm(SystolicArray(2, 2), np.ones(a_shape), np.ones(b_shape))


@pytest.mark.parametrize("m,k,n", [(0, 1, 1), (1, -1, 1)])
def test_bad_sizes_are_rejected(m, k, n):
    with pytest.raises(HardwareConfigError):
        step_gemm_cycles(SystolicArray(2, 2), m, k, n)


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_a_misaligned_skew_is_caught(dataflow, monkeypatch):
    # the index registers are a real check: feed one lane a cycle late and the model must refuse
    import hwmodels.stepping as st

    good = st._feed_index
    monkeypatch.setattr(st, "_feed_index", lambda cycle, lanes: good(cycle, lanes) - (np.arange(lanes) == 1))
    with pytest.raises(st.SteppingError):
        step_gemm(SystolicArray(3, 3, dataflow), np.ones((4, 4)), np.ones((4, 4)))
