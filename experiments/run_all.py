"""`make experiments`: regenerate every figure and table, one experiment after another, with progress.

    .venv/bin/python experiments/run_all.py             # the full set (long: training runs take most of it)
    .venv/bin/python experiments/run_all.py --quick     # every experiment in its quick form
    .venv/bin/python experiments/run_all.py --only speedup,scalesim

Each experiment writes CSV/JSON + PNG (and its config and git revision) under experiments/results/; the PNGs named in
FIGURES are then copied to experiments/figures/ (small, committed, shown in experiments/README.md). A failing
experiment is reported and the others still run; the exit status is non-zero if any failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
RES = ROOT / "experiments" / "results"
SCALESIM_PY = ROOT / ".scalesim-venv" / "bin" / "python"


def steps(quick: bool) -> list[tuple[str, list[str], str | None]]:
    """(name, command, requirement) — requirement 'scalesim' means the separate SCALE-Sim venv must exist."""
    q = ["--quick"] if quick else []
    workers = max(1, min(4, os.cpu_count() or 1))
    return [
        ("scalesim", [PY, "experiments/scalesim_validation/plot.py"], None),
        ("cycle_bench", [PY, "experiments/cycle_bench/run.py"] + (["--repeat", "200"] if quick else []), "scalesim"),
        ("speedup", [PY, "experiments/speedup/run.py", *q], None),
        ("schedulers", [PY, "experiments/schedulers/run.py", "--simulate"]
         + (["--networks", "snn-cnn,vgg11", "--time-limit", "5"] if quick else ["--processors", "2,4,8,16,32"]), None),
        ("schedulers_slack", [PY, "experiments/schedulers/slack.py"]
         + (["--networks", "vgg11-28,vgg11", "--slacks", "0,0.1", "--time-limit", "5"] if quick else []), None),
        ("sim_bench", [PY, "experiments/sim_bench/run.py"] + (["--iterations", "200"] if quick else []), None),
        ("frontend_bench", [PY, "experiments/frontend_bench/run.py"], None),
        ("scale_test", [PY, "experiments/scale_test/run.py"] + (["--layers", "60", "--processors", "16"] if quick else []),
         None),
        ("sweep_bench", [PY, "experiments/sweep_bench/run.py", "--repeats", "1" if quick else "2"], None),
        # independent training runs: one process per core (results equal the serial run's, seeds fixed)
        ("accuracy_under_delay", [PY, "experiments/accuracy_under_delay/run.py", *q, "--workers", str(workers)], None),
        ("training_methods", [PY, "experiments/training_methods/run.py", *q], None),
        # energy and on-chip networks (issue 18); the activity files are committed in experiments/energy/activity/
        ("energy_sj", [PY, "experiments/energy/sj_compare.py"], None),
        ("energy", [PY, "experiments/energy/run.py"]
         + (["--networks", "vgg11", "--processors", "2,8", "--time-limit", "5"] if quick else []), None),
        ("topology", [PY, "experiments/topology/run.py"]
         + (["--network", "vgg11-28", "--time-limit", "5"] if quick else []), None),
    ]


# PNGs (relative to experiments/, {mode} is quick or full) copied to experiments/figures/ under the given name
FIGURES = {
    "speedup": [(f"results/speedup/{n}.png", f"{n}.png") for n in
                ("speedup_128x128_os", "ratio_over_pipedream", "comm_share", "delays_per_layer", "speedup_hardware")],
    "scalesim": [("results/scalesim_validation/cycle_model_vs_scalesim.png", "cycle_model_vs_scalesim.png")],
    "schedulers_slack": [("results/schedulers_slack/slack.png", "schedulers_slack.png")],
    "accuracy_under_delay": [("accuracy_under_delay/results/{mode}/curves.png", "accuracy_under_delay_curves.png"),
                             ("accuracy_under_delay/results/{mode}/accuracy.png", "accuracy_under_delay.png")],
    "training_methods": [(f"results/training_methods/{{mode}}/{n}.png", f"training_methods_{n}.png")
                         for n in ("memory", "steptime", "maxt", "accuracy", "sim")],
    "energy": [("results/energy/energy.png", "energy_per_schedule.png")],
    "topology": [("results/topology/topology.png", "topology.png")],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=None, help="comma list of experiment names")
    args = ap.parse_args()
    todo = steps(args.quick)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {n for n, _, _ in todo}
        if unknown:
            print(f"error: unknown experiments {sorted(unknown)}; known: {[n for n, _, _ in todo]}", file=sys.stderr)
            return 2
        todo = [s for s in todo if s[0] in wanted]
    from rich.console import Console

    console = Console()
    failed, log_dir = [], RES / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    for i, (name, cmd, need) in enumerate(todo, 1):
        script = ROOT / cmd[1]
        if not script.is_file():
            console.print(f"[yellow]({i}/{len(todo)}) {name}: skipped, {cmd[1]} does not exist[/]")
            continue
        if need == "scalesim" and not SCALESIM_PY.exists():
            console.print(f"[yellow]({i}/{len(todo)}) {name}: skipped, needs the SCALE-Sim venv "
                          f"(python3 -m venv .scalesim-venv && .scalesim-venv/bin/pip install scalesim==3.0.0 'numpy<2.4')[/]")
            continue
        t0 = time.perf_counter()
        with console.status(f"({i}/{len(todo)}) {name}: {' '.join(c for c in cmd[1:])}"):
            with open(log_dir / f"{name}.log", "w") as log:
                rc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
        dt = time.perf_counter() - t0
        if rc:
            failed.append(name)
            console.print(f"[red]({i}/{len(todo)}) {name}: FAILED (exit {rc}) after {dt:.0f} s; log {log_dir / name}.log[/]")
            continue
        console.print(f"[green]({i}/{len(todo)}) {name}: done in {dt:.0f} s[/]")
        # quick runs use cut grids and data: they must not replace the committed figures of the full runs
        if not args.quick:
            for rel, dest in FIGURES.get(name, []):
                src = ROOT / "experiments" / rel.format(mode="full")
                if src.is_file():
                    (ROOT / "experiments" / "figures").mkdir(exist_ok=True)
                    shutil.copy(src, ROOT / "experiments" / "figures" / dest)
    if failed:
        console.print(f"[red]{len(failed)} experiment(s) failed: {', '.join(failed)}[/]")
        return 1
    where = "results only (quick: experiments/figures/ untouched)" if args.quick else "figures in experiments/figures/"
    console.print(f"all done; results under {RES} and experiments/*/results/, {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
