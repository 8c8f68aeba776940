"""Wall time of the front end (tracing) and the costing (TaskGraph) for vgg16 and resnet18.

    .venv/bin/python experiments/frontend_bench/run.py [--networks vgg16,resnet18] [--repeat 7]

Per network, the median over --repeat runs (after one warm-up run) of:
  build      zoo.build (model construction and init, not part of the front end; shown for scale)
  trace      spikepipe.frontend.trace on one sample (what load_workload does)
  tracer     spikepipe.tracer.trace_generic, the independent second tracer used as a cross-check
  costs      spikepipe.costs.build_task_graph (GEMM lowering, cycles on the default processor, bytes, memory)
  workload   spikepipe.workload.load_workload end to end (build + trace + costs)
Writes results/frontend_bench/bench.json and .csv (git-ignored).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from hwmodels.config import load_cluster
from spikepipe import zoo
from spikepipe.costs import build_task_graph
from spikepipe.frontend import trace
from spikepipe.io import write_csv, write_json
from spikepipe.tracer import trace_generic
from spikepipe.workload import load_workload

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("build", "trace", "tracer", "costs", "workload")


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench(name: str, repeat: int, progress: Progress, task) -> dict:
    proc = load_cluster(None, processors=1).processors[0]
    meta = zoo.info(name)
    model, x = zoo.build(name)
    layers = trace(model, x[:, :1])
    assert trace_generic(model, x[:, :1]) == layers  # the two tracers agree before we time them
    runs: dict[str, list[float]] = {s: [] for s in STAGES}
    for i in range(repeat + 1):  # run 0 is a warm-up
        sample = {
            "build": _time(lambda: zoo.build(name)),
            "trace": _time(lambda: trace(model, x[:, :1])),
            "tracer": _time(lambda: trace_generic(model, x[:, :1])),
            "costs": _time(lambda: build_task_graph(layers, batch=meta.batch, timesteps=meta.timesteps,
                                                    processor=proc, name=name)),
            "workload": _time(lambda: load_workload(name, processor=proc)),
        }
        if i:
            for s in STAGES:
                runs[s].append(sample[s])
        progress.advance(task)
    graph = build_task_graph(layers, batch=meta.batch, timesteps=meta.timesteps, processor=proc)
    row = {"network": name, "layers": len(layers), "tasks": len(graph.tasks), "batch": meta.batch,
           "timesteps": meta.timesteps, "repeat": repeat}
    for s in STAGES:
        row[f"{s}_median_s"] = round(statistics.median(runs[s]), 4)
        row[f"{s}_min_s"] = round(min(runs[s]), 4)
    row["trace_plus_costs_median_s"] = round(row["trace_median_s"] + row["costs_median_s"], 4)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", default="vgg16,resnet18")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "frontend_bench")
    args = ap.parse_args()
    names = [n for n in args.networks.split(",") if n]
    torch.set_num_threads(1)  # the machine is shared; one thread keeps the numbers comparable
    rows = []
    with Progress() as progress:
        task = progress.add_task("front end + costing", total=len(names) * (args.repeat + 1))
        for name in names:
            rows.append(bench(name, args.repeat, progress, task))
    env = {"python": platform.python_version(), "torch": torch.__version__, "threads": 1,
           "machine": platform.machine()}
    write_json(args.out / "bench.json", {"env": env, "rows": rows})
    write_csv(args.out / "bench.csv", rows)
    table = Table(title=f"front end + costing, median of {args.repeat} runs (seconds)")
    for col in ("network", "layers", "tasks", *STAGES, "trace+costs"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["network"], str(r["layers"]), str(r["tasks"]), *(f"{r[f'{s}_median_s']:.3f}" for s in STAGES),
                      f"{r['trace_plus_costs_median_s']:.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
