"""Energy per training minibatch of every way to spread SNN training over P processors: sequential, data-parallel,
1F1B, zero-bubble, PipeDream and SpikePipe at P=2..16 on VGG-11 and ResNet-18, dense (every GEMM a MAC) and at
measured spike activity (GEMMs with a spike operand cost ACs), with the tpu-like-128 preset's cited energies.

    .venv/bin/python experiments/energy/run.py                    # vgg11 + resnet18, P=2,4,8,16
    .venv/bin/python experiments/energy/run.py --networks snn-cnn --processors 2,4

The activity files come from `spikepipe activity` (experiments/energy/activity/NET.json; see experiments/README.md);
a network without one is reported dense only. Each schedule is generated and replayed once; both energies price
that one replay. Writes experiments/results/energy/{energy.csv, energy.png}; --figures copies the PNG.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from hwmodels.config import load_cluster  # noqa: E402
from spikepipe.activity import read_report  # noqa: E402
from spikepipe.energy import CATEGORIES, schedule_energy  # noqa: E402
from spikepipe.io import save_figure, write_csv  # noqa: E402
from spikepipe.sim.evaluate import evaluate_one, load_graph, sequential_period  # noqa: E402

SCHEDULES = ("sequential", "data-parallel", "1f1b", "zero-bubble", "pipedream", "spikepipe")
HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", default="vgg11,resnet18")
    ap.add_argument("--processors", default="2,4,8,16")
    ap.add_argument("--hardware", default="tpu-like-128")
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results" / "energy"))
    ap.add_argument("--figures", action="store_true")
    args = ap.parse_args()
    rows = []
    nets = args.networks.split(",")
    for net in nets:
        act_file = HERE / "activity" / f"{net}.json"
        for p in (int(x) for x in args.processors.split(",")):
            cluster = load_cluster(args.hardware, processors=p)
            graph = load_graph(net, cluster)
            activity = read_report(act_file).for_graph(graph) if act_file.is_file() else None
            seq = sequential_period(graph, cluster)
            for name in SCHEDULES:
                ev = evaluate_one(name, graph, cluster, sequential_cycles=seq, record=False,
                                  options={"time_limit_s": args.time_limit, "workers": 1, "seed": 0}
                                  if name == "spikepipe" else {})
                for label, act in (("dense", None), ("measured", activity)):
                    if label == "measured" and act is None:
                        continue
                    e = schedule_energy(ev.schedule, graph, cluster, ev.sim, act)
                    rows.append({"network": net, "processors": p, "schedule": name, "activity": label,
                                 "speedup": ev.row["speedup"], "period_cycles": ev.schedule.period_cycles,
                                 "simulated_period_cycles": ev.sim.simulated_period_cycles,
                                 "energy_joules": e.total_joules, "energy_delay_product": e.energy_delay_product,
                                 **{f"{c}_joules": v for c, v in e.breakdown().items()},
                                 "max_delay": ev.row["max_delay"]})
                    print(f"{net:9s} P={p:<2d} {name:14s} {label:8s} speedup {ev.row['speedup']:6.2f} "
                          f"energy {e.total_joules * 1e3:9.2f} mJ  EDP {e.energy_delay_product:.3e} J s", flush=True)
    out = Path(args.out)
    csv = write_csv(out / "energy.csv", rows)
    png = save_figure(figure(rows, nets), out / "energy.png")
    print(f"wrote {csv} and {png}")
    if args.figures:
        dst = ROOT / "experiments" / "figures" / "energy_per_schedule.png"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, dst)


def figure(rows: list[dict], nets: list[str]) -> Figure:
    """Per network: energy per minibatch against P (solid dense, dashed measured), and the breakdown at the
    largest P at measured activity."""
    fig = Figure(figsize=(13, 4.8 * len(nets)))
    markers = "osD^v<"
    for r_i, net in enumerate(nets):
        ax = fig.add_subplot(len(nets), 2, 2 * r_i + 1)
        mine = [r for r in rows if r["network"] == net]
        procs = sorted({r["processors"] for r in mine})
        for i, s in enumerate(SCHEDULES):
            for label, style in (("dense", "-"), ("measured", "--")):
                pts = sorted((r["processors"], r["energy_joules"] * 1e3) for r in mine
                             if r["schedule"] == s and r["activity"] == label)
                if pts:
                    ax.plot(*zip(*pts, strict=True), linestyle=style, marker=markers[i], color=f"C{i}",
                            label=f"{s} ({label})", linewidth=2.4 if s == "spikepipe" else 1.2)
        ax.set_xscale("log", base=2)
        ax.set_xticks(procs, [str(p) for p in procs])
        ax.set_xlabel("processors P")
        ax.set_ylabel("energy per training minibatch (mJ)")
        ax.set_title(f"{net}: solid dense, dashed at measured activity", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
        ax2 = fig.add_subplot(len(nets), 2, 2 * r_i + 2)
        pmax = procs[-1]
        label = "measured" if any(r["activity"] == "measured" for r in mine) else "dense"
        bottom = [0.0] * len(SCHEDULES)
        for c_i, cat in enumerate(CATEGORIES):
            vals = [next((r[f"{cat}_joules"] * 1e3 for r in mine if r["schedule"] == s and r["processors"] == pmax
                          and r["activity"] == label), 0.0) for s in SCHEDULES]
            ax2.bar(range(len(SCHEDULES)), vals, bottom=bottom, label=cat, color=f"C{c_i}")
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax2.set_xticks(range(len(SCHEDULES)), SCHEDULES, rotation=20, fontsize=8)
        ax2.set_ylabel("mJ per minibatch")
        ax2.set_title(f"{net}, P={pmax}, {label} activity: breakdown", fontsize=10)
        ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
