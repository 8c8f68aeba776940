"""Scheduler comparison table: every schedule on each network at P = 2, 4, 8, 16 (OS 128x128 by default).

    .venv/bin/python experiments/schedulers/run.py [--networks snn-cnn,vgg11,vgg16,resnet18] [--processors 2,4,8,16]
        [--time-limit 10] [--out experiments/results/schedulers.csv] [--synthetic]

Writes one CSV row per (network, P, schedule): period, speedup vs 1-processor sequential, ratio of pipedream's and
of the best pipelining baseline's period over this one, delays, solve time, gap and lower bound. --synthetic
uses a 12-layer random chain instead of real networks (works before spikepipe.workload exists).
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
from dataclasses import replace
from pathlib import Path

from rich.progress import Progress

from hwmodels.config import load_cluster
from schedules import generate, names, validate
from schedules.registry import PIPELINING
from spikepipe.io import write_csv
from spikepipe.ir import chain_graph, lower_bound_cycles


def load(name: str, args: argparse.Namespace):
    if args.synthetic:
        rng = random.Random(name)
        return chain_graph([tuple(rng.randint(10_000, 90_000) for _ in range(3)) for _ in range(12)],
                           edge_bytes=65536, batch=32, name=f"synthetic-{name}")
    from spikepipe.workload import load_workload  # helper H2's module

    proc = load_cluster(processors=1, array=args.array, dataflow="os").processors[0]
    return load_workload(name, batch=args.batch, timesteps=args.timesteps, processor=proc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", default="snn-cnn,vgg11,vgg16,resnet18")
    ap.add_argument("--processors", default="2,4,8,16")
    ap.add_argument("--array", default="128x128")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--timesteps", type=int, default=4)
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="experiments/results/schedulers.csv")
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument("--simulate", action="store_true", help="replay the split schedule in the SimPy simulator")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    nets = [n for n in args.networks.split(",") if n]
    procs = [int(p) for p in args.processors.split(",") if p]
    rows = []
    with Progress() as progress:
        bar = progress.add_task("schedules", total=len(nets) * len(procs))
        for net in nets:
            g = load(net, args)
            seq = generate("sequential", g, load_cluster(processors=1, array=args.array, dataflow="os"))
            for p in procs:
                c = load_cluster(processors=p, array=args.array, dataflow="os")
                res = {}
                for name in [*names(), "spikepipe-split"]:
                    opts = {"time_limit_s": args.time_limit, "workers": args.workers} if "spikepipe" in name else {}
                    if name == "spikepipe-split":
                        s = generate("spikepipe", g, c, **opts, split=True)
                        if args.simulate:  # the replay must meet the claimed period
                            from spikepipe.sim import simulate

                            s = replace(s, info={**s.info, "simulated_period_cycles":
                                                 simulate(s, c, graph=g).simulated_period_cycles})
                    else:
                        s = generate(name, g, c, **opts)
                    validate(s, g, c)
                    res[name] = s
                best = min((res[n] for n in PIPELINING if n in res), key=lambda s: s.period_cycles)
                for name, s in res.items():
                    i = s.info
                    rows.append({
                        "network": g.name, "processors": p, "schedule": name, "period_cycles": s.period_cycles,
                        # bound of the schedule's own class (whole tasks, or its micro-batches); _any bounds all
                        "lower_bound_cycles": s.info.get("lower_bound_cycles", lower_bound_cycles(g, c)),
                        "lower_bound_any_cycles": lower_bound_cycles(g, c),
                        "speedup": seq.period_cycles / s.period_cycles,
                        "pipedream_over_this": res["pipedream"].period_cycles / s.period_cycles,
                        "best_pipelining_over_this": best.period_cycles / s.period_cycles,
                        "best_pipelining": best.name,
                        "gradient_delays": " ".join(map(str, s.gradient_delays)),
                        "total_delay": sum(s.gradient_delays), "max_delay": max(s.gradient_delays, default=0),
                        "microbatches": s.microbatches,
                        "data_parallel_over_this": res["data-parallel"].period_cycles / s.period_cycles,
                        "period_gap_to_lb": (s.period_cycles - s.info.get("lower_bound_cycles", lower_bound_cycles(g, c)))
                        / s.period_cycles,
                        "phase1_gap": i.get("phase1", {}).get("gap", ""),
                        "delay_lower_bound": i.get("delay_lower_bound", ""),
                        "split_parts": " ".join(map(str, i.get("parts_per_layer", []))) if i.get("split") else "",
                        "simulated_period_cycles": i.get("simulated_period_cycles", ""),
                        "fallback": i.get("fallback") or "",
                        "solve_s": round(i.get("solve_s", 0.0), 3),
                        "phase1_status": i.get("phase1", {}).get("status", ""),
                        "phase2_status": i.get("phase2", {}).get("status", ""),
                        "phase2_gap": i.get("phase2", {}).get("gap", ""),
                        "relabelled_from": i.get("relabelled_from", ""),
                    })
                progress.advance(bar)
    write_csv(args.out, rows)
    sp = [r for r in rows if r["schedule"] in ("spikepipe", "spikepipe-split")]
    for r in sp:
        print(f"{r['network']:>10} {r['schedule']:>15} P={r['processors']:>2} period={r['period_cycles']:>10} "
              f"LB={r['lower_bound_cycles']:>10} speedup={r['speedup']:.2f} "
              f"vs pipedream={r['pipedream_over_this']:.3f} vs best={r['best_pipelining_over_this']:.3f} "
              f"({r['best_pipelining']}) delay={r['total_delay']} t={r['solve_s']}s gap={r['phase2_gap']}")
    print(f"wrote {Path(args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
