"""The analytic model equals SCALE-Sim 3.0.0's stall-free compute cycles on every recorded case.

The golden file was produced by SCALE-Sim itself (experiments/scalesim_validation/run_scalesim.py
--write-golden, in the separate .scalesim-venv); this test only reads it, so it is fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwmodels import SystolicArray

GOLDEN = Path(__file__).parent / "golden" / "scalesim_cycles.json"
DATA = json.loads(GOLDEN.read_text())
CASES = DATA["cases"]


def test_golden_file_covers_the_required_grid():
    assert DATA["versions"]["scalesim"] == "3.0.0"
    shapes = {(c["m"], c["k"], c["n"]) for c in CASES}
    arrays = {(c["rows"], c["cols"]) for c in CASES}
    assert len(shapes) >= 20 and len(arrays) >= 3
    assert any(r != c for r, c in arrays), "needs a non-square array"
    assert {c["dataflow"] for c in CASES} == {"os", "ws", "is"}
    assert len(CASES) == len(shapes) * len(arrays) * 3
    # smaller than, equal to and larger than an array, in every dimension
    assert any(max(s) < 8 for s in shapes) and (8, 8, 8) in shapes and any(min(s) > 32 for s in shapes)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['rows']}x{c['cols']}-{c['dataflow']}-"
                                                      f"{c['m']}x{c['k']}x{c['n']}")
def test_analytic_equals_scalesim(case):
    arr = SystolicArray(case["rows"], case["cols"], case["dataflow"])
    assert arr.gemm_cycles(case["m"], case["k"], case["n"]) == case["total_cycles"] - case["stall_cycles"]
