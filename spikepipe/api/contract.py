"""The JSON contract (docs/contract.md) built from library reports: what `--json` prints and `.to_dict()` returns.

The CLI and the Python API both call these functions, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from spikepipe.ir import SpikePipeError

if TYPE_CHECKING:
    from hwmodels import Processor
    from spikepipe.ir import TaskGraph
    from spikepipe.sweep import SweepOutcome, SweepSpec

# the keys every `simulate` result row starts with, in this order (docs/contract.md section 6)
CONTRACT_KEYS = ("schedule", "period_cycles", "simulated_period_cycles", "speedup", "comm_fraction",
                 "gradient_delays", "peak_memory_bytes")


def contract_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """The `simulate --json` object from spikepipe.sim.evaluate.evaluate_graph's report: exactly network,
    processors, lower_bound_cycles and results (failed generators appear as rows with null numbers and an
    `error`)."""
    rows = []
    for r in report["results"]:
        rows.append({**{k: r[k] for k in CONTRACT_KEYS}, **{k: v for k, v in r.items() if k not in CONTRACT_KEYS},
                     "sequential_cycles": report["sequential_cycles"]})
    for e in report["errors"]:
        rows.append({**dict.fromkeys(CONTRACT_KEYS), "schedule": e["schedule"], "error": e["error"]})
    # then T and B as the model runs them, and how the front end found them (docs/design.md section 5)
    how = {k: report[k] for k in ("timesteps", "batch", "layout", "timesteps_source", "batch_source", "time_fixed")
           if k in report}
    return {"network": report["network"], "processors": report["processors"],
            "lower_bound_cycles": report["lower_bound_cycles"], "results": rows, **how}


def compare_summary(*, network: str, processors: Sequence[int], batch: int, timesteps: int,
                    reports: Sequence[Mapping[str, Any]], files: Mapping[str, Any]) -> dict[str, Any]:
    """The `compare --json` object: one simulate object (plus `sequential_cycles`) per processor count."""
    return {"network": network, "processors": list(processors), "batch": batch, "timesteps": timesteps,
            "reports": [dict(r) for r in reports], "files": dict(files)}


def cycles_report(processor: Processor, m: int, k: int, n: int, model: str = "analytic") -> dict[str, Any]:
    """The `cycles --json` object: one GEMM C[m x n] = A[m x k] B[k x n] on the processor's systolic array, by
    the analytic model or the cycle-stepping simulation (`model="stepping"`, small shapes)."""
    arr = processor.array
    cost = processor.gemm_cost(m, k, n)
    if model == "stepping":
        from hwmodels.stepping import step_gemm_cycles

        cycles = step_gemm_cycles(arr, m, k, n)
    elif model == "analytic":
        cycles = cost.compute_cycles
    else:
        raise SpikePipeError(f"unknown cycle model {model!r}; use analytic or stepping")
    row_folds, col_folds = arr.folds(m, k, n)
    return {
        "cycles": cycles,
        "model": model,
        "stall_cycles": cost.stall_cycles,
        "total_cycles": cycles + cost.stall_cycles,
        "m": m, "k": k, "n": n,
        "array": f"{arr.rows}x{arr.cols}",
        "dataflow": arr.dataflow.value,
        "folds": row_folds * col_folds,
        "utilization": round(m * k * n / (arr.rows * arr.cols * cycles), 6),
        "dram_bytes": cost.dram_bytes,
    }


def tasks_report(graph: TaskGraph, processor: Processor) -> dict[str, Any]:
    """The `tasks --json` object: every task with its cycles on `processor`, GEMMs and vector work; the edges
    with bytes; the layers; the processor; the total."""
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
    from spikepipe.layer_memory import graph_items

    items = graph_items(graph.layers, batch=graph.batch, timesteps=graph.timesteps, word_bytes=processor.word_bytes)
    for row, kept in zip(data["layers"], items, strict=True):
        row["kept_for_backward"] = [k.to_json() for k in kept]  # what F_l holds for B_l/W_l, item by item
    arr = processor.array
    data["processor"] = {"array": f"{arr.rows}x{arr.cols}", "dataflow": arr.dataflow.value,
                         "vector_lanes": processor.vector.lanes, "word_bytes": processor.word_bytes}
    data["total_cycles"] = graph.total_cycles()
    return data


def sweep_report(spec: SweepSpec, outcome: SweepOutcome) -> dict[str, Any]:
    """The `sweep --json` object: how many points, computed, cached and failed, and where the table is."""
    return {
        "sweep": spec.name, "kind": spec.kind, "points": outcome.total_points,
        "computed": outcome.computed_points, "cached": outcome.cached_points, "failed": outcome.failed_points,
        "table_csv": str(outcome.table_csv),
        "table_parquet": str(outcome.table_parquet) if outcome.table_parquet else None,
        "wall_s": outcome.wall_s,
    }


def networks_report() -> dict[str, Any]:
    """The `networks --json` object: the built-in networks' names, and each one's description, input shape,
    classes, default timesteps and batch."""
    from spikepipe import zoo

    infos = [zoo.info(n) for n in zoo.names()]
    return {"networks": [i.name for i in infos],
            "details": [{"name": i.name, "description": i.description, "input_shape": list(i.input_shape),
                         "num_classes": i.num_classes, "timesteps": i.timesteps, "batch": i.batch} for i in infos]}
