"""The operations of the Python API: the same as the `spikepipe` commands, with keyword arguments.

Each function validates its arguments, calls the library functions the CLI calls (so `.to_dict()` of its result is
the command's `--json` object) and returns a frozen result. Nothing here prints or exits: bad input raises a
subclass of spikepipe.ir.SpikePipeError.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from hwmodels import Cluster
from spikepipe.api.inputs import ApiArgumentError, Hardware, Workload, as_hardware, load_network, positive
from spikepipe.api.progress import ProgressArg, ProgressCallback, ProgressEvent, TrainProgress, reporter
from spikepipe.api.results import (
    CompareResult,
    CyclesResult,
    SimulateResult,
    SweepResult,
    TasksResult,
    TrainResult,
    _frozen,
)
from spikepipe.ir import Schedule, TaskGraph

if TYPE_CHECKING:
    from spikepipe.activity import ActivityReport
    from spikepipe.methods.registry import MethodOptions

NetworkArg = Workload | str | Path | nn.Module
HardwareArg = Hardware | str | Path | Cluster | None


def as_workload(network: NetworkArg) -> Workload:
    return network if isinstance(network, Workload) else load_network(network)


def method_graph(graph: TaskGraph, method: str | MethodOptions = "bptt", method_blocks: int = 2) -> TaskGraph:
    """The task graph as a training method runs it (as `simulate --method`; bptt leaves it unchanged). `method` is
    a name (its parameters the registry's defaults, `method_blocks` local-loss blocks) or a MethodOptions with every
    parameter, as `--method` with `--checkpoint-every`, `--skip`, `--window`, `--blocks`, ..."""
    if method == "bptt":
        return graph
    from spikepipe.api.phases import is_phased, method_options
    from spikepipe.methods.transforms import transform

    if is_phased(method):
        raise ApiArgumentError("method bloctrain trains its blocks in phases, one task graph each "
                               "(spikepipe.methods.phases.phase_graphs); simulate and compare schedule them all")
    return transform(graph, method_options(method, method_blocks))


def schedule_options(*, time_limit_s: float | None = None, microbatches: int | None = None, split: bool = False,
                     period_slack: float | str | None = None,
                     options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The generator options `simulate`/`compare` forward (only those set), as the CLI builds them: the four
    named ones and any other a generator declares (`options`, as `--option NAME=VALUE`), each value checked by
    the declaration of every generator that takes it (schedules.options)."""
    from schedules.registry import option_targets, parse_options

    positive("microbatches", microbatches)
    if time_limit_s is not None and not time_limit_s > 0:
        raise ApiArgumentError(f"time_limit_s must be a positive number of seconds, got {time_limit_s!r}")
    if period_slack is not None and period_slack != "auto" and (
            not isinstance(period_slack, (int, float)) or not 0 <= period_slack < 1):
        raise ApiArgumentError(f"period_slack must be a fraction in [0, 1) or 'auto', got {period_slack!r}")
    named: dict[str, Any] = {}
    if time_limit_s is not None:
        named["time_limit_s"] = time_limit_s
    if microbatches is not None:
        named["microbatches"] = microbatches
    if split:
        named["split"] = True
    if period_slack:
        named["period_slack"] = period_slack
    extra = dict(options or {})
    both = sorted(set(named) & set(extra))
    if both:
        raise ApiArgumentError(f"{', '.join(both)} given both as keyword(s) and in options")
    if not extra:  # the named ones are known to their generators (no need to load every declaration)
        return named
    targets = option_targets()
    unknown = sorted(set(extra) - set(targets))
    if unknown:
        raise ApiArgumentError(f"option(s) {unknown} are not known to any schedule generator; known: "
                               f"{', '.join(sorted(targets))}")
    for key, value in extra.items():  # checked now, not minutes into a run of the other schedules
        for name in targets[key]:
            parse_options(name, {key: value})
    return {**named, **extra}


def eval_kwargs(*, iterations: int | None = None, time_limit_s: float | None = None,
                microbatches: int | None = None, split: bool = False, period_slack: float | str | None = None,
                options: Mapping[str, Any] | None = None, strict: bool = False, overlap_comm: bool = True,
                link_contention: bool = True) -> dict[str, Any]:
    """evaluate_graph's keywords from simulate's and compare's (the CLI's flags build the same ones)."""
    positive("iterations", iterations)
    return {"iterations": iterations,
            "options": schedule_options(time_limit_s=time_limit_s, microbatches=microbatches, split=split,
                                        period_slack=period_slack, options=options),
            "strict": strict, "overlap_comm": overlap_comm, "link_contention": link_contention}


def layer_activity(activity: str | Path | ActivityReport | None, graph: TaskGraph) -> list[float | None] | None:
    """Every layer's measured input activity from an activity file or report (as `--activity`; None: dense)."""
    if activity is None:
        return None
    from spikepipe.activity import ActivityReport, read_report

    if isinstance(activity, ActivityReport):
        return activity.for_graph(graph, source=f"activity report of {activity.model}")
    if not isinstance(activity, (str, Path)):
        raise ApiArgumentError(f"activity must be an activity file's path or an ActivityReport, got "
                               f"{type(activity).__name__}")
    return read_report(activity).for_graph(graph, source=f"activity file {activity}")


def schedule(network: NetworkArg, hardware: HardwareArg = None, *, name: str = "spikepipe",
             processors: int | None = None, method: str | MethodOptions = "bptt", method_blocks: int = 2,
             **options: Any) -> Schedule:
    """One schedule of the network's task graph on the hardware, by generator name (`schedule_names()`).
    `options` are the generator's own (e.g. time_limit_s, period_slack, split for spikepipe; microbatches for
    the flush schedules); an option no generator takes is an error."""
    import schedules
    from spikepipe.sim.evaluate import options_for

    hw = as_hardware(hardware, processors)
    graph = method_graph(as_workload(network).task_graph(hw), method, method_blocks)
    return schedules.generate(name, graph, hw.cluster, **options_for(name, options))


def schedule_names() -> list[str]:
    """Names of the schedule generators, in report order."""
    from schedules.registry import names

    return names()


def simulate(network: NetworkArg, hardware: HardwareArg = None, *, processors: int | None = None,
             schedules: str | Sequence[str] = "all", iterations: int | None = None,
             time_limit_s: float | None = None, microbatches: int | None = None, split: bool = False,
             period_slack: float | str | None = None, strict: bool = False, overlap_comm: bool = True,
             link_contention: bool = True, method: str | MethodOptions = "bptt", method_blocks: int = 2,
             activity: str | Path | ActivityReport | None = None, given: Schedule | Sequence[Schedule] = (),
             zero_skip: bool = False, options: Mapping[str, Any] | None = None,
             progress: ProgressArg = None) -> SimulateResult:
    """Schedule the network on `processors` processors of the hardware with each requested generator and replay
    every schedule (`spikepipe simulate`). A generator that fails is reported as a row with `error` when several
    were asked for; with one, its error is raised. `given` are schedules made elsewhere (`read_schedule`, as
    `--schedule-file`), replayed as they are after the generated ones (`schedules=()` for those alone);
    `activity` a measured-activity file or report (`--activity`): spike GEMMs cost ACs in the energy;
    `zero_skip` (with `activity`, as `--zero-skip`) adds the zero-skipping array's figures beside the dense ones;
    `options` any other option a generator declares (schedules.options; as `--option NAME=VALUE`), e.g.
    `{"stages": 2}`, given to every generator that takes it."""
    from spikepipe.sim.evaluate import resolve_schedules

    positive("processors", processors)
    plans = (given,) if isinstance(given, Schedule) else tuple(given)
    if plans and processors is None:
        processors = plans[0].processors
    names = resolve_schedules(schedules)
    check_zero_skip(zero_skip=zero_skip, activity=activity)
    kwargs = eval_kwargs(iterations=iterations, time_limit_s=time_limit_s, microbatches=microbatches, split=split,
                         period_slack=period_slack, options=options, strict=strict, overlap_comm=overlap_comm,
                         link_contention=link_contention)
    hw = as_hardware(hardware, processors)
    from spikepipe.api.phases import is_phased, method_options, simulate_phases

    if is_phased(method):  # BlocTrain: a task graph per phase, each scheduled and replayed
        graph = as_workload(network).task_graph(hw)
        kwargs["activity"] = layer_activity(activity, graph)
        with reporter(progress, "simulate", len(names)) as report_to:
            return simulate_phases(graph, hw.cluster, names, method_options(method, method_blocks),
                                   eval_kwargs=kwargs, progress=report_to, given=plans, zero_skip=zero_skip)
    graph = method_graph(as_workload(network).task_graph(hw), method, method_blocks)
    kwargs["activity"] = layer_activity(activity, graph)
    with reporter(progress, "simulate", len(names)) as report_to:
        return simulate_graph(graph, hw.cluster, names, eval_kwargs=kwargs, progress=report_to, given=plans,
                              zero_skip=zero_skip)


def check_zero_skip(*, zero_skip: bool, activity: Any) -> None:
    """zero_skip without a measured activity is refused before any work starts."""
    if zero_skip and activity is None:
        raise ApiArgumentError("zero_skip needs a measured activity (what the array would skip depends on the "
                               "spikes): give activity=FILE.json, as --zero-skip needs --activity")


def _add_zero_skip(report: dict[str, Any], graph: TaskGraph, cluster: Cluster, names: Sequence[str],
                   eval_kwargs: Mapping[str, Any]) -> None:
    """`zero_skip`: the same schedules on the zero-skipping cycle model (spikepipe.costs.zero_skip_graph at the
    measured activity), as zero_skip_* fields beside each row's dense figures; the speedup stays against the
    dense sequential run, so it shows what skipping buys."""
    from spikepipe.costs import zero_skip_graph
    from spikepipe.sim.evaluate import evaluate_graph

    activity = eval_kwargs.get("activity")
    check_zero_skip(zero_skip=True, activity=activity)
    skipped = evaluate_graph(zero_skip_graph(graph, activity), cluster, list(names), keep_going=True,
                             **{**eval_kwargs, "record": False}).report
    by_name = {r["schedule"]: r for r in skipped["results"]}
    for row in report["results"]:
        z = by_name.get(row["schedule"])
        if z is not None:
            row["zero_skip_period_cycles"] = z["period_cycles"]
            row["zero_skip_simulated_period_cycles"] = z["simulated_period_cycles"]
            row["zero_skip_speedup"] = report["sequential_cycles"] / z["simulated_period_cycles"]


def simulate_graph(graph: TaskGraph, cluster: Cluster, names: Sequence[str], *, eval_kwargs: Mapping[str, Any],
                   keep_going: bool | None = None, progress: ProgressCallback | None = None,
                   given: Sequence[Schedule] = (), zero_skip: bool = False) -> SimulateResult:
    """`simulate` on a built task graph (what the CLI calls). A failing generator is a row with `error` when
    `keep_going` (default: when several schedules were asked for), else its error is raised."""
    from spikepipe.sim.evaluate import evaluate_graph

    label = f"{graph.name} P={cluster.size}"

    def step(name: str) -> None:
        if progress:
            progress(ProgressEvent("simulate", names.index(name), len(names), f"{label}: {name}"))

    ev = evaluate_graph(graph, cluster, list(names), progress=step, given=given,
                        keep_going=len(names) > 1 if keep_going is None else keep_going, **eval_kwargs)
    report, evals = ev.report, list(ev.evaluations)
    if zero_skip:
        _add_zero_skip(report, graph, cluster, names, eval_kwargs)
    if progress:
        progress(ProgressEvent("simulate", len(names), len(names), label))
    return SimulateResult.from_report(report, evals, graph)


def compare_graph(graph: TaskGraph, clusters: Mapping[int, Cluster], names: Sequence[str], *,
                  out: Path | None, gantt_processors: int | None, eval_kwargs: Mapping[str, Any],
                  progress: ProgressCallback | None = None, zero_skip: bool = False,
                  phased: MethodOptions | None = None) -> CompareResult:
    """`compare` on a built task graph: every schedule at every processor count of `clusters`. With `out`, the
    files `spikepipe compare` writes (Gantt charts at `gantt_processors`, trace, speedup plot, CSV, JSON).
    `phased` (BlocTrain's options): `graph` is the network's, and every phase graph is scheduled (Gantt charts and
    trace per phase)."""
    from spikepipe.api.contract import compare_summary
    from spikepipe.io import write_csv, write_json
    from spikepipe.plots import save_energy, save_gantt, save_speedup
    from spikepipe.sim.evaluate import evaluate_graph
    from spikepipe.trace import write_trace

    procs = sorted(clusters)
    total = len(procs) * len(names)
    reports: list[SimulateResult] = []
    files: dict[str, Any] = {"gantt": []} if out is not None else {}
    for i, p in enumerate(procs):
        cluster = clusters[p]
        label = f"{graph.name} P={p}"

        def step(name: str, label: str = label, base: int = i * len(names)) -> None:
            if progress:
                progress(ProgressEvent("compare", base + names.index(name), total, f"{label}: {name}"))

        if phased is not None:
            from spikepipe.api.phases import simulate_phases

            res = simulate_phases(graph, cluster, names, phased, eval_kwargs=eval_kwargs, keep_going=True,
                                  zero_skip=zero_skip)
            shown = [(f"_phase{g}", ph) for g, ph in enumerate(res.phases)]
        else:
            ev = evaluate_graph(graph, cluster, names, progress=step, **eval_kwargs)
            if zero_skip:
                _add_zero_skip(ev.report, graph, cluster, names, eval_kwargs)
            res = SimulateResult.from_report(ev.report, ev.evaluations, graph)
            shown = [("", res)]
        reports.append(res)
        if progress:
            progress(ProgressEvent("compare", (i + 1) * len(names), total, label))
        if out is not None and p == gantt_processors:
            if progress:
                progress(ProgressEvent("compare", (i + 1) * len(names), total, f"{label}: plots"))
            runs = [(tag, r) for tag, ph in shown for r in ph.results if r.plan is not None and r.replay is not None]
            for tag, r in runs:
                files["gantt"].append(str(save_gantt(out / f"gantt_{r.schedule}_P{p}{tag}.png", r.plan, r.replay,
                                                     network=graph.name, num_layers=graph.num_layers)))
            files["trace"] = str(write_trace(out / f"trace_P{p}.json",
                                             [(f"{r.schedule} P={p}{tag.replace('_', ' ')}", r.replay)
                                              for tag, r in runs],
                                             freq_hz=cluster.processors[0].freq_hz))
    contract_reports = [{**r.to_dict(), "sequential_cycles": r.sequential_cycles} for r in reports]
    result = CompareResult(graph.name, tuple(procs), graph.batch, graph.timesteps, tuple(reports), {}, {})
    if out is not None:
        ok_rows = [r for r in result.rows() if not r.get("error")]
        ideal = {r.processors: r.ideal_speedup for r in reports}
        files["speedup"] = str(save_speedup(out / "speedup.png", ok_rows, ideal, network=graph.name,
                                            subtitle=f"B={graph.batch}, T={graph.timesteps}, "
                                                     f"{len(names)} schedules, replayed in SimPy"))
        files["energy"] = str(save_energy(out / "energy.png", ok_rows, network=graph.name,
                                          subtitle=f"B={graph.batch}, T={graph.timesteps}, per-operation energies "
                                                   "of the hardware's [energy] table"))
        files["csv"] = str(write_csv(out / "results.csv", result.rows()))
    summary = compare_summary(network=graph.name, processors=procs, batch=graph.batch, timesteps=graph.timesteps,
                              reports=contract_reports, files=files)
    if out is not None:  # results.json is the summary as it stands before its own path is added
        files["json"] = str(write_json(out / "results.json", summary))
        summary["files"]["json"] = files["json"]
    return CompareResult(graph.name, tuple(procs), graph.batch, graph.timesteps, tuple(reports),
                         dict(files), summary)


def compare(network: NetworkArg, hardware: HardwareArg = None, *, processors: Sequence[int] = (2, 4, 8, 16),
            schedules: str | Sequence[str] = "all", out: str | Path | None = None,
            gantt_processors: int | None = None, iterations: int | None = None, time_limit_s: float | None = None,
            microbatches: int | None = None, split: bool = False, period_slack: float | str | None = None,
            strict: bool = False, overlap_comm: bool = True, link_contention: bool = True,
            method: str | MethodOptions = "bptt", method_blocks: int = 2,
            activity: str | Path | ActivityReport | None = None, zero_skip: bool = False,
            options: Mapping[str, Any] | None = None, progress: ProgressArg = None) -> CompareResult:
    """Every schedule at several processor counts (`spikepipe compare`). With `out`, also the files the command
    writes there (Gantt charts at `gantt_processors`, default the largest P; trace; speedup plot; CSV; JSON);
    without, nothing is written and the figures come from the result's `.plot()` and `.plot_gantt()`.
    `activity` is a measured-activity file or report, as `--activity`; `options` as simulate's."""
    from spikepipe.io import check_writable
    from spikepipe.sim.evaluate import resolve_schedules

    if isinstance(processors, int):
        processors = [processors]
    for p in processors:
        positive("processors", p, optional=False)
    procs = sorted(set(processors))
    if not procs:
        raise ApiArgumentError("processors needs at least one processor count, e.g. (2, 4, 8, 16)")
    gantt_p = gantt_processors if gantt_processors is not None else procs[-1]
    if gantt_p not in procs:
        raise ApiArgumentError(f"gantt_processors={gantt_p} is not one of processors {procs}")
    names = resolve_schedules(schedules)
    check_zero_skip(zero_skip=zero_skip, activity=activity)
    kwargs = eval_kwargs(iterations=iterations, time_limit_s=time_limit_s, microbatches=microbatches, split=split,
                         period_slack=period_slack, options=options, strict=strict, overlap_comm=overlap_comm,
                         link_contention=link_contention)
    out_dir = None if out is None else Path(out)
    if out_dir is not None:
        check_writable(out_dir / "results.json")
    hw = as_hardware(hardware)
    clusters = {p: hw.with_processors(p).cluster for p in procs}
    from spikepipe.api.phases import is_phased, method_options

    phased = method_options(method, method_blocks) if is_phased(method) else None
    graph = as_workload(network).task_graph(clusters[procs[0]])
    graph = graph if phased is not None else method_graph(graph, method, method_blocks)
    kwargs["activity"] = layer_activity(activity, graph)
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ApiArgumentError(f"cannot create output folder {out_dir}: {exc.strerror or exc}") from None
    with reporter(progress, "compare", len(procs) * len(names)) as report_to:
        return compare_graph(graph, clusters, names, out=out_dir, gantt_processors=gantt_p, eval_kwargs=kwargs,
                             progress=report_to, zero_skip=zero_skip, phased=phased)


def train_network(network: NetworkArg, *, dataset: str = "digits", schedule: str | Schedule = "none",
                  processors: int = 4,
          hardware: HardwareArg = None, epochs: int = 5, batch: int | None = None, timesteps: int | None = None,
          lr: float = 1e-3, optimizer: str = "adam", lr_schedule: str = "cosine", weight_decay: float = 0.0,
          seed: int = 0, encoder: str = "direct", stash: bool = True, compensation: str = "none",
          mode: str = "exact", period_slack: float | None = None, method: str = "bptt",
          checkpoint_every: int | None = None, skip: int = -1, window: int = 2, blocks: int = 2,
          hard_fraction: float | None = None, skipper_gradient: str | None = None, backend: str = "emulate",
          data_dir: str | Path | None = None, limit_train: int | None = None, threads: int = 1,
          out: str | Path | None = None, resume: bool = False, activity_out: str | Path | None = None,
          limit_val: int | None = None, limit_test: int | None = None, exit_confidence: float | None = None,
          progress: ProgressArg = None) -> TrainResult:
    """Train the network on real data (`spikepipe train`): plain BPTT with `schedule="none"`, or exactly the
    gradient delays of a schedule: a generator name, solved for `processors` processors of the hardware, or a
    Schedule already made (e.g. `simulate(...)["spikepipe"].plan`), whose own processors count. A torch module
    is not modified: a copy is trained and returned as the result's `model`. `backend="gloo"` runs the schedule
    on P processes (spikepipe.distributed) instead of emulating it in one; `activity_out` writes the spike
    activity measured after every epoch (for `simulate(activity=...)`)."""
    from spikepipe.training import TrainConfig, check_config
    from spikepipe.training import run as run_training

    for key, v in (("processors", processors), ("epochs", epochs), ("batch", batch), ("threads", threads),
                   ("window", window), ("blocks", blocks), ("limit_train", limit_train),
                   ("limit_val", limit_val), ("limit_test", limit_test)):
        positive(key, v)
    if checkpoint_every is not None and (not isinstance(checkpoint_every, int) or checkpoint_every < 0):
        raise ApiArgumentError(f"checkpoint_every must be a whole number >= 0 (0: ceil(sqrt(T))), "
                               f"got {checkpoint_every!r}")
    given_plan = schedule if isinstance(schedule, Schedule) else None
    if given_plan is not None:
        schedule, processors = given_plan.name, given_plan.processors
    # a name or path is given to the trainer as it is (it builds the model once, as `spikepipe train` does)
    workload = Workload(str(network), str(network)) if isinstance(network, (str, Path)) else as_workload(network)
    hw = None if hardware is None else as_hardware(hardware)
    spec_hw = hw is None or (hw.is_plain_spec and hw.spec is not None)
    cfg = TrainConfig(
        network=workload.spec if workload.spec is not None else workload.name, dataset=dataset, schedule=schedule,
        processors=processors, period_slack=period_slack or 0.0, hardware=None if hw is None else hw.spec,
        epochs=epochs, batch=batch or 32, timesteps=timesteps if workload.spec is not None else workload.timesteps,
        optimizer=optimizer, lr=lr, lr_schedule=lr_schedule, weight_decay=weight_decay, seed=seed,
        encoder=encoder, stash=stash, compensation=compensation, mode=mode,
        data_dir=None if data_dir is None else str(data_dir), limit_train=limit_train, threads=threads,
        out=None if out is None else str(out), resume=resume, method=method,
        checkpoint_every=checkpoint_every or 0, skip=skip, window=window, blocks=blocks,
        hard_fraction=hard_fraction, skipper_gradient=skipper_gradient, backend=backend,
        activity_out=None if activity_out is None else str(activity_out), limit_val=limit_val,
        limit_test=limit_test, exit_confidence=exit_confidence)
    check_config(cfg, schedule_given=given_plan is not None)  # before a schedule is solved or data loaded
    from spikepipe.io import check_writable

    if out is not None:
        check_writable(Path(out) / "result.json")
    if activity_out is not None:
        check_writable(activity_out)
    model = None
    plan = given_plan
    if workload.spec is None:  # the user's own module: train it, and schedule its own task graph
        assert workload.model is not None and workload.example_input is not None
        # a copy: two calls on one workload (delayed and plain, say) must not train the same weights in turn
        model = (copy.deepcopy(workload.model), workload.example_input)
        if schedule != "none" and plan is None:
            sized = load_network(workload.model, workload.example_input, batch=cfg.batch, name=workload.name)
            plan = _train_schedule(sized, hw, cfg)
    elif schedule != "none" and plan is None and not spec_hw:  # keyword hardware: the trainer cannot rebuild it from a name
        plan = _train_schedule(replace(workload, batch=cfg.batch, timesteps=cfg.timesteps), hw, cfg)
    with reporter(progress, "train", epochs) as report_to:
        hook = TrainProgress(report_to, epochs) if report_to else None
        data = run_training(cfg, model=model, schedule=plan, progress=hook)
    return TrainResult.from_data(data, model[0] if model is not None else None)


def _train_schedule(workload: Workload, hw: Hardware | None, cfg: Any) -> Schedule:
    import schedules

    cluster_hw = as_hardware(hw, cfg.processors)
    graph = workload.task_graph(cluster_hw)
    options = {"period_slack": cfg.period_slack} if cfg.period_slack else {}
    return schedules.generate(cfg.schedule, graph, cluster_hw.cluster, **options)


def cycles(m: int, k: int, n: int, hardware: HardwareArg = None, *, model: str = "analytic") -> CyclesResult:
    """Cycles of one GEMM C[m x n] = A[m x k] B[k x n] on the first processor of the hardware
    (`spikepipe cycles`); `model="stepping"` runs the cycle-stepping simulation instead (small shapes)."""
    from spikepipe.api.contract import cycles_report

    for key, v in (("m", m), ("k", k), ("n", n)):
        positive(key, v, optional=False)
    if model not in ("analytic", "stepping"):
        raise ApiArgumentError(f"model must be 'analytic' or 'stepping', got {model!r}")
    return CyclesResult.from_data(cycles_report(as_hardware(hardware).cluster.processors[0], m, k, n, model))


def tasks(network: NetworkArg, hardware: HardwareArg = None) -> TasksResult:
    """The costed F/B/W task graph of one minibatch on the hardware's first processor (`spikepipe tasks`)."""
    from spikepipe.api.contract import tasks_report

    hw = as_hardware(hardware)
    graph = as_workload(network).task_graph(hw)
    data = tasks_report(graph, hw.cluster.processors[0])
    return TasksResult(graph.name, graph.batch, graph.timesteps, data["total_cycles"], graph.num_layers,
                       _frozen(data), graph)


def run_sweep(spec: str | Path, out: str | Path | None = None, *, scheduler: str | None = None, workers: int = 2,
          max_points: int | None = None, progress: ProgressArg = None) -> SweepResult:
    """Run a sweep file's grid on Dask (`spikepipe sweep`): cached by content, resumable, failures recorded.
    `out` defaults to results/sweeps/<name>; `scheduler` is an existing Dask scheduler's address."""
    from spikepipe.api.contract import sweep_report
    from spikepipe.io import check_writable
    from spikepipe.sweep import load_spec
    from spikepipe.sweep import run_sweep as run_grid

    positive("workers", workers, optional=False)
    positive("max_points", max_points)
    plan = load_spec(spec)
    where = Path(out) if out is not None else Path("results") / "sweeps" / plan.name
    check_writable(where / f"{plan.name}.csv")
    total = len(plan.points())
    with reporter(progress, "sweep", total) as report_to:
        def step(done: int, of: int) -> None:
            if report_to:
                report_to(ProgressEvent("sweep", done, of, f"sweep {plan.name}"))

        outcome = run_grid(plan, where, scheduler=scheduler, workers=workers, max_points=max_points, progress=step)
    data = sweep_report(plan, outcome)
    return SweepResult(**{k: data[k] for k in ("sweep", "kind", "points", "computed", "cached", "failed",
                                               "table_csv", "table_parquet")}, data=_frozen(data))
