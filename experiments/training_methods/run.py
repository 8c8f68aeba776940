"""Memory-saving SNN training methods side by side: BPTT, checkpointed BPTT, Skipper, TTL, BlocTrain.

    .venv/bin/python experiments/training_methods/run.py --quick      # minutes on 2 cores
    .venv/bin/python experiments/training_methods/run.py              # the fuller run (longer training)
    .venv/bin/python experiments/training_methods/run.py --parts memory,sim
    .venv/bin/python experiments/training_methods/run.py --quick --parts memory,time,accuracy --networks '' \
        --zoo spiking_resnet18   # a SpikingJelly zoo model (sjzoo.py); with memory+time: sidebyside.{csv,png}

Parts (each writes CSV + PNG under --out, default experiments/results/training_methods/{quick,full}):
  memory    per network and method, one training step at T, B: peak bytes of tensors saved for the backward
            (spikepipe.methods.memory.kept_peak: saved tensors + state held outside autograd, each byte once) and the
            process's real peak RSS above its pre-step level (a fresh subprocess per method, /proc/self/statm
            sampled every 0.2 ms during 2 steps; includes the allocator and every temporary)
  time      seconds per step, all methods round-robin on the same minibatches, ratio to BPTT
  maxT      the largest T (doubling) whose saved-tensor peak fits the budget = BPTT's at --budget-t
  accuracy  Fashion-MNIST subset, test accuracy after a short training per method
  pipeline  snn-cnn at P=4: BPTT vs local losses with blocks = stages, under layerpipe's and spikepipe's delays:
            delays, simulated speed, and test accuracy (gradient-queue training)
  sim       the task-graph transform of each method under gpipe, 1f1b, pipedream, layerpipe, spikepipe:
            period, speed (original sequential cycles / simulated period), delays, peak memory per processor
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sjzoo  # noqa: E402
from measure import (  # noqa: E402
    METHODS,
    MethodSpec,
    build,
    make,
    rss_in_subprocess,
    saved_peak,
    saved_per_phase,
    step_times,
    train_accuracy,
)

from spikepipe.io import save_figure, write_csv, write_json  # noqa: E402
from spikepipe.methods.registry import MethodError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NETWORKS = ("snn-cnn", "vgg11-28")
# the registry's defaults, the same the trainers use (at T=8: checkpoint every 3, Skipper skips 1 of 3)
SIM_METHODS = (("bptt", {}), ("checkpoint", {}), ("skipper", {}), ("ttl", {}), ("local", {}), ("bloctrain", {}))
SIM_SCHEDULES = ("gpipe", "1f1b", "pipedream", "layerpipe", "spikepipe")
# what the papers claim (issue 8), for the side-by-side table
PUBLISHED = [
    {"method": "skipper", "claim": "memory vs BPTT", "value": "3.3-8.4x less (6.7x avg)"},
    {"method": "skipper", "claim": "time vs checkpointing", "value": "29-70% faster"},
    {"method": "skipper", "claim": "time vs BPTT", "value": "4-40% faster (GPU)"},
    {"method": "skipper", "claim": "max T at fixed memory", "value": "about 10x"},
    {"method": "ttl", "claim": "GPU memory", "value": "-89.94% (AlexNet, CIFAR10-DVS)"},
    {"method": "ttl", "claim": "MACs", "value": "-99.64%"},
    {"method": "bloctrain", "claim": "training memory", "value": "up to 2.95x lower (ResNet-9, CIFAR-10)"},
    {"method": "bloctrain", "claim": "compute per inference", "value": "1.89x efficiency, 1.45x memory overhead"},
]


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


def _spec(args, net: str, m: str) -> MethodSpec:
    """A SpikingJelly zoo model is not a Sequential chain of layers: TTL on it truncates in time only (one block)."""
    return MethodSpec(m, blocks=1 if sjzoo.is_zoo(net) and m == "ttl" else args.blocks)


def _methods(args, net: str) -> list[str]:
    """The methods that run on `net`; the others' refusals (MethodError: one message each) go to args.refused."""
    ok = []
    for m in args.methods:
        if (net, m) in args.refused:
            continue
        try:
            fn, ex = build(net, timesteps=2, batch=2)
            make(_spec(args, net, m), fn, ex, 1, 1, 1e-3, net)
            ok.append(m)
        except MethodError as e:
            args.refused[(net, m)] = str(e)
    return ok


def part_memory(args, out: Path, console: Console) -> list[dict]:
    rows, phase_rows = [], []
    with _progress(console) as prog:
        task = prog.add_task("memory", total=len(args.networks) * len(args.methods))
        for net in args.networks:
            for m in _methods(args, net):
                spec = _spec(args, net, m)
                saved = saved_peak(spec, net, args.timesteps, args.batch)
                rss = rss_in_subprocess(spec, net, args.timesteps, args.batch)
                if m == "bloctrain":  # training memory per phase (the row above is their max)
                    for ph, b in enumerate(saved_per_phase(spec, net, args.timesteps, args.batch)):
                        phase_rows.append({"network": net, "phase": ph, "saved_bytes": b})
                rows.append({"network": net, "method": m, "timesteps": args.timesteps, "batch": args.batch,
                             "saved_bytes": saved, "rss_before_bytes": rss["rss_before"],
                             "rss_peak_bytes": rss["rss_peak"],
                             "rss_step_bytes": rss["rss_peak"] - rss["rss_before"]})
                prog.advance(task)
    for r in rows:
        ref = next(x for x in rows if x["network"] == r["network"] and x["method"] == "bptt")
        r["saved_vs_bptt"] = round(ref["saved_bytes"] / r["saved_bytes"], 3)
        r["rss_step_vs_bptt"] = round(ref["rss_step_bytes"] / max(1, r["rss_step_bytes"]), 3)
    write_csv(out / "memory.csv", rows)
    if phase_rows:
        write_csv(out / "bloctrain_phase_memory.csv", phase_rows)
    _bars(out / "memory.png", rows, ("saved_bytes", "rss_step_bytes"), 1e6, "MB per training step",
          f"T={args.timesteps}, B={args.batch}")
    return rows


def part_time(args, out: Path, console: Console) -> list[dict]:
    rows = []
    with _progress(console) as prog:
        for net in args.networks:
            specs = [_spec(args, net, m) for m in _methods(args, net)]
            task = prog.add_task(f"step time {net}", total=args.rounds + 1)
            times = step_times(specs, net, args.timesteps, args.batch, args.rounds, lambda t=task: prog.advance(t))
            base = statistics.median(times["bptt"])
            ck = statistics.median(times["checkpoint"])
            for m, ts in times.items():
                med = statistics.median(ts)
                rows.append({"network": net, "method": m, "timesteps": args.timesteps, "batch": args.batch,
                             "median_step_s": round(med, 4), "min_step_s": round(min(ts), 4), "steps": len(ts),
                             "time_vs_bptt": round(med / base, 3), "time_vs_checkpoint": round(med / ck, 3)})
    write_csv(out / "steptime.csv", rows)
    _bars(out / "steptime.png", rows, ("time_vs_bptt",), 1.0, "step time / BPTT", "round-robin, median")
    return rows


def part_maxt(args, out: Path, console: Console) -> list[dict]:
    rows = []
    with _progress(console) as prog:
        task = prog.add_task("max T in budget", total=len(args.networks) * len(args.methods))
        for net in args.networks:
            budget = saved_peak(MethodSpec("bptt"), net, args.budget_t, args.maxt_batch)
            for m in _methods(args, net):
                spec = _spec(args, net, m)
                best, t, seen = 0, 2, []
                while t <= args.max_t:
                    b = saved_peak(spec, net, t, args.maxt_batch)
                    seen.append((t, b))
                    if b > budget * 1.01:  # 1%: the stepped reference differs from BPTT by a few KB
                        break
                    best = t
                    t *= 2
                extra = None
                if best >= args.max_t and len(seen) >= 2:  # cap reached: extend the last two probes linearly
                    (t1, b1), (t2, b2) = seen[-2], seen[-1]
                    slope = (b2 - b1) / (t2 - t1)
                    extra = int(t2 + (budget * 1.01 - b2) / slope) if slope > 0 else None
                rows.append({"network": net, "method": m, "batch": args.maxt_batch, "budget_bytes": budget,
                             "budget_t": args.budget_t, "largest_t": best,
                             "reached_cap": best >= args.max_t, "extrapolated_t": extra, "t_vs_bptt": None,
                             "probes": ";".join(f"{tt}:{bb}" for tt, bb in seen)})
                prog.advance(task)
    for r in rows:
        ref = next(x for x in rows if x["network"] == r["network"] and x["method"] == "bptt")
        r["t_vs_bptt"] = round(r["largest_t"] / max(1, ref["largest_t"]), 2)
    write_csv(out / "maxt.csv", rows)
    _bars(out / "maxt.png", rows, ("largest_t",), 1.0, "largest T in budget",
          f"budget = BPTT's saved bytes at T={args.budget_t}, B={args.maxt_batch}; cap {args.max_t}")
    return rows


def part_accuracy(args, out: Path, console: Console) -> list[dict]:
    from spikepipe.train.data import load_fashion_mnist

    data = load_fashion_mnist(limit_train=args.train_samples)
    rows = []
    with _progress(console) as prog:
        for net in args.acc_networks:
            for m in _methods(args, net):
                spec = _spec(args, net, m)
                epochs = max(args.epochs, args.blocks) if m == "bloctrain" else args.epochs
                task = prog.add_task(f"train {net} {m}", total=epochs * (args.train_samples // args.batch))
                row = train_accuracy(spec, net, data, timesteps=args.acc_timesteps, batch=args.batch,
                                     epochs=args.epochs, lr=args.lr, test_limit=args.test_samples,
                                     progress=lambda t=task: prog.advance(t))
                rows.append(row)
                console.print(f"{net} {m}: test accuracy {row['test_accuracy']:.3f} ({row['train_seconds']} s)")
    write_csv(out / "accuracy.csv", rows)
    _bars(out / "accuracy.png", [{**r, "network": r["network"]} for r in rows], ("test_accuracy",), 1.0,
          "test accuracy", f"Fashion-MNIST, {args.train_samples} training images")
    return rows


def part_counts(args, out: Path, console: Console) -> list[dict]:
    """What each method executes per minibatch, split the papers' way: real multiplies and spike accumulates."""
    from spikepipe.methods.counts import executed_counts, reduction
    from spikepipe.methods.registry import MethodOptions
    from spikepipe.workload import load_workload

    rows = []
    for net in args.networks:
        g = load_workload(net, batch=args.batch, timesteps=args.timesteps)
        base = executed_counts(g, MethodOptions())
        variants = [("bptt", MethodOptions()), ("checkpoint", MethodOptions("checkpoint")),
                    ("skipper", MethodOptions("skipper")), ("ttl", MethodOptions("ttl")),
                    ("ttl-per-layer", MethodOptions("ttl", blocks=g.num_layers)),
                    ("ttl-per-layer-w1", MethodOptions("ttl", window=1, blocks=g.num_layers))]
        for label, opts in variants:
            c = executed_counts(g, opts)
            rows.append({"network": net, "method": label, **opts.describe(g.timesteps), "timesteps": g.timesteps,
                         "batch": g.batch, "multiplies": c.macs, "accumulates": c.acs,
                         "all_ops": c.total, "all_ops_vs_bptt": round(reduction(base.total, c.total), 4),
                         "multiplies_vs_bptt": round(reduction(base.macs, c.macs), 4)})
            console.print(f"{net} {label}: ops {rows[-1]['all_ops_vs_bptt']:+.1%}, "
                          f"multiplies {rows[-1]['multiplies_vs_bptt']:+.2%}")
    write_csv(out / "counts.csv", rows)
    return rows


def part_sim(args, out: Path, console: Console) -> list[dict]:
    from hwmodels.config import load_cluster
    from spikepipe.methods.phased import evaluate_phases
    from spikepipe.methods.registry import MethodOptions
    from spikepipe.methods.transforms import aligned, transform
    from spikepipe.sim.evaluate import evaluate_graph, sequential_period
    from spikepipe.workload import load_workload

    rows = []
    with _progress(console) as prog:
        task = prog.add_task("simulate", total=len(args.networks) * len(args.procs) * len(SIM_METHODS))
        for net in args.networks:
            for p in args.procs:
                cluster = load_cluster(None, processors=p)
                g = load_workload(net, batch=args.batch, timesteps=args.timesteps, processor=cluster.processors[0])
                seq0 = sequential_period(g, cluster)
                for m, params in SIM_METHODS:
                    cuts, ok = None, None
                    if m == "bloctrain":  # its phases run one after another: one task graph each, combined
                        rep = evaluate_phases(g, cluster, list(SIM_SCHEDULES), MethodOptions("bloctrain"),
                                              record=False, options={"time_limit_s": args.cpsat_s}).report
                        _sim_rows(rows, rep, net, p, m, cuts, ok, seq0)
                        prog.advance(task)
                        continue
                    if m in ("ttl", "local"):
                        al = aligned(g, cluster, m, stages=p, **params)
                        h, cuts, ok = al.graph, list(al.borders), al.aligned
                    else:
                        h = transform(g, m, **params)
                    rep = evaluate_graph(h, cluster, list(SIM_SCHEDULES), record=False,
                                         options={"time_limit_s": args.cpsat_s}).report
                    _sim_rows(rows, rep, net, p, m, cuts, ok, seq0)
                    prog.advance(task)
    write_csv(out / "sim.csv", rows)
    _sim_plot(out / "sim.png", [r for r in rows if "error" not in r])
    return rows


def _sim_rows(rows: list[dict], rep: dict, net: str, p: int, m: str, cuts, ok, seq0: int) -> None:
    for r in rep["results"]:
        rows.append({"network": net, "processors": p, "method": m, "schedule": r["schedule"],
                     "block_borders": cuts, "blocks_are_stages": ok,
                     "period_cycles": r["period_cycles"],
                     "simulated_period_cycles": r["simulated_period_cycles"],
                     "phase_periods": [ph["simulated_period_cycles"] for ph in r.get("phases", [])] or None,
                     "speed_vs_bptt_sequential": round(seq0 / r["simulated_period_cycles"], 3),
                     "speedup_own_sequential": round(r["speedup"], 3),
                     "max_delay": r["max_delay"], "gradient_delays": r["gradient_delays"],
                     "peak_memory_bytes": r["peak_memory_bytes"],
                     "peak_memory_per_processor": r["peak_memory_bytes_per_processor"],
                     "peak_activation_bytes": r["peak_activation_bytes"]})
    for e in rep["errors"]:
        rows.append({"network": net, "processors": p, "method": m, "schedule": e["schedule"], "error": e["error"]})


def part_pipeline(args, out: Path, console: Console) -> list[dict]:
    """Pipelining with local losses: speed, delay and accuracy of BPTT vs local losses (blocks = stages) under
    the delays of layerpipe and spikepipe at P processors. Training under delays uses gradient queues (the
    labelled approximation of spikepipe.train.GradientQueue), for BPTT and for local losses alike."""
    import time as _time

    import schedules
    from hwmodels.config import load_cluster
    from spikepipe import zoo
    from spikepipe.methods.transforms import aligned
    from spikepipe.methods.ttl import TTL
    from spikepipe.sim.engine import simulate
    from spikepipe.sim.evaluate import sequential_period
    from spikepipe.train import GradientQueue, OptimConfig
    from spikepipe.train.data import batch_order, load_fashion_mnist
    from spikepipe.train.encoders import encode
    from spikepipe.workload import load_workload

    net_name, p, t = "snn-cnn", args.pipe_procs, args.acc_timesteps
    data = load_fashion_mnist(limit_train=args.train_samples)
    cluster = load_cluster(None, processors=p)
    g = load_workload(net_name, batch=args.batch, timesteps=t, processor=cluster.processors[0])
    al = aligned(g, cluster, "local", stages=p)
    h, cuts, ok = al.graph, list(al.borders), al.aligned
    seq0 = sequential_period(g, cluster)
    rows = []
    with _progress(console) as prog:
        for sched_name in ("layerpipe", "spikepipe"):
            for method, graph in (("bptt", g), ("local", h)):
                opts = {"time_limit_s": args.cpsat_s} if sched_name == "spikepipe" else {}
                sched = schedules.generate(sched_name, graph, cluster, **opts)
                sim = simulate(sched, cluster, graph=graph, record=False)
                torch.manual_seed(0)
                net, ex = zoo.build(net_name, timesteps=t, batch=args.batch, seed=0)
                steps = len(batch_order(len(data.train), args.batch, seed=0, epoch=0)) * args.epochs
                opt = OptimConfig(lr=args.lr)
                if method == "bptt":
                    tr = GradientQueue(net, opt, tuple(sched.gradient_delays), total_steps=steps)
                else:
                    tr = TTL(net, opt, total_steps=steps, example=ex, window=t, blocks=cuts,
                             delays=sched.gradient_delays)
                task = prog.add_task(f"{sched_name} {method}", total=steps)
                t0 = _time.perf_counter()
                for ep in range(args.epochs):
                    order = batch_order(len(data.train), args.batch, seed=0, epoch=ep)
                    tr.run_epoch(lambda n, o=order: (encode("direct", data.train.x[o[n]], t), data.train.y[o[n]]),
                                 len(order), lambda tk=task: prog.advance(tk))
                xt, yt = data.test.x[:args.test_samples], data.test.y[:args.test_samples]
                with torch.no_grad():
                    correct = sum(int((tr.logits(encode("direct", xt[i:i + 256], t)).argmax(1)
                                       == yt[i:i + 256]).sum()) for i in range(0, len(yt), 256))
                rows.append({"network": net_name, "processors": p, "schedule": sched_name, "method": method,
                             "block_borders": cuts if method == "local" else None, "blocks_are_stages": ok,
                             "gradient_delays": list(sched.gradient_delays),
                             "max_delay": max(sched.gradient_delays),
                             "simulated_period_cycles": sim.simulated_period_cycles,
                             "speed_vs_bptt_sequential": round(seq0 / sim.simulated_period_cycles, 3),
                             "peak_memory_bytes": max(sim.peak_memory_bytes),
                             "test_accuracy": correct / len(yt), "epochs": args.epochs,
                             "train_samples": len(data.train), "train_seconds": round(_time.perf_counter() - t0, 1)})
                console.print(f"{sched_name} {method}: delays {list(sched.gradient_delays)}, "
                              f"accuracy {rows[-1]['test_accuracy']:.3f}")
    write_csv(out / "pipeline.csv", rows)
    return rows


_LABELS = {"saved_bytes": "tensors saved for backward", "rss_step_bytes": "process RSS growth in a step",
           "time_vs_bptt": "step time relative to BPTT", "largest_t": "largest T within BPTT's memory at T=8",
           "test_accuracy": "test accuracy"}


def _bars(path: Path, rows: list[dict], keys: tuple[str, ...], scale: float, ylabel: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets = list(dict.fromkeys(r["network"] for r in rows))
    fig, axes = plt.subplots(len(keys), len(nets), figsize=(5 * len(nets), 3.4 * len(keys)), squeeze=False,
                             layout="constrained")
    for i, key in enumerate(keys):
        for j, net in enumerate(nets):
            sub = [r for r in rows if r["network"] == net]
            ax = axes[i][j]
            ax.bar([r["method"] for r in sub], [(r[key] or 0) / scale for r in sub], color="tab:blue")
            ax.set_title(f"{net}: {_LABELS.get(key, key)}", fontsize=9)
            ax.set_ylabel(ylabel)
            ax.tick_params(axis="x", rotation=40, labelsize=8)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
    plt.close(fig)


def _sim_plot(path: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(dict.fromkeys((r["network"], r["processors"]) for r in rows))
    fig, axes = plt.subplots(2, len(keys), figsize=(5.5 * len(keys), 7), squeeze=False)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    scheds = list(dict.fromkeys(r["schedule"] for r in rows))
    width = 0.8 / len(methods)
    for j, (net, p) in enumerate(keys):
        for k, m in enumerate(methods):
            sub = {r["schedule"]: r for r in rows if (r["network"], r["processors"], r["method"]) == (net, p, m)}
            xs = [i + k * width for i in range(len(scheds))]
            axes[0][j].bar(xs, [sub[s]["peak_memory_bytes"] / 1e6 if s in sub else 0 for s in scheds], width,
                           label=m)
            axes[1][j].bar(xs, [sub[s]["speed_vs_bptt_sequential"] if s in sub else 0 for s in scheds], width,
                           label=m)
        for i, lab in enumerate(("peak memory per processor, MB (max)", "speed vs BPTT sequential")):
            axes[i][j].set_xticks([x + 0.4 - width / 2 for x in range(len(scheds))], scheds, fontsize=8)
            axes[i][j].set_title(f"{net}, P={p}: {lab}", fontsize=9)
    axes[0][0].legend(fontsize=7)
    save_figure(fig, path)
    plt.close(fig)


def _side_by_side(args, out: Path, console: Console, refused: list[dict]) -> None:
    """The table of every method (kept memory, RSS, step time, accuracy) and its figure, as sidebyside.py makes
    them from the CSVs just written; methods a network refuses are listed with their message."""
    import sidebyside

    rows = sidebyside.table(out, out, [out])
    write_csv(out / "sidebyside.csv", rows)
    sidebyside.figure(rows, out / "sidebyside.png",
                      note=f"T={args.timesteps}, B={args.batch} (accuracy: T={args.acc_timesteps}, Fashion-MNIST "
                           f"{args.train_samples}/{args.test_samples}, {args.epochs} epoch(s), one seed)")
    keys = list(rows[0]) if rows else []
    console.print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys), soft_wrap=True)
    for r in rows:
        console.print("| " + " | ".join("" if r[k] is None else str(r[k]) for k in keys) + " |", soft_wrap=True)
    for r in refused:
        console.print(f"{r['network']} {r['method']}: refused: {r['error']}", soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--parts", default="memory,time,maxt,accuracy,sim,pipeline")
    ap.add_argument("--out", default=None)
    ap.add_argument("--acc-networks", default=None, help="comma list of networks for the accuracy part")
    ap.add_argument("--methods", default=None, help=f"comma list of methods (default all: {', '.join(METHODS)})")
    ap.add_argument("--networks", default=None, help=f"comma list of networks (default {', '.join(NETWORKS)})")
    ap.add_argument("--zoo", default=None, choices=sorted(sjzoo.ZOO),
                    help="add a SpikingJelly model-zoo network (1x28x28 input; our methods through "
                         "spikepipe.methods.usernet, memopt on its residual blocks)")
    ap.add_argument("--epochs", type=int, default=None,
                    help="training epochs of the accuracy part (default 2, 1 with --quick; BlocTrain splits them "
                         "among its phases)")
    a = ap.parse_args(argv)
    q = a.quick
    args = argparse.Namespace(
        networks=NETWORKS, acc_networks=("snn-cnn",) if q else NETWORKS, timesteps=8, batch=32, blocks=2,
        rounds=4 if q else 12, budget_t=8, maxt_batch=8, max_t=64 if q else 128,
        train_samples=2000 if q else 6000, test_samples=1000 if q else 2000, epochs=1 if q else 2,
        acc_timesteps=4, lr=1e-3, procs=(4,) if q else (2, 4), cpsat_s=3 if q else 10, pipe_procs=4)
    if a.epochs:
        args.epochs = a.epochs
    if a.networks is not None:  # '' with --zoo: the zoo model only
        args.networks = args.acc_networks = tuple(x for x in a.networks.split(",") if x)
    if a.zoo:
        args.networks += (sjzoo.PREFIX + a.zoo,)
        args.acc_networks += (sjzoo.PREFIX + a.zoo,)
    args.refused = {}
    if a.acc_networks:
        args.acc_networks = tuple(x for x in a.acc_networks.split(",") if x)
    args.methods = tuple(x for x in a.methods.split(",") if x) if a.methods else METHODS
    out = Path(a.out) if a.out else ROOT / "experiments" / "results" / "training_methods" / ("quick" if q else "full")
    console = Console(stderr=True)
    torch.set_num_threads(1)
    parts = [p.strip() for p in a.parts.split(",") if p.strip()]
    runners = {"memory": part_memory, "time": part_time, "maxt": part_maxt, "accuracy": part_accuracy,
               "sim": part_sim, "pipeline": part_pipeline, "counts": part_counts}
    bad = [p for p in parts if p not in runners]
    if bad:
        console.print(f"error: unknown part(s) {bad}; valid: {', '.join(runners)}")
        return 2
    write_csv(out / "published.csv", PUBLISHED)
    summary = {"args": {k: v for k, v in vars(args).items() if k != "refused"}}
    for p in parts:
        console.rule(p)
        summary[p] = runners[p](args, out, console)
        summary["refused"] = [{"network": n, "method": m, "error": e} for (n, m), e in args.refused.items()]
        write_json(out / "summary.json", summary)
    if {"memory", "time"} <= set(parts):
        _side_by_side(args, out, console, summary["refused"])
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
