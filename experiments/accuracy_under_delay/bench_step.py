"""Step time of exact pipelined training vs plain BPTT, side by side in one process.

    .venv/bin/python experiments/accuracy_under_delay/bench_step.py --network snn-cnn --schedule spikepipe -P 4

Rounds alternate the trainers (BPTT epoch of k steps, then exact-pipeline epoch of k steps, ...) so both see the
same machine load; reports the median seconds per step of each and their ratio, and writes bench.json. On a
machine shared with other jobs, wall time swings by 2x between rounds; the process CPU time per step (also
reported, with --threads 1 it is the work this trainer did) is the steadier measure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import Progress

from spikepipe.io import write_json
from spikepipe.train.bptt import PlainBPTT
from spikepipe.train.optim import OptimConfig
from spikepipe.train.pipelined import ExactPipeline, GradientQueue
from spikepipe.train.runner import TrainConfig, build_schedule

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", default="snn-cnn")
    ap.add_argument("--schedule", default="spikepipe")
    ap.add_argument("-P", "--processors", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--timesteps", type=int, default=None)
    ap.add_argument("--steps", type=int, default=12, help="minibatches per round and trainer")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(HERE / "results" / "bench.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from spikepipe import zoo

    net, ex = zoo.build(args.network, timesteps=args.timesteps, batch=args.batch, num_classes=10)
    t = int(ex.shape[0])
    cfg = TrainConfig(network=args.network, schedule=args.schedule, processors=args.processors, batch=args.batch,
                      timesteps=t)
    sched = build_schedule(cfg, t)
    g = torch.Generator().manual_seed(0)
    data = [(torch.rand(t, args.batch, *ex.shape[2:], generator=g), torch.randint(0, 10, (args.batch,), generator=g))
            for _ in range(args.steps)]
    opt = OptimConfig(name="adam", lr=1e-3)
    total = args.steps * args.rounds
    trainers = {"bptt": PlainBPTT(net, opt, total_steps=total),
                "exact": ExactPipeline(net, opt, sched, total_steps=total),
                "exact-no-stash": ExactPipeline(net, opt, sched, total_steps=total, stash=False),
                "queue": GradientQueue(net, opt, sched.gradient_delays, total_steps=total)}
    times: dict[str, list[float]] = {k: [] for k in trainers}
    cpu: dict[str, list[float]] = {k: [] for k in trainers}
    with Progress(console=Console(stderr=True)) as prog:
        task = prog.add_task("rounds", total=args.rounds * len(trainers))
        for _ in range(args.rounds):
            for name, tr in trainers.items():
                t0, c0 = time.perf_counter(), time.process_time()
                tr.run_epoch(lambda n: data[n], args.steps)
                times[name].append((time.perf_counter() - t0) / args.steps)
                cpu[name].append((time.process_time() - c0) / args.steps)
                prog.advance(task)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    res = {"network": args.network, "schedule": sched.name, "processors": args.processors, "batch": args.batch,
           "timesteps": t, "threads": args.threads, "steps_per_round": args.steps, "rounds": args.rounds,
           "gradient_delays": list(sched.gradient_delays), "median_step_seconds": med,
           "ratio_exact_over_bptt": med["exact"] / med["bptt"],
           "ratio_exact_no_stash_over_bptt": med["exact-no-stash"] / med["bptt"],
           "ratio_queue_over_bptt": med["queue"] / med["bptt"],
           "median_step_cpu_seconds": med_cpu, "cpu_ratio_exact_over_bptt": med_cpu["exact"] / med_cpu["bptt"],
           "cpu_ratio_exact_no_stash_over_bptt": med_cpu["exact-no-stash"] / med_cpu["bptt"],
           "cpu_ratio_queue_over_bptt": med_cpu["queue"] / med_cpu["bptt"],
           "all_step_seconds": times, "all_step_cpu_seconds": cpu}
    write_json(args.out, res)
    sys.stdout.write(json.dumps({k: v for k, v in res.items() if not k.startswith("all_")}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
