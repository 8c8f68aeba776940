"""`spikepipe frontier`: the Pareto set of period against gradient delay for one network on P processors."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from spikepipe.cli.common import Result, add_hardware, add_json, add_network, cluster_from_args, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("frontier", help="period/delay Pareto set: spikepipe at growing period slack and every "
                                        "baseline, replayed and certified")
    add_network(p)
    p.add_argument("--processors", "-P", type=positive_int, required=True, help="number of processors P")
    add_hardware(p)
    p.add_argument("--slacks", default=None, metavar="S1,S2,...",
                   help="period slacks spikepipe is solved at (default: 0,0.02,0.05,0.1,0.2,0.35,0.5,0.75,0.95; "
                        "stops once delay is zero or a zero-delay baseline is shorter)")
    p.add_argument("--deterministic-time", type=float, default=None, metavar="SECONDS",
                   help="CP-SAT deterministic time per spikepipe solve (default 4.25; reproducible on any load)")
    p.add_argument("--out", default=None, metavar="DIR", help="write frontier.json, frontier.csv and frontier.png")
    add_json(p)
    p.set_defaults(handler=run)


def _slacks(text: str | None) -> tuple[float, ...]:
    from spikepipe.cli.common import CliError
    from spikepipe.frontier import SLACKS

    if text is None:
        return SLACKS
    try:
        vals = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise CliError(f"--slacks must be comma-separated fractions in [0, 1), got {text!r}") from None
    if not vals or any(not 0 <= v < 1 for v in vals):
        raise CliError(f"--slacks must be comma-separated fractions in [0, 1), got {text!r}")
    return vals


def run(args: argparse.Namespace) -> Result:
    from spikepipe.cli.cmd_simulate import progress_bar, wide_console
    from spikepipe.cli.common import CliError
    from spikepipe.frontier import frontier, save_frontier_plot
    from spikepipe.io import check_writable, write_csv, write_json
    from spikepipe.sim.evaluate import load_graph

    slacks = _slacks(args.slacks)
    if args.deterministic_time is not None and not args.deterministic_time > 0:
        raise CliError(f"--deterministic-time must be a positive number of seconds, got {args.deterministic_time}")
    out = Path(args.out) if args.out else None
    if out is not None:
        for name in ("frontier.json", "frontier.csv", "frontier.png"):
            check_writable(out / name)
    cluster = cluster_from_args(args, processors=args.processors)
    graph = load_graph(args.network, cluster, args.batch, args.timesteps)
    options = {} if args.deterministic_time is None else {"deterministic_time_s": args.deterministic_time}
    with progress_bar(0, "frontier") as bar:
        task = bar.add_task(f"{graph.name} P={cluster.size}", total=None)
        fr = frontier(graph, cluster, slacks=slacks, options=options,
                      progress=lambda what: bar.update(task, description=f"{graph.name} P={cluster.size}: {what}"))
    data = fr.to_dict()
    files: dict[str, str] = {}
    if out is not None:
        files["json"] = str(write_json(out / "frontier.json", data))
        files["csv"] = str(write_csv(out / "frontier.csv", [_csv_row(p, i == fr.knee)
                                                            for i, p in enumerate(data["points"])]))
        files["png"] = str(save_frontier_plot(out / "frontier.png", fr))

    def render() -> None:
        console = wide_console()
        console.print(_table(data))
        for kind, path in files.items():
            console.print(f"{kind}: {Path(path).resolve()}")

    return Result(data, render)


def _csv_row(p: dict[str, Any], is_knee: bool) -> dict[str, Any]:
    return {**{k: v for k, v in p.items() if k != "gradient_delays"},
            "gradient_delays": " ".join(map(str, p["gradient_delays"])), "knee": is_knee}


def _table(data: dict[str, Any]):
    from rich.table import Table

    from spikepipe.cli.cmd_simulate import gap_cell

    t = Table(title=f"{data['network']} on P={data['processors']}: period/delay frontier (lower bound "
                    f"{data['lower_bound_cycles']:,} cycles); * = knee")
    for col in ("", "period", "speedup", "total delay", "max delay", "gap P/D", "status", "from"):
        t.add_column(col, justify="left" if col in ("", "status", "from") else "right", no_wrap=True)
    for i, p in enumerate(data["points"]):
        src = p["source"] + (f" (slack {p['period_slack']:g})" if p["period_slack"] is not None else "")
        t.add_row("*" if i == data["knee"] else "", f"{p['period_cycles']:,}", f"{p['speedup']:.2f}x",
                  str(p["total_delay"]), str(p["max_delay"]), gap_cell(p), p["status"], src)
    return t
