"""Simulator speed: simulated events per second and wall time of a long replay (default: 1000 iterations of
resnet18 at P=16 with the spikepipe schedule, plus one flush baseline for comparison).

    .venv/bin/python experiments/sim_bench/run.py [--network resnet18] [--processors 16] [--iterations 1000]

Writes results/sim_bench/bench.json and .csv (git-ignored) and prints a table.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hwmodels.config import load_cluster
from schedules import generate
from spikepipe.io import write_csv, write_json
from spikepipe.sim import simulate
from spikepipe.sim.evaluate import load_graph


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", default="resnet18")
    ap.add_argument("--processors", type=int, default=16)
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--schedules", default="spikepipe,1f1b")
    ap.add_argument("--time-limit", type=float, default=5.0, help="CP-SAT limit for the spikepipe schedule")
    ap.add_argument("--out", default="results/sim_bench")
    args = ap.parse_args()
    console = Console(width=150)
    cluster = load_cluster(None, processors=args.processors)
    graph = load_graph(args.network, cluster)
    rows = []
    for name in args.schedules.split(","):
        opts = {"time_limit_s": args.time_limit, "workers": 1} if name == "spikepipe" else {}
        t0 = time.perf_counter()
        sched = generate(name, graph, cluster, **opts)
        gen_s = time.perf_counter() - t0
        for record in (True, False):
            with console.status(f"{name}: replaying {args.iterations} iterations (record={record})"):
                t0 = time.perf_counter()
                res = simulate(sched, cluster, iterations=args.iterations, graph=graph, record=record)
                wall = time.perf_counter() - t0
            rows.append({
                "network": graph.name, "processors": cluster.size, "schedule": name, "kind": sched.kind,
                "slots_per_iteration": len(sched.slots), "iterations": args.iterations, "record": record,
                "events": res.events, "wall_s": round(wall, 3), "events_per_s": round(res.events / wall),
                "period_cycles": sched.period_cycles, "simulated_period_cycles": res.simulated_period_cycles,
                "schedule_s": round(gen_s, 2),
            })
    table = Table(title=f"SimPy replay speed, {graph.name} at P={cluster.size}, {args.iterations} iterations "
                        f"({platform.processor() or platform.machine()}, python {platform.python_version()})")
    for col in ("schedule", "slots/iter", "record", "events", "wall s", "events/s", "period", "simulated"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["schedule"], str(r["slots_per_iteration"]), str(r["record"]), f"{r['events']:,}",
                      f"{r['wall_s']:.2f}", f"{r['events_per_s']:,}", f"{r['period_cycles']:,}",
                      f"{r['simulated_period_cycles']:,.0f}")
    console.print(table)
    out = Path(args.out)
    write_json(out / "bench.json", rows)
    write_csv(out / "bench.csv", rows)
    console.print(f"wrote {out.resolve()}/bench.json and bench.csv")


if __name__ == "__main__":
    main()
