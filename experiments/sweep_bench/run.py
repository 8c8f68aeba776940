"""Sweep throughput with 1 vs 2 Dask workers, measured side by side in one run (a ratio, not a timing claim).

    .venv/bin/python experiments/sweep_bench/run.py [--repeats 2]

Each measurement runs the same 12-point grid into a fresh cache, so nothing is reused between them; the runs
alternate 1, 2, 1, 2 ... workers so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from spikepipe.io import write_json  # noqa: E402
from spikepipe.sweep import run_sweep, spec_from_dict  # noqa: E402

GRID = {
    "sweep": {"name": "bench", "kind": "simulate"},
    "grid": {"processors": [2, 4, 8], "schedule": ["gpipe", "1f1b", "pipedream", "data-parallel"]},
    "fixed": {"network": "resnet18", "iterations": 300},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="experiments/results/sweep_bench.json")
    args = ap.parse_args()
    spec = spec_from_dict(GRID)
    n = len(spec.points())
    times: dict[int, list[float]] = {1: [], 2: []}
    for rep in range(args.repeats):
        for workers in (1, 2):
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                out = run_sweep(spec, Path(tmp), workers=workers)
                dt = time.perf_counter() - t0
            assert out.computed_points == n, out
            times[workers].append(dt)
            print(f"repeat {rep}: {workers} worker(s): {n} points in {dt:.1f} s ({n / dt:.2f} points/s)", flush=True)
    med = {w: statistics.median(v) for w, v in times.items()}
    result = {"points": n, "seconds": times, "median_s": med,
              "points_per_s": {w: n / t for w, t in med.items()}, "speedup_2_over_1": med[1] / med[2]}
    write_json(args.out, result)
    print(f"throughput ratio 2 workers / 1 worker: {result['speedup_2_over_1']:.2f}x  -> {args.out}")


if __name__ == "__main__":
    main()
