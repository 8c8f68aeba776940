"""BlocTrain in the simulator: every phase's task graph scheduled and replayed on its own, and the phases combined.

BlocTrain trains its blocks one after another (methods.phases.phase_graphs builds one task graph per phase), so a
schedule of it is a sequence of schedules, one per phase graph. The run's training time is

    sum over phases g of  (simulated period of phase g) x (minibatches phase g trains)

so the combined row reports per-minibatch figures as the minibatch-weighted mean over phases (with equally many
minibatches per phase, the default, the plain mean):
  period_cycles, simulated_period_cycles, sequential_cycles, lower bounds, energy and communicated bytes
      the weighted mean (speedup = mean sequential / mean simulated period = total sequential / total simulated)
  comm_fraction, mean_utilisation, utilisation, comm_bytes_fraction
      weighted by each phase's share of the run's time
  peak memory (whole, per processor, activations, stash), microbatches, delay lower bound
      the largest phase's: the phases do not overlap in time
  gradient_delays, simulated_gradient_delays
      per layer, the delay in the phase that trains the layer (a frozen layer has no gradient)
  late_slots, iterations, makespan and wall times
      summed over the phases
Every row also lists its `phases` (each phase's own figures). No printing here; spikepipe.api and the CLI call it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hwmodels import Cluster
from spikepipe.ir import TaskGraph
from spikepipe.methods.local import partition
from spikepipe.methods.phases import phase_graphs
from spikepipe.methods.registry import MethodError, MethodOptions

COMBINATION = "minibatch-weighted mean over phases (training time = sum of period x minibatches per phase)"
_MEAN = ("period_cycles", "simulated_period_cycles", "comm_bytes_per_iteration", "energy_joules",
         "period_lower_bound_cycles")
_TIME_MEAN = ("comm_fraction", "mean_utilisation", "comm_bytes_fraction")
_MAX = ("peak_memory_bytes", "peak_stash_bytes", "peak_activation_bytes", "microbatches", "delay_lower_bound")
_SUM = ("late_slots", "iterations", "makespan_cycles", "schedule_wall_s", "sim_wall_s")
_SAME = ("kind", "processors", "energy_activity", "status")
_PER_LAYER = ("gradient_delays", "simulated_gradient_delays")


@dataclass(frozen=True)
class PhaseRun:
    """One BlocTrain phase as the simulator ran it: the block it trains (layers [first, end)), the share of the
    minibatch that reaches it, its weight in the run, its task graph, report and evaluations."""

    phase: int
    first_layer: int
    end_layer: int
    sample_share: float
    minibatch_weight: float
    graph: TaskGraph
    report: Mapping[str, Any] = field(repr=False)
    evaluations: Sequence[Any] = field(repr=False, default=())


def phase_weights(phases: int, minibatches: Sequence[float] | None = None) -> list[float]:
    """Each phase's share of the run's minibatches (equal when `minibatches` is None)."""
    if minibatches is None:
        return [1.0 / phases] * phases
    if len(minibatches) != phases or any(m < 0 for m in minibatches) or not sum(minibatches) > 0:
        raise MethodError(f"need one non-negative minibatch count per phase ({phases}), not all zero; "
                          f"got {list(minibatches)}")
    total = float(sum(minibatches))
    return [m / total for m in minibatches]


@dataclass(frozen=True)
class PhasedEvaluation:
    """The combined report (the shape of evaluate_graph's, each row with its `phases`) and the phases it
    combines."""

    report: dict[str, Any]
    runs: list[PhaseRun]


def evaluate_phases(graph: TaskGraph, cluster: Cluster, names: Sequence[str], method: MethodOptions, *,
                    minibatches: Sequence[float] | None = None, progress: Callable[[str], None] | None = None,
                    keep_going: bool = True, **eval_kwargs: Any) -> PhasedEvaluation:
    """Schedule and replay every phase graph of BlocTrain with each generator of `names` (eval_kwargs as
    spikepipe.sim.evaluate.evaluate_graph's; `activity` is per layer of `graph`). Returns the combined report (the
    shape of evaluate_graph's, each row with its `phases`) and the phases."""
    from spikepipe.sim.evaluate import evaluate_graph

    if method.name != "bloctrain":
        raise MethodError(f"phases are BlocTrain's; method {method.name!r} runs one task graph")
    if eval_kwargs.get("given"):
        raise MethodError("a schedule file fits one task graph; BlocTrain runs one task graph per phase")
    graphs = phase_graphs(graph, method.blocks, method.hard_fraction)
    ranges = partition(graph.num_layers, method.blocks)
    weights = phase_weights(len(graphs), minibatches)
    activity = eval_kwargs.pop("activity", None)
    runs = []
    for g, (h, (a, b), w) in enumerate(zip(graphs, ranges, weights, strict=True)):
        step = None if progress is None else (lambda name, g=g: progress(f"{name} phase {g}"))
        ev = evaluate_graph(h, cluster, list(names), progress=step, keep_going=keep_going,
                            activity=None if activity is None else list(activity)[:h.num_layers], **eval_kwargs)
        runs.append(PhaseRun(g, a, b, method.hard_fraction ** g, w, h, ev.report, ev.evaluations))
    return PhasedEvaluation(combine(graph, runs), runs)


def combine(graph: TaskGraph, runs: Sequence[PhaseRun]) -> dict[str, Any]:
    """The run's report from its phases' reports (the rules of the module docstring)."""
    reps = [r.report for r in runs]
    w = [r.minibatch_weight for r in runs]
    seq = sum(wi * rep["sequential_cycles"] for wi, rep in zip(w, reps, strict=True))
    lb = sum(wi * rep["lower_bound_cycles"] for wi, rep in zip(w, reps, strict=True))
    results, errors = [], []
    failed = {}
    for run in runs:
        for e in run.report["errors"]:
            failed.setdefault(e["schedule"], f"phase {run.phase}: {e['error']}")
    order = [row["schedule"] for row in reps[0]["results"]] + [e["schedule"] for e in reps[0]["errors"]]
    for name in order:
        rows = [next((row for row in rep["results"] if row["schedule"] == name), None) for rep in reps]
        if name in failed or any(row is None for row in rows):
            errors.append({"schedule": name, "error": failed.get(name, "failed in a phase")})
            continue
        results.append(_combined_row(graph, runs, rows, seq))  # type: ignore[arg-type]
    return {"network": f"{graph.name}+bloctrain", "processors": reps[0]["processors"], "lower_bound_cycles": round(lb),
            "results": results, "sequential_cycles": seq, "ideal_speedup": seq / lb if lb else None,
            "batch": graph.batch, "timesteps": graph.timesteps, **graph.layout_info(), "errors": errors}


def _mean(values: Sequence[float], weights: Sequence[float]) -> float:
    total = sum(weights)
    return sum(v * wi for v, wi in zip(values, weights, strict=True)) / total if total else 0.0


def _combined_row(graph: TaskGraph, runs: Sequence[PhaseRun], rows: Sequence[Mapping[str, Any]],
                  seq: float) -> dict[str, Any]:
    w = [r.minibatch_weight for r in runs]
    time_w = [wi * row["simulated_period_cycles"] for wi, row in zip(w, rows, strict=True)]
    out: dict[str, Any] = {"schedule": rows[0]["schedule"]}
    for key in _MEAN:
        if all(key in row for row in rows):
            out[key] = _mean([row[key] for row in rows], w)
    out["period_cycles"] = round(out["period_cycles"])
    out["speedup"] = seq / out["simulated_period_cycles"] if out["simulated_period_cycles"] else 0.0
    for key in _TIME_MEAN:
        if all(row.get(key) is not None for row in rows):
            out[key] = _mean([row[key] for row in rows], time_w)
    for key in _MAX:
        if all(key in row for row in rows):
            vals = [row[key] for row in rows]
            out[key] = None if any(v is None for v in vals) else max(vals)
    for key in _SUM:
        if all(key in row for row in rows):
            out[key] = sum(row[key] for row in rows)
    for key in _SAME:
        vals = [row.get(key) for row in rows]
        if any(v is not None for v in vals):
            out[key] = vals[0] if len(set(vals)) == 1 else "/".join(str(v) for v in vals)
    for key in ("peak_memory_bytes_per_processor", "weight_bytes_per_processor"):
        if all(key in row for row in rows):
            out[key] = [max(col) for col in zip(*(row[key] for row in rows), strict=True)]
    if all("utilisation" in row for row in rows):
        out["utilisation"] = [_mean(col, time_w) for col in zip(*(row["utilisation"] for row in rows),
                                                                strict=True)]
    for key in _PER_LAYER:  # layer l's delay is the one of the phase that trains it
        if all(key in row for row in rows):
            out[key] = [rows[i][key][layer] for i, run in enumerate(runs)
                        for layer in range(run.first_layer, run.end_layer)]
    out["max_delay"] = max(out.get("gradient_delays") or [0])
    for key in ("energy_breakdown_joules", "energy_counts"):
        if all(isinstance(row.get(key), Mapping) for row in rows):
            out[key] = {k: _mean([row[key][k] for row in rows], w) for k in rows[0][key]}
    if "energy_delay_product" in rows[0] and out.get("energy_joules") is not None:
        # EDP = energy x time of one minibatch; each phase's row gives its seconds per cycle
        secs = [row["energy_delay_product"] / (row["energy_joules"] * row["simulated_period_cycles"])
                if row["energy_joules"] and row["simulated_period_cycles"] else 0.0 for row in rows]
        out["energy_delay_product"] = out["energy_joules"] * out["simulated_period_cycles"] * max(secs)
    if out.get("period_lower_bound_cycles") is not None and out["period_cycles"]:
        out["period_gap"] = max(0.0, 1.0 - out["period_lower_bound_cycles"] / out["period_cycles"])
    if all(row.get("delay_gap") is not None for row in rows):
        out["delay_gap"] = max(row["delay_gap"] for row in rows)
    out["phase_combination"] = COMBINATION
    out["phases"] = [_phase_entry(run, row) for run, row in zip(runs, rows, strict=True)]
    return out


def _phase_entry(run: PhaseRun, row: Mapping[str, Any]) -> dict[str, Any]:
    trained = list(row["gradient_delays"])[run.first_layer:run.end_layer]
    return {"phase": run.phase, "trained_layers": [run.first_layer, run.end_layer],
            "sample_share": run.sample_share, "minibatch_weight": run.minibatch_weight,
            "period_cycles": row["period_cycles"], "simulated_period_cycles": row["simulated_period_cycles"],
            "sequential_cycles": run.report["sequential_cycles"], "speedup": row["speedup"],
            "peak_memory_bytes": row["peak_memory_bytes"],
            "peak_memory_bytes_per_processor": list(row.get("peak_memory_bytes_per_processor", [])),
            # the trained block's delays (the frozen layers' B and W are placeholders, no gradient)
            "gradient_delays": trained, "max_delay": max(trained, default=0)}
