"""`spikepipe compare`: every schedule at several processor counts; tables, speedup plot, Gantt charts, trace."""

from __future__ import annotations

import argparse
from pathlib import Path

from spikepipe.cli.cmd_simulate import (
    add_sim_options,
    check_zero_skip,
    phased,
    phases_table,
    progress_events,
    results_table,
    sim_keywords,
)
from spikepipe.cli.common import Result, add_hardware, add_json, add_network, int_list


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare all schedules at several processor counts (tables, plots, trace)")
    add_network(p)
    p.add_argument("--processors", "-P", type=int_list, default=[2, 4, 8, 16], metavar="P1,P2,...",
                   help="processor counts (default 2,4,8,16)")
    p.add_argument("--schedules", default="all", metavar="NAME,...|all", help="schedules to compare (default all)")
    p.add_argument("--out", default="results/compare", metavar="DIR", help="output folder (default results/compare)")
    p.add_argument("--gantt", type=int, default=None, metavar="P",
                   help="draw Gantt charts at this processor count (default: the largest)")
    add_hardware(p)
    add_sim_options(p)
    add_json(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> Result:
    """Parse, call the API's `compare` (the whole comparison, its checks and its files), print."""
    from spikepipe.api.inputs import Workload, hardware
    from spikepipe.api.ops import compare
    from spikepipe.cli.common import CliError
    from spikepipe.cli.method_args import method_options
    from spikepipe.sim.evaluate import resolve_schedules

    # in the flags' own words, before any work: the API checks the same under its keywords' names
    procs = sorted(set(args.processors))
    if not procs:
        raise CliError("--processors needs at least one processor count, e.g. 2,4,8,16")
    gantt_p = args.gantt if args.gantt is not None else procs[-1]
    if gantt_p not in procs:
        raise CliError(f"--gantt {gantt_p} is not one of --processors {','.join(map(str, procs))}")
    check_zero_skip(args)
    phases = phased(args, ("zero_skip",))  # BlocTrain: one task graph per phase, which zero-skip does not fit
    hw = hardware(args.hardware, array=args.array, dataflow=args.dataflow)
    net = Workload(args.network, args.network, batch=args.batch, timesteps=args.timesteps)
    total = len(procs) * len(resolve_schedules(args.schedules))
    with progress_events(total, "compare") as progress:
        result = compare(net, hw, processors=procs, schedules=args.schedules, out=Path(args.out),
                         gantt_processors=gantt_p, zero_skip=args.zero_skip, activity=args.activity or None,
                         method=method_options(args), **sim_keywords(args), progress=progress)
    out = Path(args.out)
    summary, files = result.to_dict(), result.files
    reports = summary["reports"]

    def render() -> None:
        from spikepipe.cli.cmd_simulate import wide_console

        console = wide_console()
        for rep in reports:
            console.print(results_table(rep, rep))
            if phases is not None:
                console.print(phases_table(rep))
            if phases is not None:
                console.print(phases_table(rep))
        console.print(f"wrote {len(files['gantt'])} Gantt charts, speedup plot, trace, CSV and JSON to "
                      f"[bold]{out.resolve()}[/bold]")
        console.print(f"  speedup plot: {files['speedup']}\n  trace (open in ui.perfetto.dev): {files['trace']}\n"
                      f"  energy plot: {files['energy']}\n  table: {files['csv']}")

    return Result(summary, render)
