"""Cycle-model validation figure: our analytic model against SCALE-Sim 3.0.0's recorded cycle counts.

    .venv/bin/python experiments/scalesim_validation/plot.py

Reads tests/golden/scalesim_cycles.json (made by run_scalesim.py in the separate SCALE-Sim venv), recomputes every
case with hwmodels' analytic model and with the cycle-stepping model, and draws analytic vs SCALE-Sim.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hwmodels import SystolicArray  # noqa: E402
from hwmodels.stepping import step_gemm_cycles  # noqa: E402
from spikepipe.io import save_figure, write_csv  # noqa: E402


def main() -> None:
    cases = json.loads((ROOT / "tests" / "golden" / "scalesim_cycles.json").read_text())["cases"]
    rows = []
    for c in cases:
        arr = SystolicArray(c["rows"], c["cols"], c["dataflow"])
        analytic = arr.gemm_cycles(c["m"], c["k"], c["n"])
        small = c["m"] * c["k"] * c["n"] <= 64 ** 3
        stepped = step_gemm_cycles(arr, c["m"], c["k"], c["n"]) if small else None
        rows.append({**c, "analytic": analytic, "stepping": stepped, "scalesim": c["total_cycles"]})
    out = ROOT / "experiments" / "results" / "scalesim_validation"
    write_csv(out / "validation.csv", rows)
    exact = sum(r["analytic"] == r["scalesim"] for r in rows)
    stepped_ok = sum(r["stepping"] == r["scalesim"] for r in rows if r["stepping"] is not None)
    n_stepped = sum(r["stepping"] is not None for r in rows)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for flow, marker in (("os", "o"), ("ws", "s"), ("is", "^")):
        pts = [r for r in rows if r["dataflow"] == flow]
        ax.scatter([r["scalesim"] for r in pts], [r["analytic"] for r in pts], marker=marker, s=18, alpha=0.7,
                   label=f"{flow.upper()} ({len(pts)} cases)")
    lo = min(r["scalesim"] for r in rows)
    hi = max(r["scalesim"] for r in rows)
    ax.plot([lo, hi], [lo, hi], "k:", lw=1, label="y = x")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("SCALE-Sim 3.0.0 compute cycles")
    ax.set_ylabel("SpikePipe analytic cycles")
    ax.set_title(f"Cycle model vs SCALE-Sim: {exact}/{len(rows)} exact\n"
                 f"(cycle-stepping model: {stepped_ok}/{n_stepped} exact on the small cases)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    path = save_figure(fig, out / "cycle_model_vs_scalesim.png")
    print(f"{exact}/{len(rows)} analytic == SCALE-Sim; stepping {stepped_ok}/{n_stepped}; figure: {path}")


if __name__ == "__main__":
    main()
