"""Measured against simulated: calibrate this machine's task and transfer times, let the simulator predict each
schedule's steady-state time per minibatch on P processes, run the same schedules on P gloo ranks, compare.

    .venv/bin/python experiments/distributed/run.py                       # snn-cnn, Fashion-MNIST, P=2
    .venv/bin/python experiments/distributed/run.py --network snn-mlp --dataset digits --batches 40

Writes experiments/results/distributed/{timing.csv, timing.md, calibration.json}. On a 2-core machine P=2 is the
honest limit (one core per rank); larger P is for correctness only unless the machine has a core per rank.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import schedules  # noqa: E402
from spikepipe import zoo  # noqa: E402
from spikepipe.distributed import DistributedPipeline  # noqa: E402
from spikepipe.distributed.calibrate import (  # noqa: E402
    NS,
    executor_schedule,
    in_run_schedule,
    measure_link,
    measure_tasks,
    measure_tasks_concurrent,
    measured_cluster,
    measured_graph,
    predict_seconds,
    simulated_seconds,
)
from spikepipe.io import write_json  # noqa: E402
from spikepipe.train.bptt import PlainBPTT  # noqa: E402
from spikepipe.train.data import batch_order, load_dataset  # noqa: E402
from spikepipe.train.encoders import encode  # noqa: E402
from spikepipe.train.optim import OptimConfig  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", default="snn-cnn")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--processors", type=int, default=2)
    ap.add_argument("--schedules", default="pipedream,1f1b,spikepipe")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--batches", type=int, default=24, help="minibatches per timed epoch")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results" / "distributed"))
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)  # each rank runs one thread; the calibration times the same way
    torch.use_deterministic_algorithms(True, warn_only=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    net, example = zoo.build(args.network, batch=args.batch, num_classes=10, seed=0)
    T = int(example.shape[0])
    data = load_dataset(args.dataset, None, **({"limit_train": args.batch * args.batches}
                                               if args.dataset == "fashion-mnist" else {}))
    data = data.reshaped(tuple(example.shape[2:]))
    order = batch_order(len(data.train), args.batch, seed=0, epoch=0)[:args.batches]
    N = len(order)

    def get_batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return encode("direct", data.train.x[order[n]], T, seed=n), data.train.y[order[n]]

    optim = OptimConfig()
    x0, y0 = get_batch(0)
    costs: dict[int, object] = {}  # one process, alone: the calibration the issue asks for
    shared: dict[int, object] = {}  # P processes at once: what each rank gets on a machine it shares

    def costs_at(b: int):
        if b not in costs:
            costs[b] = measure_tasks(net, x0[:, :b], y0[:b], optim)
            shared[b] = measure_tasks_concurrent(net, x0[:, :b], y0[:b], optim, processes=args.processors)
        return costs[b]

    full = costs_at(args.batch)
    link = measure_link()
    graph = measured_graph(full, tuple(net.sources), tuple(net.residuals), args.network, T)
    cluster = measured_cluster(link, args.processors)
    write_json(out / "calibration.json", {"tasks": asdict(full), "tasks_shared": asdict(shared[args.batch]),
                                          "link": asdict(link), "load_average": os.getloadavg()})

    seq = PlainBPTT(net, optim, total_steps=N)  # one process, the whole minibatch: the speedup reference
    t0 = time.perf_counter()
    seq.run_epoch(get_batch, N)
    seq_s = (time.perf_counter() - t0) / N
    seq_pred = (sum(full.forward_s) + sum(full.backward_s) + sum(full.update_s))

    rows = []
    for name in args.schedules.split(","):
        s = schedules.generate(name, graph, cluster)
        by_batch = {max(1, round(args.batch * sl.fraction)) for sl in s.slots}
        for b in by_batch:
            costs_at(b)
        pred = predict_seconds(s, graph, cluster, costs)
        pred_shared = predict_seconds(s, graph, cluster, shared)
        trainer = DistributedPipeline(net, optim, s, total_steps=N)
        trainer.run_epoch(get_batch, N)
        timing = trainer.timing[-1]
        meas = timing.seconds_per_minibatch
        in_run = simulated_seconds(in_run_schedule(s, trainer.plan(N), trainer.last_timings), graph, cluster)
        busy = sum(timing.compute_seconds.values()) / N  # all ranks' computation per minibatch
        calibrated = sum(sl.duration_cycles for sl in executor_schedule(s, costs).slots) / NS
        rows.append({"network": args.network, "schedule": name, "processors": args.processors,
                     "microbatches": s.microbatches, "planned_ms": round(s.period_cycles / NS * 1e3, 3),
                     "predicted_ms": round(pred * 1e3, 3), "measured_ms": round(meas * 1e3, 3),
                     "error": round((pred - meas) / meas, 4), "shared_predicted_ms": round(pred_shared * 1e3, 3),
                     "shared_error": round((pred_shared - meas) / meas, 4), "in_run_predicted_ms": round(in_run * 1e3, 3),
                     "in_run_error": round((in_run - meas) / meas, 4),
                     "compute_inflation": round(busy / calibrated, 3),
                     "predicted_speedup": round(seq_pred / pred, 3), "measured_speedup": round(seq_s / meas, 3),
                     "gradient_delays": list(s.gradient_delays), "measured_delays": list(trainer.measured_delays)})
        print(rows[-1], flush=True)
    with open(out / "timing.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = ["| schedule | P | micro-batches | measured ms/minibatch | predicted: tasks timed alone | error | "
             "predicted: tasks timed P at once | error | predicted: the run's own task times | error | "
             "task time in run / alone | predicted speedup (alone) | measured speedup | delays |",
             "|" + "---|" * 14]
    for r in rows:
        lines.append(f"| {r['schedule']} | {r['processors']} | {r['microbatches']} | {r['measured_ms']:.2f} | "
                     f"{r['predicted_ms']:.2f} | {100 * r['error']:+.1f}% | {r['shared_predicted_ms']:.2f} | "
                     f"{100 * r['shared_error']:+.1f}% | {r['in_run_predicted_ms']:.2f} | "
                     f"{100 * r['in_run_error']:+.1f}% | {r['compute_inflation']:.2f}x | "
                     f"{r['predicted_speedup']:.2f} | {r['measured_speedup']:.2f} | {r['measured_delays']} |")
    lines.append(f"\n1-process BPTT: {seq_s * 1e3:.2f} ms/minibatch measured, {seq_pred * 1e3:.2f} ms as the sum "
                 f"of the calibrated tasks; link {link.latency_s * 1e6:.0f} us + {link.bytes_per_s / 1e9:.2f} "
                 f"GB/s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    (out / "timing.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
