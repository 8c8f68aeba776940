"""Schedules on the on-chip networks chips are built with: spikepipe, pipedream, 1f1b and data-parallel on
all-to-all, switch, ring, mesh and torus at P=16 (4x4 grid), at two link bandwidths; speedup and energy.

    .venv/bin/python experiments/topology/run.py                 # vgg11, P=16, 64 and 8 B/cycle links
    .venv/bin/python experiments/topology/run.py --network snn-cnn --processors 8

Writes experiments/results/topology/{topology.csv, topology.png}; --figures copies the PNG to experiments/figures/.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from hwmodels import Cluster  # noqa: E402
from hwmodels.config import load_cluster  # noqa: E402
from spikepipe.io import save_figure, write_csv  # noqa: E402
from spikepipe.sim.evaluate import evaluate_graph, load_graph  # noqa: E402

TOPOLOGIES = ("all-to-all", "switch", "ring", "mesh", "torus")
SCHEDULES = ("spikepipe", "pipedream", "1f1b", "data-parallel")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", default="vgg11")
    ap.add_argument("--processors", type=int, default=16)
    ap.add_argument("--bandwidths", default="64,8", help="link bytes per cycle, comma list")
    ap.add_argument("--hardware", default="tpu-like-128")
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results" / "topology"))
    ap.add_argument("--figures", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    base = load_cluster(args.hardware, processors=args.processors)
    graph = load_graph(args.network, base)
    rows = []
    for bw in [float(b) for b in args.bandwidths.split(",")]:
        for topo in TOPOLOGIES:
            net = replace(base.interconnect, topology=topo, link_bytes_per_cycle=bw, grid=None, placement=None)
            cluster = Cluster(base.processors, net)
            report = evaluate_graph(graph, cluster, SCHEDULES, record=False,
                                    options={"time_limit_s": args.time_limit, "workers": 1, "seed": 0}).report
            for r in report["results"]:
                rows.append({"network": graph.name, "processors": cluster.size, "topology": topo,
                             "link_bytes_per_cycle": bw, "schedule": r["schedule"], "speedup": r["speedup"],
                             "period_cycles": r["period_cycles"], "simulated_period_cycles": r["simulated_period_cycles"],
                             "comm_fraction": r["comm_fraction"], "energy_joules": r["energy_joules"],
                             "link_joules": r["energy_breakdown_joules"]["link"],
                             "energy_delay_product": r["energy_delay_product"], "max_delay": r["max_delay"]})
                print(f"bw={bw:g} {topo:10s} {r['schedule']:14s} speedup {r['speedup']:6.2f}  "
                      f"energy {r['energy_joules'] * 1e3:8.2f} mJ  link {r['energy_breakdown_joules']['link'] * 1e3:7.3f} mJ",
                      flush=True)
            for e in report["errors"]:
                print(f"bw={bw:g} {topo}: {e['schedule']} failed: {e['error']}", flush=True)
    csv = write_csv(out / "topology.csv", rows)
    png = save_figure(figure(rows, graph, args.processors), out / "topology.png")
    print(f"wrote {csv} and {png}")
    if args.figures:
        dst = ROOT / "experiments" / "figures" / "topology.png"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, dst)


def figure(rows: list[dict], graph, processors: int) -> Figure:
    bws = sorted({r["link_bytes_per_cycle"] for r in rows}, reverse=True)
    fig = Figure(figsize=(6 * len(bws), 8))
    width = 0.8 / len(SCHEDULES)
    for col, bw in enumerate(bws):
        for row, (key, label) in enumerate((("speedup", "speedup over sequential"),
                                            ("energy_joules", "energy per minibatch (mJ)"))):
            ax = fig.add_subplot(2, len(bws), row * len(bws) + col + 1)
            for i, s in enumerate(SCHEDULES):
                vals = [next((r[key] for r in rows if r["schedule"] == s and r["topology"] == t
                              and r["link_bytes_per_cycle"] == bw), 0.0) for t in TOPOLOGIES]
                vals = [v * 1e3 for v in vals] if key == "energy_joules" else vals
                ax.bar([x + (i - (len(SCHEDULES) - 1) / 2) * width for x in range(len(TOPOLOGIES))], vals, width,
                       label=s, color="black" if s == "spikepipe" else None)
            ax.set_xticks(range(len(TOPOLOGIES)), TOPOLOGIES)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3, axis="y")
            if row == 0:
                ax.set_title(f"links {bw:g} B/cycle")
        if col == len(bws) - 1:
            ax.legend(fontsize=8)
    fig.suptitle(f"{graph.name}, P={processors} (4x4 grid for mesh/torus), B={graph.batch}, T={graph.timesteps}",
                 fontsize=10)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
