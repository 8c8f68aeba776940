"""`spikepipe cycles`: cycles of one GEMM on one processor's systolic array."""

from __future__ import annotations

import argparse

from spikepipe.cli.common import Result, add_hardware, add_json, cluster_from_args, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cycles", help="cycles of a GEMM C[MxN] = A[MxK] B[KxN] on the systolic array")
    p.add_argument("--m", type=positive_int, required=True, help="rows of A and C")
    p.add_argument("--k", type=positive_int, required=True, help="reduction dimension")
    p.add_argument("--n", type=positive_int, required=True, help="columns of B and C")
    p.add_argument("--model", choices=("analytic", "stepping"), default="analytic",
                   help="analytic model (default) or the cycle-stepping simulation (small shapes)")
    add_hardware(p)
    add_json(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> Result:
    proc = cluster_from_args(args, processors=1).processors[0]
    from spikepipe.api.contract import cycles_report

    data = cycles_report(proc, args.m, args.k, args.n, args.model)
    cycles = data["cycles"]

    def render() -> None:
        print(f"GEMM {args.m}x{args.k}x{args.n} on {data['array']} {data['dataflow'].upper()}: "
              f"{cycles} compute cycles ({data['folds']} folds, utilisation {data['utilization']:.1%}), "
              f"{data['stall_cycles']} stall cycles")

    return Result(data, render)
