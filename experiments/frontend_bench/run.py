"""Wall time of the front end (tracing) and the costing (TaskGraph) for vgg16 and resnet18.

    .venv/bin/python experiments/frontend_bench/run.py [--networks vgg16,resnet18,sj-spikformer] [--repeat 7]

Per network (a zoo name, or a case of experiments/frontend_bench/models.py such as sj-spikformer), the median
over --repeat runs (after one warm-up run) of:
  build      building the torch model (not part of the front end; shown for scale)
  trace      spikepipe.frontend.trace_model: layers, T and B (zoo networks: at T=2, B=1, as load_workload does)
  costs      spikepipe.costs.build_task_graph (GEMM lowering, cycles on the default processor, bytes, memory)
  workload   end to end: spikepipe.workload.load_workload for a zoo name, build + trace + costs for a case
Writes results/frontend_bench/bench.json and .csv (git-ignored).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from hwmodels.config import load_cluster
from spikepipe import zoo
from spikepipe.costs import build_task_graph
from spikepipe.frontend import trace_model
from spikepipe.io import write_csv, write_json
from spikepipe.workload import load_workload

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import CASES  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("build", "trace", "costs", "workload")


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _network(name: str):
    """(build, T, B): a zoo network is built and traced at T=2, B=1 and costed at its defaults; a case as written."""
    cases = {c.name: c for c in CASES}
    if name in cases:
        return cases[name].build, None, None
    meta = zoo.info(name)
    return (lambda: zoo.build(name, timesteps=2, batch=1)), meta.timesteps, meta.batch


def bench(name: str, repeat: int, progress: Progress, task) -> dict:
    proc = load_cluster(None, processors=1).processors[0]
    build, t_cost, b_cost = _network(name)
    model, x = build()
    traced = trace_model(model, x)
    t, b = t_cost or traced.layout.timesteps, b_cost or traced.layout.batch

    def costs(layers=traced.layers):
        return build_task_graph(layers, batch=b, timesteps=t, processor=proc, name=name)

    def workload():
        if t_cost is not None:
            return load_workload(name, processor=proc)
        m, ex = build()
        return costs(trace_model(m, ex).layers)

    runs: dict[str, list[float]] = {s: [] for s in STAGES}
    for i in range(repeat + 1):  # run 0 is a warm-up
        sample = {"build": _time(build), "trace": _time(lambda: trace_model(model, x)), "costs": _time(costs),
                  "workload": _time(workload)}
        if i:
            for s in STAGES:
                runs[s].append(sample[s])
        progress.advance(task)
    graph = costs()
    row = {"network": name, "layers": len(traced.layers), "tasks": len(graph.tasks), "batch": b, "timesteps": t,
           "repeat": repeat}
    for s in STAGES:
        row[f"{s}_median_s"] = round(statistics.median(runs[s]), 4)
        row[f"{s}_min_s"] = round(min(runs[s]), 4)
    row["trace_plus_costs_median_s"] = round(row["trace_median_s"] + row["costs_median_s"], 4)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", default="vgg16,resnet18,sj-spikformer")
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
