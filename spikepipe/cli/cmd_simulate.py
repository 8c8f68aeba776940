"""`spikepipe simulate`: schedule a network on P processors and replay every schedule in the SimPy simulator."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from spikepipe.cli.common import (
    CliError,
    Result,
    add_hardware,
    add_json,
    add_network,
    cluster_from_args,
    positive_int,
)


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def add_sim_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("simulation")
    g.add_argument("--iterations", type=positive_int, default=None,
                   help="minibatches to replay (default: enough to measure the steady state)")
    g.add_argument("--time-limit", type=positive_float, default=None, metavar="SECONDS",
                   help="wall-clock limit per schedule for spikepipe's CP-SAT search; not reproducible under machine "
                        "load (default: a budget in CP-SAT deterministic time and search moves, which gives "
                        "the same schedule on an idle or a busy machine)")
    g.add_argument("--microbatches", type=positive_int, default=None,
                   help="micro-batches for flush schedules (default: the best of P, 2P, 4P)")
    g.add_argument("--strict", action="store_true",
                   help="fail when a slot's input is not ready at its scheduled start instead of running it late")
    g.add_argument("--no-overlap", action="store_true",
                   help="transfers occupy the sending processor (no DMA overlap with compute)")
    g.add_argument("--no-contention", action="store_true",
                   help="give every transfer a private link (what the schedulers assume) instead of queueing")
    g.add_argument("--split", action="store_true",
                   help="let the spikepipe scheduler split large tasks along the batch across processors")
    add_period_slack(g, allow_auto=True)
    from schedules.options import GPipeOptions, InterleavedOptions, PipeDreamOptions, option_names

    examples = sorted({*option_names(InterleavedOptions), *option_names(PipeDreamOptions)}
                      - set(option_names(GPipeOptions)))
    g.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", type=schedule_option,
                   help="any other option a schedule generator declares (schedules/options.py), given to every "
                        f"generator that takes it, e.g. {', '.join(examples)}, or spikepipe's workers, seed; "
                        "VALUE is a JSON literal or text; repeatable; an unknown NAME is an error listing them")
    from spikepipe.cli.method_args import add_method_arguments
    from spikepipe.methods.registry import TRANSFORM_METHODS

    add_method_arguments(p.add_argument_group("training method (its task graph is what gets scheduled)"),
                         TRANSFORM_METHODS)
    g.add_argument("--activity", default=None, metavar="FILE.json",
                   help="measured spike activity (spikepipe activity / train --activity-out): GEMMs with a spike "
                        "operand cost ACs at the measured rate instead of MACs in the energy (cycles stay dense)")
    g.add_argument("--zero-skip", action="store_true",
                   help="with --activity: also schedule and replay on an array that skips all-zero streamed steps "
                        "(costs.zero_skip_gemm states the model) and report zero_skip_* fields beside the dense ones")


def schedule_option(text: str) -> tuple[str, Any]:
    from schedules.common import ScheduleOptionError
    from schedules.options import parse_assignment

    try:
        return parse_assignment(text)
    except ScheduleOptionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def slack_fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}") from None
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r} (0.1 = a 10% longer period)")
    return v


def slack_or_auto(text: str) -> float | str:
    return "auto" if text == "auto" else slack_fraction(text)


def add_period_slack(p: Any, allow_auto: bool = False) -> None:
    p.add_argument("--period-slack", type=slack_or_auto if allow_auto else slack_fraction, default=None,
                   metavar="FRACTION|auto" if allow_auto else "FRACTION",
                   help="spikepipe: accept a period this much longer than the shortest found (0.1 = 10%%) in "
                        "exchange for less gradient delay (phase 2 minimises delay at the longer period)"
                        + ("; auto: solve at several slacks and take the knee of period against delay (five "
                           "solves)" if allow_auto else ""))


def apply_method(graph: Any, args: argparse.Namespace) -> Any:
    """The task graph as the chosen training method runs it (BPTT leaves it unchanged; so does BlocTrain, whose
    phase graphs are built from it: see `phased`)."""
    if getattr(args, "method", "bptt") in ("bptt", "bloctrain"):
        return graph
    from spikepipe.cli.method_args import method_options
    from spikepipe.methods.transforms import transform

    return transform(graph, method_options(args))


def phased(args: argparse.Namespace, refuse: tuple[str, ...] = ()) -> Any:
    """BlocTrain's MethodOptions when --method bloctrain (its phases are scheduled one task graph each), else None.
    The flags of `refuse` (destinations) fit one task graph and are an error with it."""
    if getattr(args, "method", "bptt") != "bloctrain":
        return None
    from spikepipe.cli.method_args import method_options

    for dest in refuse:
        if getattr(args, dest, None):
            raise CliError(f"--{dest.replace('_', '-')} fits one task graph; --method bloctrain schedules one per "
                           "phase (the Python API's simulate(...).phases has each phase's schedules)")

    return method_options(args)


def activity_for(args: argparse.Namespace, graph: Any) -> list[float] | None:
    """The input activity of every layer of `graph` from --activity (None: dense)."""
    from spikepipe.api.ops import layer_activity  # the one reader of activity files, shared with the API

    return layer_activity(getattr(args, "activity", None) or None, graph)


def check_zero_skip(args: argparse.Namespace) -> bool:
    """--zero-skip, refused without --activity before any work starts."""
    if getattr(args, "zero_skip", False) and not getattr(args, "activity", None):
        raise CliError("--zero-skip needs --activity FILE.json (what the array would skip depends on the spikes)")
    return bool(getattr(args, "zero_skip", False))


def sim_keywords(args: argparse.Namespace) -> dict[str, Any]:
    """The API's keywords for the simulation flags (simulate and compare take the same ones)."""
    given = list(getattr(args, "option", None) or [])
    if len(dict(given)) < len(given):
        raise CliError(f"--option names {sorted({k for k, _ in given if [n for n, _ in given].count(k) > 1})} "
                       f"more than once")
    return {"iterations": args.iterations, "time_limit_s": args.time_limit, "microbatches": args.microbatches,
            "split": getattr(args, "split", False), "period_slack": getattr(args, "period_slack", None),
            "options": dict(given), "strict": args.strict, "overlap_comm": not args.no_overlap,
            "link_contention": not args.no_contention}


def sim_kwargs(args: argparse.Namespace, activity: list[float] | None = None) -> dict[str, Any]:
    """evaluate_graph's keywords from the command line, built by the API's own builder (spikepipe.api.ops
    eval_kwargs); `activity` (activity_for) prices spike GEMMs as ACs."""
    from spikepipe.api.ops import eval_kwargs

    return {**eval_kwargs(**sim_keywords(args)), "activity": activity}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="schedule a network on P processors and replay it (speedup, comm, memory)")
    add_network(p)
    p.add_argument("--processors", "-P", type=positive_int, required=True, help="number of processors P")
    from schedules.registry import names

    p.add_argument("--schedule", default=None, metavar="NAME|all",
                   help=f"schedule generator, a comma list, or all (default; none with --schedule-file): "
                        f"{', '.join(names())}")
    p.add_argument("--schedule-file", default=None, metavar="S.json|S.txt",
                   help="replay a saved or hand-written schedule (JSON or the compact text form), validated "
                        "against the network and hardware at load; -v prints its grid with a broken slot marked")
    add_hardware(p)
    add_sim_options(p)
    g = p.add_argument_group("outputs")
    g.add_argument("--gantt", default=None, metavar="OUT.png", help="Gantt chart of one steady-state period")
    g.add_argument("--gantt-schedule", default=None, metavar="NAME",
                   help="which schedule the Gantt chart and trace show (default: spikepipe if run, else the first)")
    g.add_argument("--trace", default=None, metavar="OUT.json", help="Chrome trace (open in ui.perfetto.dev)")
    g.add_argument("--csv", default=None, metavar="OUT.csv", help="one row per schedule")
    g.add_argument("--schedule-out", default=None, metavar="S.json|S.txt",
                   help="write the shown schedule (spikepipe if run, else the first; --gantt-schedule picks) as "
                        "plain data: JSON, or the compact text form (one token per slot) for .txt")
    add_json(p)
    p.set_defaults(handler=run)


def load_schedule_file(path: str, graph, cluster, args: argparse.Namespace):
    """The file's schedule, validated; on a bad file -v prints the grid with the broken slot marked, then the
    one `error:` line follows."""
    from spikepipe.schedule_file import ScheduleFileError, load_schedule

    try:
        return load_schedule(path, graph, cluster)
    except ScheduleFileError as exc:
        if getattr(args, "verbose", False) and exc.grid:
            print(exc.grid, file=sys.stderr)
        raise


def pick(evals: list, name: str | None):
    if not evals:
        return None
    if name is not None:
        for e in evals:
            if e.schedule.name == name:
                return e
        raise CliError(f"--gantt-schedule {name} was not simulated; run it with --schedule {name} or all")
    return next((e for e in evals if e.schedule.name == "spikepipe"), evals[0])


def check_outputs(args: argparse.Namespace) -> None:
    from spikepipe.io import check_writable

    for opt in ("gantt", "trace", "csv", "schedule_out"):
        path = getattr(args, opt, None)
        if path:
            check_writable(path)


def progress_bar(total: int, description: str):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=Console(stderr=True), transient=True)


@contextmanager
def progress_events(total: int, description: str) -> Iterator[Callable[[Any], None]]:
    """A callback for the API's ProgressEvents that draws the bar from the first event on: errors the API finds
    before any work leave stderr one `error:` line, with no bar drawn before it."""
    bar = progress_bar(total, description)
    task = None

    def update(ev: Any) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(description, total=total)
        bar.update(task, description=ev.description, completed=ev.completed)

    try:
        yield update
    finally:
        if task is not None:
            bar.stop()


def run(args: argparse.Namespace) -> Result:
    from spikepipe.api.ops import simulate_graph
    from spikepipe.io import write_csv
    from spikepipe.sim.evaluate import Evaluation, load_graph, resolve_schedules

    wanted = args.schedule if args.schedule is not None else (None if args.schedule_file is None else "")
    names = resolve_schedules(None if wanted == "all" else wanted) if wanted != "" else []
    check_outputs(args)
    cluster = cluster_from_args(args, processors=args.processors)
    graph = apply_method(load_graph(args.network, cluster, args.batch, args.timesteps), args)
    phases = phased(args, ("schedule_file", "gantt", "schedule_out", "zero_skip"))
    given = [load_schedule_file(args.schedule_file, graph, cluster, args)] if args.schedule_file else []
    activity = activity_for(args, graph)  # before the bar: a bad file is one line
    eval_kwargs = sim_kwargs(args, activity)
    zero_skip = check_zero_skip(args)
    with progress_events(len(names), f"{graph.name} P={cluster.size}") as progress:
        if phases is not None:
            from spikepipe.api.phases import simulate_phases

            res = simulate_phases(graph, cluster, names, phases, eval_kwargs=eval_kwargs, keep_going=len(names) > 1,
                                  progress=progress)
        else:
            res = simulate_graph(graph, cluster, names, eval_kwargs=eval_kwargs, given=given,
                                 keep_going=len(names) > 1, zero_skip=zero_skip, progress=progress)
    data = res.to_dict()
    report = {"sequential_cycles": res.sequential_cycles, "timesteps": graph.timesteps, "batch": graph.batch,
              **graph.layout_info()}
    tag = [(f" phase {g}", ph) for g, ph in enumerate(res.phases)] if res.phases else [("", res)]
    evals = [(t, Evaluation(r.plan, r.replay, dict(r.row))) for t, ph in tag for r in ph.results if r.plan]
    files: dict[str, str] = {}
    shown = pick([e for _, e in evals], args.gantt_schedule)
    if args.gantt and shown is not None:
        from spikepipe.plots import save_gantt

        files["gantt"] = str(save_gantt(args.gantt, shown.schedule, shown.sim, network=graph.name,
                                        num_layers=graph.num_layers))
    if args.trace and shown is not None:
        from spikepipe.trace import write_trace

        files["trace"] = str(write_trace(args.trace, [(f"{e.schedule.name} P={cluster.size}{t}", e.sim)
                                                      for t, e in evals],
                                         freq_hz=cluster.processors[0].freq_hz))
    if args.schedule_out and shown is not None:
        from spikepipe.schedule_file import write_schedule

        files["schedule"] = str(write_schedule(args.schedule_out, shown.schedule, graph, cluster))
    if args.csv:
        files["csv"] = str(write_csv(args.csv, [{"network": graph.name, **r} for r in data["results"]]))

    def render() -> None:

        console = wide_console()
        console.print(results_table(data, report))
        if res.phases:
            console.print(phases_table(data))
        for kind, path in files.items():
            console.print(f"{kind}: {Path(path).resolve()}")

    return Result(data, render)


def wide_console():
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=180)  # the whole table in logs and pipes


def gap_cell(row: dict[str, Any]) -> str:
    """Period gap / delay gap to their lower bounds, e.g. `0.0%/25%`: how far from best the row may be."""
    if row.get("period_gap") is None:
        return "-"
    return f"{row['period_gap']:.1%}/{row['delay_gap']:.0%}"


def results_table(data: dict[str, Any], report: dict[str, Any]):
    from rich.table import Table

    seq = report["sequential_cycles"]
    lb = data["lower_bound_cycles"]
    how = f", {report['layout']}" if report.get("layout") else ""
    t = Table(title=f"{data['network']} (T={report.get('timesteps')}, B={report.get('batch')}{how}) on "
                    f"P={data['processors']}: sequential {seq:,.0f} cycles/minibatch, "
                    f"lower bound {lb:,} (speedup at most {seq / lb if lb else 0:.2f}x)")
    for col in ("schedule", "kind", "period", "simulated", "speedup", "util", "comm", "max delay", "gap P/D",
                "status", "peak mem", "energy", "EDP", "late"):
        t.add_column(col, justify="left" if col in ("schedule", "kind") else "right", no_wrap=True)
    for r in data["results"]:
        if r.get("error"):
            t.add_row(r["schedule"], "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", f"[red]{r['error'][:60]}[/red]")
            continue
        best = r["schedule"] == "spikepipe"
        t.add_row(
            f"[bold]{r['schedule']}[/bold]" if best else r["schedule"], r["kind"], f"{r['period_cycles']:,}",
            f"{r['simulated_period_cycles']:,.0f}", f"{r['speedup']:.2f}x", f"{r['mean_utilisation']:.0%}",
            f"{r['comm_fraction']:.1%}", str(r["max_delay"]), gap_cell(r), r.get("status", "-"),
            f"{r['peak_memory_bytes'] / 2**20:,.1f} MiB",
            f"{r.get('energy_joules', 0.0) * 1e3:,.3f} mJ", f"{r.get('energy_delay_product', 0.0):.3g} Js",
            str(r["late_slots"]))
    return t


def phases_table(data: dict[str, Any]):
    """BlocTrain's phases under each schedule: what every phase graph's schedule achieved; the rows above combine
    them (minibatch-weighted means over the phases, equal minibatches per phase)."""
    from rich.table import Table

    t = Table(title="phases (run in sequence; the rows above are their minibatch-weighted means, peak memory the "
                    "largest phase's)")
    for col in ("schedule", "phase", "trains layers", "samples", "period", "simulated", "speedup", "max delay",
                "peak mem"):
        t.add_column(col, justify="left" if col == "schedule" else "right", no_wrap=True)
    for r in data["results"]:
        for ph in r.get("phases") or ():
            a, b = ph["trained_layers"]
            t.add_row(r["schedule"], str(ph["phase"]), f"{a}..{b - 1}", f"{ph['sample_share']:.0%}",
                      f"{ph['period_cycles']:,}", f"{ph['simulated_period_cycles']:,.0f}", f"{ph['speedup']:.2f}x",
                      str(ph["max_delay"]), f"{ph['peak_memory_bytes'] / 2**20:,.1f} MiB")
    return t
