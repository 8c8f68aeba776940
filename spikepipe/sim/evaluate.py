"""Schedule + replay + speedup for one network on one cluster: the rows `spikepipe simulate` and `compare` print.

Speedup is measured, on the same minibatch: the simulated period of the 1-processor sequential run divided by the
simulated period of the schedule (docs/design.md section 4).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hwmodels import Cluster
from spikepipe.ir import Schedule, SpikePipeError, TaskGraph, lower_bound_cycles
from spikepipe.sim.engine import simulate
from spikepipe.sim.result import SimResult

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Evaluation:
    """One schedule on one cluster: the schedule, its replay and the row that reports them."""

    schedule: Schedule
    sim: SimResult
    row: dict[str, Any] = field(hash=False, compare=False)


@dataclass(frozen=True)
class GraphEvaluation:
    """Every requested schedule on one cluster: `report` is the `simulate --json` object (its JSON contract),
    `evaluations` the schedules and their replays behind its rows (for plots and traces)."""

    report: dict[str, Any] = field(hash=False, compare=False)
    evaluations: tuple[Evaluation, ...] = ()


def options_for(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options generator `name` takes out of options given once for several generators (what simulate,
    compare and a sweep point set): each generator's declaration (schedules.options) says which are its own."""
    if not options:
        return {}
    from schedules.registry import option_targets

    targets = option_targets()
    out = {}
    for key, value in options.items():
        if key not in targets:  # a silently ignored option would make a sweep lie about what it ran
            raise SpikePipeError(f"option {key!r} is not known to any schedule generator; "
                                 f"known: {', '.join(sorted(targets))}")
        if name in targets[key]:
            out[key] = value
    return out


def resolve_schedules(requested: Sequence[str] | str | None) -> list[str]:
    from schedules import names

    valid = names()
    if requested is None or requested == "all" or list(requested) == ["all"]:
        return valid
    if isinstance(requested, str):
        requested = [x for x in requested.split(",") if x.strip()]
    bad = [r for r in requested if r not in valid]
    if bad:
        raise SpikePipeError(f"unknown schedule(s) {', '.join(bad)}; valid names: {', '.join(valid)} or all")
    return list(dict.fromkeys(requested))


def sequential_period(graph: TaskGraph, cluster: Cluster, iterations: int = 3) -> float:
    """Simulated cycles per minibatch of the sequential schedule on one processor of the cluster."""
    from schedules import generate

    one = cluster.with_size(1)
    seq = generate("sequential", graph, one)
    return simulate(seq, one, iterations=iterations, graph=graph, record=False).simulated_period_cycles


def evaluate_one(name: str, graph: TaskGraph, cluster: Cluster, *, sequential_cycles: float,
                 iterations: int | None = None, options: Mapping[str, Any] | None = None, strict: bool = False,
                 overlap_comm: bool = True, link_contention: bool = True, record: bool = True,
                 activity: Sequence[float] | None = None) -> Evaluation:
    from schedules import generate

    t0 = time.perf_counter()
    sched = generate(name, graph, cluster, **options_for(name, options or {}))
    return evaluate_given(sched, graph, cluster, sequential_cycles=sequential_cycles, iterations=iterations,
                          strict=strict, overlap_comm=overlap_comm, link_contention=link_contention, record=record,
                          schedule_wall_s=time.perf_counter() - t0, activity=activity)


def evaluate_given(sched: Schedule, graph: TaskGraph, cluster: Cluster, *, sequential_cycles: float,
                   iterations: int | None = None, strict: bool = False, overlap_comm: bool = True,
                   link_contention: bool = True, record: bool = True, schedule_wall_s: float = 0.0,
                   activity: Sequence[float] | None = None) -> Evaluation:
    """Replay a schedule made elsewhere (a generator, a schedule file) and build its row."""
    from spikepipe.energy import schedule_energy

    name, gen_s = sched.name, schedule_wall_s
    sim = simulate(sched, cluster, iterations=iterations, graph=graph, strict=strict, overlap_comm=overlap_comm,
                   link_contention=link_contention, record=record)
    peak = max(sim.peak_memory_bytes, default=0)
    row: dict[str, Any] = {
        "schedule": name,
        "kind": sched.kind,
        "processors": cluster.size,
        "period_cycles": sched.period_cycles,
        "simulated_period_cycles": sim.simulated_period_cycles,
        "speedup": sequential_cycles / sim.simulated_period_cycles if sim.simulated_period_cycles else 0.0,
        "comm_fraction": sim.comm_fraction,
        "gradient_delays": list(sched.gradient_delays),
        "peak_memory_bytes": peak,
        "microbatches": sched.microbatches,
        "max_delay": max(sched.gradient_delays, default=0),
        "simulated_gradient_delays": list(sim.gradient_delays),
        "mean_utilisation": sum(sim.utilisation) / max(1, len(sim.utilisation)),
        "comm_bytes_fraction": sim.comm_bytes_fraction,
        "comm_bytes_per_iteration": sim.comm_bytes_per_iteration,
        "peak_memory_bytes_per_processor": list(sim.peak_memory_bytes),
        "weight_bytes_per_processor": list(sim.weight_bytes),
        "peak_stash_bytes": max(sim.peak_stash_bytes, default=0),
        "peak_activation_bytes": max(sim.peak_activation_bytes, default=0),
        "utilisation": list(sim.utilisation),
        "late_slots": sim.late_slots,
        "makespan_cycles": sim.makespan_cycles,
        "iterations": sim.iterations,
        "schedule_wall_s": round(gen_s, 3),
        "sim_wall_s": round(sim.wall_s, 3),
    }
    # energy per minibatch; activity None prices every GEMM as dense MACs
    row.update(schedule_energy(sched, graph, cluster, sim, activity).row())
    row["energy_activity"] = "dense" if activity is None else "measured"
    from schedules.certificate import certify

    row.update(certify(sched, graph, cluster).to_dict())  # status, bounds and gaps (docs/design.md section 5)
    for key in ("phase1", "phase2", "fallback", "gap", "solve_s", "stages"):
        if key in sched.info and isinstance(sched.info[key], (int, float, str, bool, type(None))):
            row[f"info_{key}"] = sched.info[key]
    return Evaluation(sched, sim, row)


def evaluate_graph(graph: TaskGraph, cluster: Cluster, schedules: Sequence[str] | str | None = None, *,
                   iterations: int | None = None, options: Mapping[str, Any] | None = None, strict: bool = False,
                   overlap_comm: bool = True, link_contention: bool = True, record: bool = True,
                   progress: Progress | None = None, keep_going: bool = True,
                   activity: Sequence[float] | None = None,
                   given: Sequence[Schedule] = ()) -> GraphEvaluation:
    """Every requested schedule on the cluster (none when `schedules` is [], for `given` ones only): the report
    (the `simulate --json` object) and the evaluations (schedules and replays, for plots and traces). A generator
    that fails is reported under "errors" when `keep_going`, else its error propagates."""
    names = resolve_schedules(schedules) if schedules != [] else []
    seq = sequential_period(graph, cluster)
    lb = lower_bound_cycles(graph, cluster)
    results, evals, errors = [], [], []
    for sched in given:  # schedules made elsewhere (schedule files), replayed as they are
        ev = evaluate_given(sched, graph, cluster, sequential_cycles=seq, iterations=iterations, strict=strict,
                            overlap_comm=overlap_comm, link_contention=link_contention, record=record,
                            activity=activity)
        results.append(ev.row)
        evals.append(ev)
    for name in names:
        if progress:
            progress(name)
        try:
            ev = evaluate_one(name, graph, cluster, sequential_cycles=seq, iterations=iterations, options=options,
                              strict=strict, overlap_comm=overlap_comm, link_contention=link_contention,
                              record=record, activity=activity)
        except SpikePipeError as exc:
            if not keep_going:
                raise
            log.warning("schedule %s failed on %s at P=%d: %s", name, graph.name, cluster.size, exc)
            errors.append({"schedule": name, "error": str(exc).splitlines()[0]})
            continue
        results.append(ev.row)
        evals.append(ev)
    report = {
        "network": graph.name,
        "processors": cluster.size,
        "lower_bound_cycles": lb,
        "results": results,
        "sequential_cycles": seq,
        "ideal_speedup": seq / lb if lb else None,
        "batch": graph.batch,
        "timesteps": graph.timesteps,
        **graph.layout_info(),
        "errors": errors,
    }
    return GraphEvaluation(report, tuple(evals))


def load_graph(network: str, cluster: Cluster, batch: int | None = None, timesteps: int | None = None) -> TaskGraph:
    from spikepipe.workload import load_workload

    kwargs: dict[str, Any] = {"processor": cluster.processors[0]}
    if batch is not None:
        kwargs["batch"] = batch
    if timesteps is not None:
        kwargs["timesteps"] = timesteps
    return load_workload(network, **kwargs)


def evaluate_schedules(*, network: str, processors: int, schedules: Sequence[str] | str | None = None,
                       batch: int | None = None, timesteps: int | None = None, hardware: str | None = None,
                       array: str | None = None, dataflow: str | None = None, iterations: int | None = None,
                       options: Mapping[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """The whole `spikepipe simulate --json` report from plain arguments (used by the sweep driver)."""
    from hwmodels.config import load_cluster

    cluster = load_cluster(hardware, processors=processors, array=array, dataflow=dataflow)
    graph = load_graph(network, cluster, batch, timesteps)
    return evaluate_graph(graph, cluster, schedules, iterations=iterations, options=options, record=False,
                          keep_going=False, **kwargs).report
