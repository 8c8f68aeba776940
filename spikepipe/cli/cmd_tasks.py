"""`spikepipe tasks`: the costed task graph (F, B, W per layer; edges with bytes) of one minibatch."""

from __future__ import annotations

import argparse
from typing import Any

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
    data: dict[str, Any] = graph.to_dict()
    by_id = {t.id: t for t in graph.tasks}
    for row in data["tasks"]:
        t = by_id[row["id"]]
        row["gemms"] = [{"m": g.m, "k": g.k, "n": g.n, "groups": g.groups, "batch_dim": g.batch_dim}
                        for g in t.gemms]
        row["vector"] = [{"op": v.op, "elements": v.elements, "timesteps": v.timesteps} for v in t.vector]
    data["layers"] = [{"index": s.index, "name": s.name, "op": s.op, "in_shape": list(s.in_shape),
                       "out_shape": list(s.out_shape), "output_shape": list(s.output_shape),
                       "kernel": list(s.kernel), "stride": list(s.stride), "padding": list(s.padding),
                       "groups": s.groups, "inputs": list(s.inputs), "neuron": s.neuron is not None,
                       "neuron_kind": s.neuron.kind if s.neuron is not None else None, "modules": list(s.modules),
                       "has_weights": s.has_weights, "per_step": s.per_step,
                       "post_ops": [p.kind if p.source is None else f"{p.kind}({p.source})" for p in s.post_ops],
                       "weight_bytes": m.weight_bytes, "optimizer_bytes": m.optimizer_bytes}
                      for s, m in zip(graph.layers, graph.memory, strict=True)]
    arr = proc.array
    data["processor"] = {"array": f"{arr.rows}x{arr.cols}", "dataflow": arr.dataflow.value,
                         "vector_lanes": proc.vector.lanes, "word_bytes": proc.word_bytes}
    data["total_cycles"] = graph.total_cycles()

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
                          f"{graph.cycles(f'W{i}'):,}", f"{out_bytes.get(f'F{i}', 0):,}",
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
