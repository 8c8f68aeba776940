"""`spikepipe tasks`: the costed task graph (F, B and, for a layer with weights, W per layer; edges with bytes) of one
minibatch."""

from __future__ import annotations

import argparse

from spikepipe.cli.common import Result, add_hardware, add_json, add_network, cluster_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="trace a network and list its F/B/W tasks with cycles, and the edges with bytes")
    add_network(p)
    add_hardware(p)
    add_json(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> Result:
    from spikepipe.workload import load_workload

    proc = cluster_from_args(args, processors=1).processors[0]
    graph = load_workload(args.network, batch=args.batch, timesteps=args.timesteps, processor=proc)
    from spikepipe.api.contract import tasks_report

    data = tasks_report(graph, proc)

    def render() -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{graph.name}: B={graph.batch}, T={graph.timesteps}, {data['processor']['array']} "
                            f"{data['processor']['dataflow'].upper()}")
        how = graph.layout_info()
        for col, just in (("layer", "right"), ("name", "left"), ("shape", "left"), ("F cycles", "right"),
                          ("B cycles", "right"), ("W cycles", "right"), ("out bytes", "right"),
                          ("held bytes", "right")):
            table.add_column(col, justify=just)  # type: ignore[arg-type]
        out_bytes = {u: b for u, v, b in graph.edges if u[0] == "F" and v[0] == "F"}
        for s in graph.layers:
            i = s.index
            shape = "x".join(map(str, s.in_shape)) + " -> " + "x".join(map(str, s.output_shape))
            table.add_row(str(i), s.name, shape, f"{graph.cycles(f'F{i}'):,}", f"{graph.cycles(f'B{i}'):,}",
                          f"{graph.cycles(f'W{i}'):,}" if graph.has_task(i, "W") else "-",  # no weights: no W
                          f"{out_bytes.get(f'F{i}', 0):,}",
                          f"{graph.task(f'F{i}').activation_bytes:,}")
        con = Console()
        if how:
            con.print(f"layout {how.get('layout')}: T={graph.timesteps} from {how.get('timesteps_source')}; "
                      f"B={graph.batch} from {how.get('batch_source')}")
        con.print(table)
        skips = [f"{u}->{v}" for u, v, _ in graph.edges if u[0] == v[0] == "F" and int(v[1:]) != int(u[1:]) + 1]
        con.print(f"{len(data['tasks'])} tasks, {len(data['edges'])} edges, total {data['total_cycles']:,} cycles"
                  + (f"; skip edges: {', '.join(skips)}" if skips else ""))

    return Result(data, render)
