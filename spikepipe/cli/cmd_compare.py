"""`spikepipe compare`: every schedule at several processor counts; tables, speedup plot, Gantt charts, trace."""

from __future__ import annotations

import argparse
from pathlib import Path

from spikepipe.cli.cmd_simulate import (
    activity_for,
    add_sim_options,
    apply_method,
    check_zero_skip,
    phased,
    phases_table,
    progress_bar,
    results_table,
    sim_kwargs,
)
from spikepipe.cli.common import Result, add_hardware, add_json, add_network, cluster_from_args, int_list


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
    from spikepipe.cli.common import CliError
    from spikepipe.io import check_writable
    from spikepipe.sim.evaluate import load_graph, resolve_schedules

    procs = sorted(set(args.processors))
    if not procs:
        raise CliError("--processors needs at least one processor count, e.g. 2,4,8,16")
    gantt_p = args.gantt if args.gantt is not None else procs[-1]
    if gantt_p not in procs:
        raise CliError(f"--gantt {gantt_p} is not one of --processors {','.join(map(str, procs))}")
    names = resolve_schedules(args.schedules)
    out = Path(args.out)
    check_writable(out / "results.json")
    # bad hardware or network must fail before the output folder exists (no empty folder left behind), and an
    # unwritable folder before minutes of solving
    clusters = {p: cluster_from_args(args, processors=p) for p in procs}
    graph = apply_method(load_graph(args.network, clusters[procs[0]], args.batch, args.timesteps), args)
    phases = phased(args, ("zero_skip",))
    activity = activity_for(args, graph)
    zero_skip = check_zero_skip(args)  # before the output folder exists
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create output folder {out}: {exc.strerror or exc}; choose a writable --out") from None
    from spikepipe.api.ops import compare_graph

    eval_kwargs = sim_kwargs(args, activity)
    with progress_bar(len(procs) * len(names), "compare") as bar:
        task = bar.add_task("compare", total=len(procs) * len(names))
        result = compare_graph(graph, clusters, names, out=out, gantt_processors=gantt_p,
                               eval_kwargs=eval_kwargs, zero_skip=zero_skip, phased=phases,
                               progress=lambda ev: bar.update(task, description=ev.description, completed=ev.completed))
    summary, files = result.to_dict(), result.files
    reports = summary["reports"]

    def render() -> None:
        from spikepipe.cli.cmd_simulate import wide_console

        console = wide_console()
        for rep in reports:
            console.print(results_table(rep, rep))
            if phases is not None:
                console.print(phases_table(rep))
        console.print(f"wrote {len(files['gantt'])} Gantt charts, speedup plot, trace, CSV and JSON to "
                      f"[bold]{out.resolve()}[/bold]")
        console.print(f"  speedup plot: {files['speedup']}\n  trace (open in ui.perfetto.dev): {files['trace']}\n"
                      f"  energy plot: {files['energy']}\n  table: {files['csv']}")

    return Result(summary, render)
