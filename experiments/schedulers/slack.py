"""Period for delay: spikepipe with period_slack 0, 0.05, 0.1, 0.2 on each network and P.

    .venv/bin/python experiments/schedulers/slack.py [--networks vgg11-28,vgg11,vgg16,resnet18] [--processors 4,8]
        [--slacks 0,0.05,0.1,0.2] [--time-limit 10] [--out experiments/results/schedulers_slack]

With slack s the scheduler may take a period up to (1 + s) x the shortest it found, only to cut the total gradient
delay (phase 2 at the longer period, seeded by the tight period's schedules, so it never adds delay). Writes
slack.csv (period, speedup vs 1-processor sequential, delays per layer, total and max delay, solve status) and
slack.png (total delay against speedup, one line per network and P), with the config and git revision.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

from rich.progress import Progress

from hwmodels.config import load_cluster
from schedules import generate, validate
from spikepipe.io import write_csv, write_json
from spikepipe.sim.evaluate import sequential_period

ROOT = Path(__file__).resolve().parents[2]


def floats(text: str) -> list[float]:
    return [float(t) for t in text.split(",") if t.strip()]


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    procs = sorted({r["processors"] for r in rows})
    nets = sorted({r["network"] for r in rows})
    fig, axes = plt.subplots(1, len(procs), figsize=(5.2 * len(procs), 4.4), squeeze=False)
    for ax, p in zip(axes[0], procs, strict=True):
        for i, net in enumerate(nets):
            pts = sorted((float(r["period_slack"]), float(r["speedup"]), int(r["total_delay"])) for r in rows
                         if (r["network"], r["processors"]) == (net, p))
            ax.plot([x[1] for x in pts], [x[2] for x in pts], marker="o", color=f"C{i}", label=net)
            for slack, x, y in pts:
                ax.annotate(f"{slack:g}", (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7,
                            color=f"C{i}")
        ax.set_xlabel("speedup over 1-processor sequential")
        ax.set_ylabel("total gradient delay (summed over layers)")
        ax.set_title(f"P={p}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("spikepipe: period traded for delay (point labels: period slack)")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", default="vgg11-28,vgg11,vgg16,resnet18")
    ap.add_argument("--processors", default="4,8")
    ap.add_argument("--slacks", default="0,0.05,0.1,0.2")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results" / "schedulers_slack"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    from spikepipe.workload import load_workload

    out = Path(args.out)
    nets = [n for n in args.networks.split(",") if n]
    procs = [int(p) for p in args.processors.split(",") if p]
    slacks = floats(args.slacks)
    rows = []
    with Progress(transient=True) as prog:
        task = prog.add_task("slack grid", total=len(nets) * len(procs) * len(slacks))
        for net in nets:
            graph = load_workload(net, batch=args.batch)
            seq = sequential_period(graph, load_cluster(processors=1))
            for p in procs:
                cluster = load_cluster(processors=p)
                for slack in slacks:
                    s = generate("spikepipe", graph, cluster, time_limit_s=args.time_limit, period_slack=slack)
                    validate(s, graph, cluster)
                    rows.append({"network": net, "processors": p, "period_slack": slack,
                                 "period_cycles": s.period_cycles, "speedup": round(seq / s.period_cycles, 4),
                                 "total_delay": sum(s.gradient_delays), "max_delay": max(s.gradient_delays),
                                 "gradient_delays": " ".join(map(str, s.gradient_delays)),
                                 "period_before_slack_cycles": s.info.get("period_before_slack_cycles"),
                                 "phase2_status": s.info.get("phase2", {}).get("status"),
                                 "source": s.info.get("relabelled_from") or s.info.get("phase2_source"),
                                 "reproducible": s.info.get("reproducible")})
                    prog.advance(task)
    write_csv(out / "slack.csv", rows)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    write_json(out / "config.json", {**vars(args), "git_revision": rev.strip()})
    plot(rows, out / "slack.png")
    print("| network | P | slack | period | speedup | total delay | delays per layer |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['network']} | {r['processors']} | {r['period_slack']:g} | {r['period_cycles']:,} | "
              f"{r['speedup']:.2f} | {r['total_delay']} | {r['gradient_delays']} |")
    print(f"wrote {out}/slack.csv and slack.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
