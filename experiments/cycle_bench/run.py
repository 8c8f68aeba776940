"""Speed of the cycle models vs SCALE-Sim 3.0.0, side by side on the same layers in one run.

    .venv/bin/python experiments/cycle_bench/run.py [--array 32x32] [--dataflows os,ws,is] [--repeat 2000]

For each layer (an SNN-CNN's GEMMs over B*T, lowered convolutions) and dataflow: wall time per layer of the
analytic model (mean of --repeat calls), of the cycle-stepping model (one run, prepared operands) and of
SCALE-Sim (one run in its own venv via experiments/scalesim_validation/scalesim_worker.py, config parsing
included, as a user pays it). Also simulated cycles per wall second of stepping and SCALE-Sim, and a check
that all three cycle counts agree. Writes results/cycle_bench/bench.json and .csv (git-ignored).
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from hwmodels import SystolicArray
from hwmodels.stepping import step_gemm
from spikepipe.io import write_csv, write_json

ROOT = Path(__file__).resolve().parents[2]
VALIDATION = ROOT / "experiments" / "scalesim_validation" / "run_scalesim.py"

# name: (M, K, N). A small spiking CNN on 28x28 input, batch 2, T = 4 (M = B*T*E*F), plus one ResNet-style
# 3x3 conv at 14x14 and a square GEMM.
LAYERS = {
    "conv1 3x3 1->16 @28x28": (2 * 4 * 28 * 28, 9, 16),
    "conv2 3x3 16->32 @14x14": (2 * 4 * 14 * 14, 144, 32),
    "conv3x3 64->64 @7x7": (2 * 4 * 7 * 7, 576, 64),
    "fc1 1568->128": (2 * 4, 1568, 128),
    "fc2 128->10": (2 * 4, 128, 10),
    "gemm 256^3": (256, 256, 256),
}


def _load_validation():
    spec = importlib.util.spec_from_file_location("run_scalesim", VALIDATION)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--array", default="32x32")
    ap.add_argument("--dataflows", default="os,ws,is")
    ap.add_argument("--repeat", type=int, default=2000, help="analytic calls averaged per layer")
    ap.add_argument("--scalesim-python", type=Path, default=ROOT / ".scalesim-venv" / "bin" / "python")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "cycle_bench")
    args = ap.parse_args()
    console = Console()
    if not args.scalesim_python.exists():
        console.print(f"error: no SCALE-Sim python at {args.scalesim_python}; see experiments/scalesim_validation")
        return 2
    val = _load_validation()
    shapes = tuple(LAYERS.values())
    names = {v: k for k, v in LAYERS.items()}
    rng = np.random.default_rng(0)
    rows = []
    dataflows = args.dataflows.split(",")
    with Progress(console=console) as progress:
        task = progress.add_task("layers", total=len(shapes) * len(dataflows))
        for df in dataflows:
            arr = SystolicArray.parse(args.array, df)
            for rec in val.scalesim_layers(args.scalesim_python, arr.rows, arr.cols, df, shapes):
                m, k, n = rec["m"], rec["k"], rec["n"]
                t0 = time.perf_counter()
                for _ in range(args.repeat):
                    analytic = arr.gemm_cycles(m, k, n)
                analytic_s = (time.perf_counter() - t0) / args.repeat
                a = rng.integers(-8, 8, size=(m, k))
                b = rng.integers(-8, 8, size=(k, n))
                t0 = time.perf_counter()
                stepped = step_gemm(arr, a, b)
                stepping_s = time.perf_counter() - t0
                scalesim_cycles = rec["total_cycles"] - rec["stall_cycles"]
                rows.append({
                    "layer": names[(m, k, n)], "m": m, "k": k, "n": n, "array": args.array, "dataflow": df,
                    "cycles_analytic": analytic, "cycles_stepping": stepped.cycles, "cycles_scalesim": scalesim_cycles,
                    "agree": analytic == stepped.cycles == scalesim_cycles,
                    "analytic_s": analytic_s, "stepping_s": stepping_s, "scalesim_s": rec["wall_s"],
                    "analytic_speedup_vs_scalesim": rec["wall_s"] / analytic_s,
                    "stepping_cycles_per_s": stepped.cycles / stepping_s,
                    "scalesim_cycles_per_s": scalesim_cycles / rec["wall_s"],
                    "stepping_speedup_vs_scalesim": rec["wall_s"] / stepping_s,
                })
                progress.advance(task)
    summary = {
        "layers": len(rows),
        "all_cycle_counts_agree": all(r["agree"] for r in rows),
        "analytic_speedup_min": min(r["analytic_speedup_vs_scalesim"] for r in rows),
        "analytic_speedup_geomean": float(np.exp(np.mean([np.log(r["analytic_speedup_vs_scalesim"]) for r in rows]))),
        "stepping_speedup_min": min(r["stepping_speedup_vs_scalesim"] for r in rows),
        "stepping_speedup_geomean": float(np.exp(np.mean([np.log(r["stepping_speedup_vs_scalesim"]) for r in rows]))),
        "scalesim_total_s": sum(r["scalesim_s"] for r in rows),
        "stepping_total_s": sum(r["stepping_s"] for r in rows),
        "machine": f"{platform.machine()} {platform.python_version()}",
        "versions": val.scalesim_version(args.scalesim_python),
        "command": " ".join(["experiments/cycle_bench/run.py", *sys.argv[1:]]),
    }
    write_json(args.out / "bench.json", {"summary": summary, "rows": rows})
    write_csv(args.out / "bench.csv", rows)
    table = Table(title=f"cycle models vs SCALE-Sim 3.0.0 on {args.array}")
    for col in ("layer", "df", "cycles", "agree", "analytic µs", "stepping s", "SCALE-Sim s", "analytic ×",
                "stepping ×", "step Mcyc/s", "SCALE-Sim Mcyc/s"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for r in rows:
        table.add_row(r["layer"], r["dataflow"], str(r["cycles_analytic"]), "yes" if r["agree"] else "NO",
                      f"{r['analytic_s'] * 1e6:.2f}", f"{r['stepping_s']:.3f}", f"{r['scalesim_s']:.2f}",
                      f"{r['analytic_speedup_vs_scalesim']:,.0f}", f"{r['stepping_speedup_vs_scalesim']:.1f}",
                      f"{r['stepping_cycles_per_s'] / 1e6:.3f}", f"{r['scalesim_cycles_per_s'] / 1e6:.4f}")
    console.print(table)
    console.print({k: v for k, v in summary.items() if k != "versions"})
    return 0 if summary["all_cycle_counts_agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
