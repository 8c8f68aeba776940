"""Scale test of the tooling: a generated 200-layer SNN at P = 64 through front end, costing, scheduler (with its
time limit and fallback) and SimPy replay, timing each phase.

    .venv/bin/python experiments/scale_test/run.py [--layers 200] [--processors 64] [--time-limit 20] [--split]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from hwmodels.config import load_cluster  # noqa: E402
from schedules import generate  # noqa: E402
from schedules.validate import validate  # noqa: E402
from spikepipe.costs import build_task_graph  # noqa: E402
from spikepipe.frontend import trace  # noqa: E402
from spikepipe.io import write_json  # noqa: E402
from spikepipe.ir import lower_bound_cycles  # noqa: E402
from spikepipe.sim import simulate  # noqa: E402
from spikepipe.snn import LIF  # noqa: E402
from spikepipe.zoo import SNNNet, SpikingBlock  # noqa: E402


def deep_net(layers: int, timesteps: int = 4) -> tuple[nn.Module, torch.Tensor]:
    """A deep residual CNN: a stem, then conv layers of varying width with a skip every other layer, then a head."""
    blocks, sources, residuals = [], [], []
    c, spatial = 3, 16
    widths = (32, 48, 64, 96)
    for i in range(layers - 1):
        c_out = widths[(i // 8) % len(widths)]
        pool = spatial > 4 and i in (layers // 4, layers // 2)
        blocks.append(SpikingBlock(nn.Conv2d(c, c_out, 3, padding=1, bias=False), norm=nn.BatchNorm2d(c_out),
                                   neuron=LIF(), pool=nn.MaxPool2d(2) if pool else None))
        sources.append(i - 1)
        same = (i >= 2 and c_out == c and not pool and i % 2 == 0 and blocks[i - 2].pool is None
                and blocks[i - 1].pool is None)  # a pool in between changes the skip's spatial size
        residuals.append(i - 2 if same and widths[((i - 2) // 8) % len(widths)] == c_out else None)
        c = c_out
        spatial = spatial // 2 if pool else spatial
    blocks.append(SpikingBlock(nn.Linear(c * spatial * spatial, 10), flatten_input=True))
    sources.append(layers - 2)
    residuals.append(None)
    net = SNNNet(f"deep{layers}", blocks, sources, residuals, timesteps, (3, 16, 16), 10)
    return net, torch.rand(timesteps, 1, 3, 16, 16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=200)
    ap.add_argument("--processors", type=int, default=64)
    ap.add_argument("--time-limit", type=float, default=20.0)
    ap.add_argument("--iterations", type=int, default=600)
    ap.add_argument("--split", action="store_true", help="spikepipe with intra-layer splitting")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results" / "scale_test.json"))
    args = ap.parse_args()
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    model, example = deep_net(args.layers)
    phases["build_model_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    specs = trace(model, example)
    phases["frontend_s"] = time.perf_counter() - t0
    cluster = load_cluster(None, processors=args.processors)
    t0 = time.perf_counter()
    graph = build_task_graph(specs, batch=32, timesteps=4, processor=cluster.processors[0], name=model.name)
    phases["costing_s"] = time.perf_counter() - t0
    results = {}
    for name in ("pipedream", "spikepipe"):
        t0 = time.perf_counter()
        sched = generate(name, graph, cluster, **({"time_limit_s": args.time_limit, "split": args.split} if name == "spikepipe" else {}))
        phases[f"schedule_{name}_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        validate(sched, graph, cluster)
        phases[f"validate_{name}_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        sim = simulate(sched, cluster, iterations=args.iterations, graph=graph, record=False)
        phases[f"simulate_{name}_s"] = time.perf_counter() - t0
        results[name] = {"period_cycles": sched.period_cycles, "simulated_period_cycles": sim.simulated_period_cycles,
                         "max_delay": max(sched.gradient_delays),
                         "info": {k: v for k, v in sched.info.items() if isinstance(v, (int, float, str, bool))},
                         "budget": sched.info.get("budget")}
    report = {"layers": len(specs), "tasks": len(graph.tasks), "processors": args.processors,
              # two bounds: any unsplit schedule (micro-batches may dodge DRAM stalls) and whole tasks (spikepipe's)
              "lower_bound_cycles": lower_bound_cycles(graph, cluster),
              "whole_task_lower_bound_cycles": lower_bound_cycles(graph, cluster, microbatches=(1,)),
              "phases_s": {k: round(v, 3) for k, v in phases.items()}, "results": results}
    write_json(args.out, report)
    for k, v in report["phases_s"].items():
        print(f"{k:>24}: {v:8.3f} s")
    for name, r in results.items():
        print(f"{name}: period {r['period_cycles']:,} (simulated {r['simulated_period_cycles']:,.0f}), "
              f"status {r['info'].get('phase1', r['info'].get('status', '-'))}, fallback {r['info'].get('fallback', '-')}")
    budget = results["spikepipe"]["budget"] or {}
    for k, v in {**budget.get("phases_s", {}), **{f"baseline {n}": t for n, t in budget.get("baselines_s", {}).items()}}.items():
        print(f"  spikepipe {k:>22}: {v:8.3f} s")
    for note in budget.get("skipped_for_time", []):
        print(f"  cut for time: {note}")
    print(f"lower bound {report['whole_task_lower_bound_cycles']:,} for whole tasks, "
          f"{report['lower_bound_cycles']:,} for any unsplit schedule; wrote {args.out}")


if __name__ == "__main__":
    main()
