"""`spikepipe compare`: every schedule at several processor counts; tables, speedup plot, Gantt charts, trace."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from spikepipe.cli.cmd_simulate import (
    activity_for,
    add_sim_options,
    add_zero_skip,
    apply_method,
    contract_report,
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
    from spikepipe.io import check_writable, write_csv, write_json
    from spikepipe.plots import save_energy, save_gantt, save_speedup
    from spikepipe.sim.evaluate import evaluate_graph, load_graph, resolve_schedules
    from spikepipe.trace import write_trace

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
    activity = activity_for(args, graph)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create output folder {out}: {exc.strerror or exc}; choose a writable --out") from None
    reports: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    files: dict[str, Any] = {"gantt": []}
    ideal: dict[int, float] = {}
    with progress_bar(len(procs) * len(names), "compare") as bar:
        task = bar.add_task("compare", total=len(procs) * len(names))
        for i, p in enumerate(procs):
            cluster = clusters[p]
            label = f"{graph.name} P={p}"

            def step(name: str, label: str = label, base: int = i * len(names)) -> None:
                bar.update(task, description=f"{label}: {name}", completed=base + names.index(name))

            report, evals = evaluate_graph(graph, cluster, names, progress=step, activity=activity,
                                           **sim_kwargs(args))
            add_zero_skip(report, graph, cluster, names, activity, args)
            data = contract_report(report)
            reports.append({**data, "sequential_cycles": report["sequential_cycles"]})
            rows += [{"network": graph.name, "processors": p, "lower_bound_cycles": data["lower_bound_cycles"], **r}
                     for r in data["results"]]
            ideal[p] = report["ideal_speedup"]
            bar.update(task, completed=(i + 1) * len(names))
            if p == gantt_p:
                bar.update(task, description=f"{label}: plots")
                for e in evals:
                    path = out / f"gantt_{e.schedule.name}_P{p}.png"
                    files["gantt"].append(str(save_gantt(path, e.schedule, e.sim, network=graph.name,
                                                         num_layers=graph.num_layers)))
                files["trace"] = str(write_trace(out / f"trace_P{p}.json",
                                                 [(f"{e.schedule.name} P={p}", e.sim) for e in evals],
                                                 freq_hz=cluster.processors[0].freq_hz))
    ok_rows = [r for r in rows if not r.get("error")]
    files["speedup"] = str(save_speedup(out / "speedup.png", ok_rows, ideal, network=graph.name,
                                        subtitle=f"B={graph.batch}, T={graph.timesteps}, "
                                                 f"{len(names)} schedules, replayed in SimPy"))
    files["energy"] = str(save_energy(out / "energy.png", ok_rows, network=graph.name,
                                      subtitle=f"B={graph.batch}, T={graph.timesteps}, per-operation energies of "
                                               "the hardware's [energy] table"))
    files["csv"] = str(write_csv(out / "results.csv", rows))
    summary = {"network": graph.name, "processors": procs, "batch": graph.batch, "timesteps": graph.timesteps,
               "reports": reports, "files": files}
    files["json"] = str(write_json(out / "results.json", summary))

    def render() -> None:
        from spikepipe.cli.cmd_simulate import wide_console

        console = wide_console()
        for rep in reports:
            console.print(results_table(rep, rep))
        console.print(f"wrote {len(files['gantt'])} Gantt charts, speedup plot, trace, CSV and JSON to "
                      f"[bold]{out.resolve()}[/bold]")
        console.print(f"  speedup plot: {files['speedup']}\n  trace (open in ui.perfetto.dev): {files['trace']}\n"
                      f"  energy plot: {files['energy']}\n  table: {files['csv']}")

    return Result(summary, render)
