"""`spikepipe networks`: the built-in networks of the zoo."""

from __future__ import annotations

import argparse

from spikepipe.cli.common import Result, add_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("networks", help="list the built-in networks (use with --network)")
    add_json(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> Result:
    from spikepipe import zoo
    from spikepipe.api.contract import networks_report

    data = networks_report()
    infos = [zoo.info(n) for n in data["networks"]]

    def render() -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="built-in networks (spikepipe tasks --network NAME)")
        for col in ("name", "input", "classes", "T", "B", "description"):
            table.add_column(col)
        for i in infos:
            table.add_row(i.name, "x".join(map(str, i.input_shape)), str(i.num_classes), str(i.timesteps),
                          str(i.batch), i.description)
        Console().print(table)

    return Result(data, render)
