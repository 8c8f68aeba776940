"""Does it still learn? Test accuracy of plain BPTT vs training with exactly the gradient delays of the
`spikepipe` schedule (P = 4 and 8) and of `pipedream`, with and without delay compensation, over seeds.

    .venv/bin/python experiments/accuracy_under_delay/run.py --quick        # minutes: a smoke run of the grid
    .venv/bin/python experiments/accuracy_under_delay/run.py                # the full grid (hours on 2 cores)
    .venv/bin/python experiments/accuracy_under_delay/run.py --cases snn-mlp --seeds 0,1,2
    .venv/bin/python experiments/accuracy_under_delay/run.py --workers 2     # runs side by side, same results

Every run is cached as one JSON file under --out/runs/, so an interrupted grid continues where it stopped.
Writes runs.csv (one row per run), summary.csv and summary.md (mean and spread over seeds, difference to BPTT)
and accuracy.png under --out (default experiments/accuracy_under_delay/results/{quick,full}).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from spikepipe.io import save_figure, write_atomic, write_csv, write_json
from spikepipe.train.runner import TrainConfig, build_schedule
from spikepipe.training import run as train

HERE = Path(__file__).resolve().parent

# Sized for a 2-core machine shared with other jobs: the full grid is about an hour, quick mode minutes.
# The Fashion-MNIST cases train on a 3000-image subset for 2 epochs (the test set stays whole, 10000 images);
# validation per epoch uses the first 1000 held-out images. `compensate` names the schedules that also get the
# compensated variants (all of them would triple the cost of the expensive cases). The deep case is cut harder
# (machine load made a vgg11-28 run take 5 minutes): 2000 training images, the first 5000 test images, no
# pipedream P=4 (its delays are a prefix of P=8's) and SpecTrain as its only compensation. deep-xl is the deep
# target's check: 20,000 images, one variant per schedule, plus spikepipe with a 10% period slack (about 25
# minutes for 3 seeds on 2 cores; the whole default grid took about 45 minutes on the quiet machine).
CASES = {
    "snn-mlp": dict(full=TrainConfig(network="snn-mlp", dataset="digits", epochs=30, batch=32, lr=2e-3),
                    quick=TrainConfig(network="snn-mlp", dataset="digits", epochs=8, batch=32, lr=2e-3),
                    budget_points=1.0, compensate="all"),
    "snn-cnn": dict(full=TrainConfig(network="snn-cnn", dataset="fashion-mnist", epochs=2, batch=32, lr=1e-3,
                                     limit_train=3000, limit_val=1000),
                    quick=TrainConfig(network="snn-cnn", dataset="fashion-mnist", epochs=1, batch=64, lr=1e-3,
                                      limit_train=3000, limit_val=1000),
                    budget_points=1.0, compensate=(("spikepipe", 4), ("spikepipe", 8))),
    "deep": dict(full=TrainConfig(network="vgg11-28", dataset="fashion-mnist", epochs=2, batch=32, lr=1e-3,
                                  limit_train=2000, limit_val=500, limit_test=5000),
                 quick=TrainConfig(network="vgg11-28", dataset="fashion-mnist", epochs=1, batch=32, lr=5e-4,
                                   limit_train=640, limit_val=500),
                 budget_points=2.0, compensate=(("spikepipe", 4),),
                 skip=(("pipedream", 4),), only_spectrain=True,
                 # spikepipe trading 10% of its period for less delay (period_slack): the deep case's lever
                 slack=(("spikepipe", 4, 0.1), ("spikepipe", 8, 0.1))),
    # a longer-trained check of the deep case (not in the default --cases): 3x the images, one seed
    "deep-long": dict(full=TrainConfig(network="vgg11-28", dataset="fashion-mnist", epochs=2, batch=32, lr=1e-3,
                                       limit_train=6000, limit_val=500, limit_test=5000),
                      quick=TrainConfig(network="vgg11-28", dataset="fashion-mnist", epochs=1, batch=32, lr=5e-4,
                                        limit_train=640, limit_val=500),
                      budget_points=2.0, compensate=(), skip=(("spikepipe", 8), ("pipedream", 4)),
                      only_spectrain=True),
    # the deep target's check: 10x the deep case's images, so the baseline is closer to converged
    "deep-xl": dict(full=TrainConfig(network="vgg11-28", dataset="fashion-mnist", epochs=2, batch=32, lr=1e-3,
                                     limit_train=20000, limit_val=500, limit_test=5000),
                    quick=TrainConfig(network="vgg11-28", dataset="fashion-mnist", epochs=1, batch=32, lr=5e-4,
                                      limit_train=640, limit_val=500),
                    budget_points=2.0, compensate=(), skip=(("pipedream", 4),), only_spectrain=True,
                    slack=(("spikepipe", 4, 0.1),)),
}
DEFAULT_CASES = ("snn-mlp", "snn-cnn", "deep", "deep-xl")
COMPENSATIONS = ("none", "spectrain", "pipemare")
SCHEDULES = (("spikepipe", 4), ("spikepipe", 8), ("pipedream", 4), ("pipedream", 8))
# (schedule, processors, compensation, period slack)
QUICK_VARIANTS = [("none", 1, "none", 0.0), ("spikepipe", 4, "none", 0.0), ("spikepipe", 8, "none", 0.0),
                  ("pipedream", 4, "none", 0.0), ("spikepipe", 8, "spectrain", 0.0), ("spikepipe", 8, "pipemare", 0.0)]


def full_variants(case: str) -> list[tuple[str, int, str, float]]:
    comp, skip = CASES[case]["compensate"], CASES[case].get("skip", ())
    comps = ("none", "spectrain") if CASES[case].get("only_spectrain") else COMPENSATIONS
    out = [("none", 1, "none", 0.0)]
    for s, p in SCHEDULES:
        if (s, p) not in skip:
            out += [(s, p, c, 0.0) for c in comps if c == "none" or comp == "all" or (s, p) in comp]
    out += [(s, p, "none", slack) for s, p, slack in CASES[case].get("slack", ())]
    return out


def training_key(cfg: TrainConfig, delays: tuple[int, ...] | None) -> str:
    """Cache key of what a run computes. With weight stashing the trainer's result depends on the schedule only
    through its per-layer delays (H5's test: exact execution equals the delay queue then), so two schedules with
    equal delays share one run."""
    if delays is not None and cfg.stash:
        cfg = replace(cfg, schedule=f"delays{list(delays)}", processors=0, period_slack=0.0)
    return run_key(cfg)


def run_key(cfg: TrainConfig) -> str:
    d = {k: v for k, v in asdict(cfg).items() if k not in ("out", "resume", "threads")}
    if not d.get("period_slack"):  # added later: runs without slack keep the keys they were cached under
        d.pop("period_slack", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def variant_label(schedule: str, processors: int, comp: str, slack: float = 0.0) -> str:
    if schedule == "none":
        return "bptt"
    return (f"{schedule} P={processors}" + (f" slack {slack:g}" if slack else "")
            + ("" if comp == "none" else f" +{comp}"))


def _delay_patterns(runs: list[dict]) -> list[int] | str:
    """The delays a variant's runs used: one list, or each pattern when a schedule solved again (another seed's
    run, a loaded machine) placed tasks otherwise."""
    distinct = list(dict.fromkeys(tuple(r["gradient_delays"]) for r in runs))
    return list(distinct[0]) if len(distinct) == 1 else " or ".join(str(list(d)) for d in distinct)


def summarise(rows: list[dict], budgets: dict[str, float]) -> list[dict]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["case"], r["variant"]), []).append(r)
    base = {case: statistics.mean(x["test_accuracy"] for x in g) for (case, v), g in groups.items() if v == "bptt"}
    out = []
    for (case, variant), g in groups.items():
        accs = [x["test_accuracy"] for x in g]
        mean = statistics.mean(accs)
        diff = None if case not in base else 100 * (mean - base[case])
        out.append({
            "case": case, "network": g[0]["network"], "dataset": g[0]["dataset"], "variant": variant,
            "seeds": len(g), "test_accuracy_mean": round(100 * mean, 2),
            "test_accuracy_std": round(100 * statistics.pstdev(accs), 2),
            "minus_bptt_points": None if diff is None else round(diff, 2),
            "within_budget": None if diff is None else diff >= -budgets[case],
            "gradient_delays": _delay_patterns(g),
            "step_seconds": round(statistics.mean(
                x["step_seconds"] or 0 for x in g), 4),
            "wall_seconds": round(sum(x.get("wall_seconds") or 0 for x in g), 1),
        })
    return out


def markdown(summary: list[dict]) -> str:
    lines = ["| case | variant | seeds | test acc. % (mean ± sd) | vs BPTT (points) | within target | delays |",
             "|---|---|---|---|---|---|---|"]
    for s in summary:
        diff = "" if s["minus_bptt_points"] is None else f"{s['minus_bptt_points']:+.2f}"
        ok = "" if s["within_budget"] is None or s["variant"] == "bptt" else ("yes" if s["within_budget"] else "NO")
        lines.append(f"| {s['case']} ({s['dataset']}) | {s['variant']} | {s['seeds']} | "
                     f"{s['test_accuracy_mean']:.2f} ± {s['test_accuracy_std']:.2f} | {diff} | {ok} | "
                     f"{s['gradient_delays']} |")
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = sorted({s["case"] for s in summary})
    fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 4), squeeze=False)
    for ax, case in zip(axes[0], cases, strict=True):
        rows = [s for s in summary if s["case"] == case]
        ax.barh([r["variant"] for r in rows], [r["test_accuracy_mean"] for r in rows],
                xerr=[r["test_accuracy_std"] for r in rows], color=["C0" if r["variant"] == "bptt" else "C1"
                                                                    for r in rows])
        lo = min(r["test_accuracy_mean"] for r in rows)
        ax.set_xlim(max(0, lo - 10), 100)
        ax.set_xlabel("test accuracy (%)")
        ax.set_title(f"{case} ({rows[0]['dataset']})")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def plot_curves(rows: list[dict], path: Path) -> None:
    """Validation accuracy per epoch, mean over seeds, one line per variant and one panel per case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    cases = sorted({r["case"] for r in rows if r.get("curve")})
    if not cases:
        return
    fig, axes = plt.subplots(1, len(cases), figsize=(5.4 * len(cases), 5.6), squeeze=False)
    for ax, case in zip(axes[0], cases, strict=True):
        # variants that share a run (equal delays and compensation) are one line labelled with all their names
        curves: dict[tuple, list[list[float]]] = {}
        labels: dict[tuple, list[str]] = {}
        for r in rows:
            if r["case"] == case and r.get("curve"):
                key = (str(r["gradient_delays"]), r["compensation"])
                curves.setdefault(key, []).append([100 * c["val_accuracy"] for c in r["curve"]])
                if r["variant"] not in labels.setdefault(key, []):
                    labels[key].append(r["variant"])
        cmap = plt.get_cmap("tab10")
        for i, (key, cs) in enumerate(curves.items()):
            seeds = len(cs) // len(labels[key])
            n = min(len(c) for c in cs)
            mean = [statistics.mean(c[e] for c in cs) for e in range(n)]
            bptt = labels[key] == ["bptt"]
            style = dict(color="k", lw=2.4) if bptt else dict(
                color=cmap(i % 10), lw=1.4, ls=("-", "--", ":")[{"none": 0, "spectrain": 1}.get(key[1], 2)])
            names = labels[key]
            same = f" (= {', '.join(v.split()[1] for v in names[1:])})" if len(names) > 1 else ""
            ax.plot(range(1, n + 1), mean, marker="o" if n <= 4 else None,
                    label=f"{names[0]}{same}{'' if bptt else ' ' + key[0]}, {seeds} seeds", **style)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("validation accuracy (%), mean over seeds")
        ax.set_title(f"{case} ({next(r['dataset'] for r in rows if r['case'] == case)})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small data, few epochs, fewer variants, one seed")
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES), help=f"comma list of {', '.join(CASES)}")
    ap.add_argument("--seeds", default=None, help="comma list (default 0,1,2; quick: 0)")
    ap.add_argument("--deep-network", default=None, help="zoo name of the deep network (default vgg11-28)")
    ap.add_argument("--standin", action="store_true",
                    help="use the test suite's stand-in networks and chain task graphs priced by MACs (for when "
                         "spikepipe.zoo / spikepipe.workload are unavailable); labelled in the output")
    ap.add_argument("--variants", default=None,
                    help="comma list of variant labels to run, e.g. 'bptt,pipedream P=4' (default: all of the mode)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1,
                    help="runs trained side by side in separate processes (each with --threads torch threads)")
    ap.add_argument("--cached-only", action="store_true",
                    help="train nothing: summarise the runs already cached under --out and list the missing ones")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    mode = "quick" if args.quick else "full"
    out = Path(args.out) if args.out else HERE / "results" / mode
    seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1,2")).split(",")]
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for c in cases:
        if c not in CASES:
            ap.error(f"unknown case {c!r}; valid: {', '.join(CASES)}")
    jobs = []
    for case in cases:
        base: TrainConfig = CASES[case][mode]
        if case == "deep" and args.deep_network:
            base = replace(base, network=args.deep_network)
        for schedule, procs, comp, slack in (QUICK_VARIANTS if args.quick else full_variants(case)):
            for seed in seeds:
                jobs.append((case, variant_label(schedule, procs, comp, slack),
                             replace(base, schedule=schedule, processors=procs, compensation=comp, seed=seed,
                                     threads=args.threads, period_slack=slack)))
    if args.variants:
        keep = {v.strip() for v in args.variants.split(",")}
        jobs = [j for j in jobs if j[1] in keep]
    # seed-major order: an interrupted grid has every variant for its first seeds rather than some variants for all
    jobs.sort(key=lambda j: (cases.index(j[0]), seeds.index(j[2].seed)))
    console = Console(stderr=True)
    cached = [json.loads(f.read_text()) for f in sorted((out / "runs").glob("*.json"))] if args.cached_only else []
    schedules_cache: dict[tuple, object] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as prog:
        grid = prog.add_task(f"{mode} grid", total=len(jobs))
        planned = []  # (case, label, cfg, schedule, cache path), in job order
        for case, label, cfg in jobs:
            sched = None
            model = _standin(cfg) if args.standin else None
            used = None
            if args.cached_only and cfg.schedule != "none":
                used = next((d for d in _delays_used(cached, cfg)
                             if (out / "runs" / f"{training_key(cfg, d)}.json").is_file()), None)
            if cfg.schedule != "none" and used is None:
                key = (cfg.network, cfg.schedule, cfg.processors, cfg.batch, cfg.timesteps, cfg.period_slack)
                if key not in schedules_cache:
                    schedules_cache[key] = (_standin_schedule(cfg, model[0]) if args.standin else
                                            build_schedule(cfg, cfg.timesteps or _default_t(cfg)))
                sched = schedules_cache[key]
            delays = used or (None if sched is None or sched.kind != "periodic" else tuple(sched.gradient_delays))
            planned.append((case, label, cfg, sched, out / "runs" / f"{training_key(cfg, delays)}.json"))
        results: dict[int, dict] = {}

        def finish(i: int, res: dict) -> None:
            case, label, cfg, sched, _ = planned[i]
            res.update(schedule=cfg.schedule if sched is None else sched.name,
                       processors=cfg.processors if sched is not None else 1, case=case, variant=label)
            results[i] = res
            prog.advance(grid)
            console.log(f"{case:8s} {label:28s} seed {cfg.seed}: test acc {100 * res['test_accuracy']:.2f}% "
                        f"delays {res['gradient_delays']}")

        todo = []
        for i, (case, label, cfg, _, path) in enumerate(planned):
            if path.is_file():
                finish(i, json.loads(path.read_text()))
            elif args.cached_only:
                console.log(f"missing: {case} {label} seed {cfg.seed}")
                prog.advance(grid)
            else:
                todo.append(i)
        # runs sharing a cache file (equal delays under stashing) are trained once
        first_of: dict[Path, int] = {}
        for i in todo:
            first_of.setdefault(planned[i][4], i)
        unique = sorted(set(first_of.values()))
        if args.workers > 1 and len(unique) > 1:
            # one process per run, torch single-threaded in each: independent runs use the cores side by side
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx) as pool:
                futures = {pool.submit(_train_one, planned[i][2], planned[i][3], args.standin, planned[i][4]): i
                           for i in unique}
                for fut in as_completed(futures):
                    finish(futures[fut], fut.result())
        else:
            for i in unique:
                case, label, cfg, sched, path = planned[i]
                inner = prog.add_task(f"  {case} {label} seed {cfg.seed}", total=None)
                finish(i, _train_one(cfg, sched, args.standin, path, _Hook(prog, inner)))
                prog.remove_task(inner)
        for i in todo:
            if i not in results:  # shared a cache file with an earlier run
                finish(i, json.loads(planned[i][4].read_text()))
    rows = [results[i] for i in sorted(results)]
    budgets = {c: CASES[c]["budget_points"] for c in CASES}
    summary = summarise(rows, budgets)
    write_csv(out / "runs.csv", [{k: v for k, v in r.items() if k != "curve"} for r in rows])
    write_csv(out / "summary.csv", summary)
    write_atomic(out / "summary.md", markdown(summary))
    plot(summary, out / "accuracy.png")
    plot_curves(rows, out / "curves.png")
    sys.stdout.write(markdown(summary))
    return 0


def _train_one(cfg: TrainConfig, sched: object, standin: bool, path: Path, hook: object = None) -> dict:
    """Train one run of the grid and cache its result (atomically) at `path`; also the worker of --workers."""
    model = _standin(cfg) if standin else None
    t0 = time.perf_counter()
    res = train(cfg, schedule=sched, progress=hook, model=model)
    res["standin"] = bool(standin)
    res["wall_seconds"] = round(time.perf_counter() - t0, 1)
    res["curve"] = [{k: h[k] for k in ("epoch", "train_loss", "val_accuracy")} for h in res["history"]]
    res.pop("history", None)
    write_json(path, res)
    return res


def _delays_used(cached: list[dict], cfg: TrainConfig) -> list[tuple[int, ...]]:
    """The delays the cached runs of this schedule were trained with. The schedulers were still being changed
    while the grid ran, so regenerating a schedule later can give other delays than the runs used."""
    seen = [tuple(r["gradient_delays"]) for r in cached
            if (r["network"], r["schedule"], r["processors"], r["batch"], r["epochs"], r.get("period_slack", 0.0)) ==
            (cfg.network, cfg.schedule, cfg.processors, cfg.batch, cfg.epochs, cfg.period_slack)
            and (cfg.limit_train is None or r["train_samples"] == cfg.limit_train)]
    return sorted(set(seen), key=seen.count, reverse=True)


def _standin(cfg: TrainConfig) -> tuple:
    import torch

    sys.path.insert(0, str(HERE.parents[1] / "tests"))
    from train_nets import SmallCNN, TinySNN

    if cfg.dataset == "digits":
        return TinySNN(seed=cfg.seed, timesteps=4, inputs=64, hidden=64, classes=10), torch.zeros(4, 1, 64)
    return SmallCNN(timesteps=4, seed=cfg.seed), torch.zeros(4, 1, 1, 28, 28)


def _standin_schedule(cfg: TrainConfig, net: object) -> object:
    """A chain task graph whose F/B/W costs are the blocks' weight counts (a stand-in for the real workload)."""
    import schedules
    from hwmodels.config import load_cluster
    from spikepipe.ir import chain_graph

    costs = [max(1, sum(p.numel() for p in b.parameters())) for b in net.blocks]
    g = chain_graph([(c, c, c) for c in costs], edge_bytes=1024, batch=cfg.batch)
    return schedules.generate(cfg.schedule, g, load_cluster(cfg.hardware, processors=cfg.processors))


def _default_t(cfg: TrainConfig) -> int:
    from spikepipe import zoo

    _, ex = zoo.build(cfg.network, batch=1)
    return int(ex.shape[0])


class _Hook:
    def __init__(self, prog: Progress, task: object) -> None:
        self.prog, self.task = prog, task

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        self.prog.update(self.task, total=batches * epochs)

    def batch_done(self) -> None:
        self.prog.advance(self.task)

    def epoch_end(self, row: dict) -> None:
        pass


if __name__ == "__main__":
    sys.exit(main())
