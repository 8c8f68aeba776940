"""Speedup vs processors for every schedule, SpikePipe's ratio over standard pipelining, communication share and
gradient delays: one Dask sweep (cached, resumable) and the figures drawn from its table.

    .venv/bin/python experiments/speedup/run.py            # full grid: 4 networks x P=1..32 x 2 arrays x 3 dataflows
    .venv/bin/python experiments/speedup/run.py --quick    # snn-cnn + vgg11, P=2..16, 128x128 OS

Writes experiments/results/speedup/{speedup.csv, split.csv, *.png, config.json}; small copies of the PNGs go to
experiments/figures/ with --figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn  # noqa: E402

from schedules.registry import names as schedule_names  # noqa: E402
from spikepipe.io import save_figure, write_json  # noqa: E402
from spikepipe.sweep import run_sweep, spec_from_dict  # noqa: E402

PIPELINES = ("gpipe", "1f1b", "interleaved-1f1b", "zero-bubble", "pipedream", "layerpipe")


def grids(quick: bool, time_limit: float, override: dict[str, list] | None = None) -> tuple[dict, dict]:
    nets = ["snn-cnn", "vgg11"] if quick else ["snn-cnn", "vgg11", "vgg16", "resnet18"]
    procs = [2, 4, 8, 16] if quick else [1, 2, 4, 8, 16, 32]
    arrays = ["128x128"] if quick else ["128x128", "32x32"]
    flows = ["os"] if quick else ["os", "ws", "is"]
    o = override or {}
    nets, procs, arrays, flows = (o.get("networks") or nets, o.get("processors") or procs,
                                  o.get("arrays") or arrays, o.get("dataflows") or flows)
    main = {"sweep": {"name": "speedup", "kind": "simulate"},
            "grid": {"network": nets, "processors": procs, "array": arrays, "dataflow": flows,
                     "schedule": [s for s in schedule_names() if s != "list"]},
            "fixed": {"time_limit_s": time_limit, "seed": 0}}
    split = {"sweep": {"name": "split", "kind": "simulate"},
             "grid": {"network": nets, "processors": procs, "array": ["128x128"], "dataflow": ["os"]},
             "fixed": {"schedule": "spikepipe", "split": True, "time_limit_s": time_limit,
                       "seed": 0}}
    return main, split


def _markdown(df: pd.DataFrame) -> str:
    """A markdown table without pandas' optional tabulate dependency (not installed by `make`)."""
    def cell(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    rows = [" | ".join(map(str, df.columns)), " | ".join("---" for _ in df.columns)]
    rows += [" | ".join(cell(v) for v in r) for r in df.itertuples(index=False)]
    return "\n".join(f"| {r} |" for r in rows)


def sweep(spec_dict: dict, out: Path, workers: int) -> pd.DataFrame:
    spec = spec_from_dict(spec_dict)
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn()) as bar:
        task = bar.add_task(f"sweep {spec.name}", total=len(spec.points()))
        outcome = run_sweep(spec, out, workers=workers, progress=lambda d, _t: bar.update(task, completed=d))
    print(f"{spec.name}: {outcome.computed_points} computed, {outcome.cached_points} cached, "
          f"{outcome.failed_points} failed -> {outcome.table_csv}")
    df = pd.read_csv(outcome.table_csv)
    return df[df["status"] == "ok"].copy()


def plot_speedup(df: pd.DataFrame, out: Path, split: pd.DataFrame | None = None, array: str = "128x128",
                 flow: str = "os") -> Path:
    sub = df[(df["array"] == array) & (df["dataflow"] == flow)]
    nets = list(dict.fromkeys(sub["network"]))
    fig, axes = plt.subplots(1, len(nets), figsize=(4.2 * len(nets), 4), squeeze=False)
    for ax, net in zip(axes[0], nets, strict=True):
        d = sub[sub["network"] == net]
        for name in dict.fromkeys(d["schedule"]):
            s = d[d["schedule"] == name].sort_values("processors")
            ax.plot(s["processors"], s["speedup"], marker="o", ms=3, lw=2.5 if name == "spikepipe" else 1.2,
                    color="black" if name == "spikepipe" else None, label=name)
        if split is not None and not split.empty:
            s = split[split["network"] == net].sort_values("processors")
            ax.plot(s["processors"], s["speedup"], "k--", marker="x", ms=4, lw=2, label="spikepipe + split")
        ref = d.groupby("processors").first().reset_index()
        ax.plot(ref["processors"], ref["sequential_cycles"] / ref["lower_bound_cycles"], "r--", lw=1,
                label="bound (seq / lower bound)")
        ax.plot(ref["processors"], ref["processors"], ":", color="grey", lw=1, label="linear (P)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("processors P")
        ax.set_title(net)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("speedup over 1-processor sequential")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle(f"Simulated speedup vs P ({array} {flow.upper()}, B=32, T=4)")
    return save_figure(fig, out / f"speedup_{array}_{flow}.png")


def plot_hardware(df: pd.DataFrame, out: Path) -> Path | None:
    """One row per schedule, one column per network, one colour per array and dataflow (the same in every panel)."""
    names = ["spikepipe", "pipedream", "data-parallel"]
    hw = df[df["schedule"].isin(names)]
    combos = sorted({(a, f) for a, f in zip(hw["array"], hw["dataflow"], strict=True)})
    if len(combos) < 2:
        return None
    colour = {c: plt.cm.tab10(i) for i, c in enumerate(combos)}
    nets = list(dict.fromkeys(hw["network"]))
    fig, axes = plt.subplots(len(names), len(nets), figsize=(3.6 * len(nets), 2.6 * len(names)), squeeze=False,
                             sharex=True, layout="constrained")
    for i, name in enumerate(names):
        for j, net in enumerate(nets):
            ax, d = axes[i][j], hw[(hw["network"] == net) & (hw["schedule"] == name)]
            for (arr, flow), s in d.groupby(["array", "dataflow"]):
                s = s.sort_values("processors")
                ax.plot(s["processors"], s["speedup"], marker=".", lw=1.2, color=colour[(arr, flow)],
                        label=f"{arr} {flow.upper()}")
            ax.set_xscale("log", base=2)
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(net)
            if j == 0:
                ax.set_ylabel(f"{name}\nspeedup")
            if i == len(names) - 1:
                ax.set_xlabel("processors P")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, title="array, dataflow")
    fig.suptitle("Simulated speedup over the 1-processor sequential run, per array and dataflow")
    return save_figure(fig, out / "speedup_hardware.png")


def ratio_table(df: pd.DataFrame, split: pd.DataFrame | None) -> pd.DataFrame:
    d = df[(df["array"] == "128x128") & (df["dataflow"] == "os")]
    rows = []
    for (net, p), g in d.groupby(["network", "processors"]):
        per = dict(zip(g["schedule"], g["simulated_period_cycles"], strict=True))
        if "spikepipe" not in per or p == 1:
            continue
        best = min(per[s] for s in PIPELINES if s in per)
        row = {"network": net, "P": p, "spikepipe_speedup": round(per["sequential"] / per["spikepipe"]
                                                                   if "sequential" in per else float("nan"), 3),
               "over_pipedream": round(per["pipedream"] / per["spikepipe"], 3),
               "over_best_pipeline": round(best / per["spikepipe"], 3),
               "data_parallel_over_spikepipe": round(per["spikepipe"] / per["data-parallel"], 3)}
        if split is not None and not split.empty:
            s = split[(split["network"] == net) & (split["processors"] == p)]
            if not s.empty:
                row["split_speedup"] = round(float(s["speedup"].iloc[0]), 3)
                row["split_over_pipedream"] = round(per["pipedream"] / float(s["simulated_period_cycles"].iloc[0]), 3)
        rows.append(row)
    return pd.DataFrame(rows)


def plot_ratio(tab: pd.DataFrame, out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.8))
    nets = list(dict.fromkeys(tab["network"]))
    ps = sorted(tab["P"].unique())
    w = 0.8 / len(ps)
    for j, p in enumerate(ps):
        vals = [tab[(tab["network"] == n) & (tab["P"] == p)]["over_pipedream"].mean() for n in nets]
        ax.bar([i + j * w for i in range(len(nets))], vals, w, label=f"P={p}")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks([i + w * (len(ps) - 1) / 2 for i in range(len(nets))], nets)
    ax.set_ylabel("period(pipedream) / period(spikepipe)")
    ax.set_title("SpikePipe over standard inter-layer pipelining (PipeDream), 128x128 OS")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, out / "ratio_over_pipedream.png")


def plot_comm(df: pd.DataFrame, out: Path) -> Path:
    d = df[(df["array"] == "128x128") & (df["dataflow"] == "os") & (df["processors"] > 1)]
    g = d.groupby("schedule")["comm_fraction"].mean().sort_values()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh(g.index, 100 * g.values, color=["black" if s == "spikepipe" else "tab:blue" for s in g.index])
    ax.set_xlabel("communication share of time (%), mean over networks and P")
    ax.set_title("Communication overhead per schedule (transfers overlap compute)")
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, out / "comm_share.png")


def plot_delays(out: Path, network: str = "vgg11", p: int = 8) -> Path:
    res = subprocess.run([sys.executable, "-m", "spikepipe", "simulate", "--network", network, "--processors",
                          str(p), "--schedule", "pipedream,layerpipe,spikepipe,gpipe", "--json"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    data = json.loads(res.stdout)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for r in data["results"]:
        ax.plot(range(len(r["gradient_delays"])), r["gradient_delays"], marker="o", label=r["schedule"],
                lw=2.5 if r["schedule"] == "spikepipe" else 1.2)
    ax.set_xlabel("layer")
    ax.set_ylabel("gradient delay (weight updates)")
    ax.set_title(f"Gradient delay per layer, {network}, P={p}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    write_json(out / f"delays_{network}_P{p}.json", data)
    return save_figure(fig, out / "delays_per_layer.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--time-limit", type=float, default=5.0, help="CP-SAT seconds per spikepipe point")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results" / "speedup"))
    ap.add_argument("--figures", action="store_true", help="copy the PNGs to experiments/figures/")
    ap.add_argument("--networks", default=None, help="comma list (overrides the grid)")
    ap.add_argument("--processors", default=None, help="comma list of P (overrides the grid)")
    ap.add_argument("--arrays", default=None, help="comma list of RxC (overrides the grid)")
    ap.add_argument("--dataflows", default=None, help="comma list of os,ws,is (overrides the grid)")
    args = ap.parse_args()
    out = Path(args.out)
    override = {k: [int(x) if k == "processors" else x for x in v.split(",")]
                for k, v in (("networks", args.networks), ("processors", args.processors),
                             ("arrays", args.arrays), ("dataflows", args.dataflows)) if v}
    main_spec, split_spec = grids(args.quick, args.time_limit, override)
    df = sweep(main_spec, out, args.workers)
    split = sweep(split_spec, out, args.workers)
    pngs = [plot_speedup(df, out, split), plot_ratio(tab := ratio_table(df, split), out), plot_comm(df, out),
            plot_delays(out)]
    hw = plot_hardware(df, out)
    if hw:
        pngs.append(hw)
    tab.to_csv(out / "ratio_table.csv", index=False)
    print(_markdown(tab))
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    write_json(out / "config.json", {"main": main_spec, "split": split_spec, "git_revision": rev.strip()})
    if args.figures:
        figs = ROOT / "experiments" / "figures"
        figs.mkdir(exist_ok=True)
        for p in pngs:
            shutil.copy(p, figs / p.name)
    for p in pngs:
        print(f"figure: {p}")


if __name__ == "__main__":
    main()
