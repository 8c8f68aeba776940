"""`spikepipe sweep sweep.toml`: a design-space sweep on Dask (LocalCluster or an existing scheduler)."""

from __future__ import annotations

import argparse
from pathlib import Path

from spikepipe.cli.common import Result, add_json, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a grid of points (schedule+simulation or training) on Dask, resumable")
    p.add_argument("spec", help="sweep TOML file ([sweep], [grid], [fixed])")
    p.add_argument("--out", default=None, help="output folder (default results/sweeps/<name>)")
    p.add_argument("--scheduler", default=None, metavar="tcp://host:port",
                   help="address of an existing Dask scheduler (default: a LocalCluster)")
    p.add_argument("--workers", type=positive_int, default=2, help="LocalCluster worker processes (default 2)")
    p.add_argument("--max-points", type=positive_int, default=None,
                   help="stop after this many new points (resume later by running the same command)")
    add_json(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> Result:
    from spikepipe.io import check_writable
    from spikepipe.sweep import load_spec, run_sweep

    spec = load_spec(args.spec)
    out = Path(args.out) if args.out else Path("results") / "sweeps" / spec.name
    check_writable(out / f"{spec.name}.csv")
    total = len(spec.points())
    if args.json:
        outcome = run_sweep(spec, out, scheduler=args.scheduler, workers=args.workers, max_points=args.max_points)
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), transient=False) as bar:
            task = bar.add_task(f"sweep {spec.name}", total=total)
            outcome = run_sweep(spec, out, scheduler=args.scheduler, workers=args.workers,
                                max_points=args.max_points,
                                progress=lambda done, _total: bar.update(task, completed=done))
    from spikepipe.api.contract import sweep_report

    data = sweep_report(spec, outcome)

    def render() -> None:
        print(f"sweep {spec.name}: {outcome.total_points} points, {outcome.computed_points} computed, "
              f"{outcome.cached_points} from cache, {outcome.failed_points} failed in {outcome.wall_s:.1f} s")
        print(f"table: {outcome.table_csv}")

    return Result(data, render)
