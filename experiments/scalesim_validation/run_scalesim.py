"""Cross-check the analytic systolic model against SCALE-Sim 3.0.0 run in its own venv.

    python3 -m venv .scalesim-venv && .scalesim-venv/bin/pip install scalesim==3.0.0 'numpy<2.4'
    .venv/bin/python experiments/scalesim_validation/run_scalesim.py                  # compare, write results/
    .venv/bin/python experiments/scalesim_validation/run_scalesim.py --write-golden   # also regenerate
                                                                                        # tests/golden/scalesim_cycles.json

SCALE-Sim is driven by scalesim_worker.py under the SCALE-Sim venv's python (one subprocess per array and
dataflow, one SCALE-Sim run per layer, in a temporary directory). This script itself runs in the project venv.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from hwmodels import SystolicArray
from spikepipe.io import write_csv, write_json

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORKER = HERE / "scalesim_worker.py"
GOLDEN = ROOT / "tests" / "golden" / "scalesim_cycles.json"
DEFAULT_PYTHON = ROOT / ".scalesim-venv" / "bin" / "python"
SRAM_KB = 1024

ARRAYS = ((8, 8), (16, 32), (32, 32))
DATAFLOWS = ("os", "ws", "is")
# (M, K, N): smaller than, equal to and larger than each array, primes, degenerate 1s, skinny and wide.
SHAPES = (
    (1, 1, 1), (1, 7, 1), (3, 5, 2), (7, 7, 7), (8, 8, 8), (13, 17, 11), (16, 16, 16), (16, 32, 16),
    (31, 29, 37), (32, 32, 32), (33, 31, 29), (5, 64, 3), (64, 5, 3), (3, 5, 64), (41, 43, 47),
    (64, 64, 64), (100, 20, 7), (7, 100, 20), (20, 7, 100), (97, 89, 83), (128, 9, 40), (2, 3, 130),
    (150, 70, 90), (256, 27, 64), (127, 128, 129),
)


def scalesim_layers(python: Path, rows: int, cols: int, dataflow: str,
                    shapes: tuple[tuple[int, int, int], ...]) -> Iterator[dict]:
    """Yield SCALE-Sim's report row (and wall time) of each GEMM as the worker finishes it."""
    job = json.dumps({"rows": rows, "cols": cols, "dataflow": dataflow, "shapes": shapes, "sram_kb": SRAM_KB})
    with subprocess.Popen([str(python), str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(job)
        proc.stdin.close()
        yield from (json.loads(line) for line in proc.stdout)
    if proc.returncode != 0:
        raise RuntimeError(f"SCALE-Sim worker failed for {rows}x{cols} {dataflow} (exit {proc.returncode})")


def scalesim_version(python: Path) -> dict[str, str]:
    code = ("import json, importlib.metadata as m; "
            "print(json.dumps({p: m.version(p) for p in ('scalesim', 'numpy')}))")
    return json.loads(subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True).stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scalesim-python", type=Path, default=DEFAULT_PYTHON)
    ap.add_argument("--write-golden", action="store_true", help=f"regenerate {GOLDEN.relative_to(ROOT)}")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "scalesim_validation")
    args = ap.parse_args()
    console = Console()
    if not args.scalesim_python.exists():
        console.print(f"error: no SCALE-Sim python at {args.scalesim_python}; create the venv (see docstring)")
        return 2
    versions = scalesim_version(args.scalesim_python)
    sys.path.insert(0, str(HERE))
    from scalesim_worker import config_text  # stdlib-only helper shared with the worker

    cases, rows_csv = [], []
    total = len(ARRAYS) * len(DATAFLOWS) * len(SHAPES)
    with Progress(console=console) as progress:
        task = progress.add_task("SCALE-Sim", total=total)
        for r, c in ARRAYS:
            for df in DATAFLOWS:
                arr = SystolicArray(r, c, df)
                for rec in scalesim_layers(args.scalesim_python, r, c, df, SHAPES):
                    analytic = arr.gemm_cycles(rec["m"], rec["k"], rec["n"])
                    case = {"rows": r, "cols": c, "dataflow": df, "m": rec["m"], "k": rec["k"], "n": rec["n"],
                            "total_cycles": rec["total_cycles"], "stall_cycles": rec["stall_cycles"]}
                    cases.append(case)
                    rows_csv.append({**case, "analytic_cycles": analytic, "scalesim_wall_s": rec["wall_s"],
                                     "match": analytic == rec["total_cycles"] - rec["stall_cycles"]})
                    progress.advance(task)
    mismatches = [x for x in rows_csv if not x["match"]]
    golden = {
        "about": "SCALE-Sim stall-free compute cycles ('Total Cycles' minus 'Stall Cycles' of COMPUTE_REPORT.csv) "
                 "for GEMM C[MxN] = A[MxK] B[KxN]; topology rows were 'name, M, N, K,'. Regenerate with "
                 "experiments/scalesim_validation/run_scalesim.py --write-golden.",
        "versions": versions,
        "config_template": config_text(0, 0, "DATAFLOW", SRAM_KB).replace("ArrayHeight:    0",
                                                                       "ArrayHeight:    ROWS")
                                                             .replace("ArrayWidth:     0", "ArrayWidth:     COLS"),
        "cases": cases,
    }
    write_json(args.out / "scalesim_vs_analytic.json", {"versions": versions, "rows": rows_csv})
    write_csv(args.out / "scalesim_vs_analytic.csv", rows_csv)
    if args.write_golden:
        write_json(GOLDEN, golden)
        console.print(f"wrote {GOLDEN.relative_to(ROOT)} ({len(cases)} cases)")
    console.print(f"{len(rows_csv) - len(mismatches)}/{len(rows_csv)} cases match the analytic model exactly; "
                  f"SCALE-Sim wall time {sum(x['scalesim_wall_s'] for x in rows_csv):.1f} s")
    for x in mismatches[:20]:
        console.print(f"mismatch: {x}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
