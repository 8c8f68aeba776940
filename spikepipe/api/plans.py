"""Operations on schedules as objects of their own: schedule files (as `simulate --schedule-out/--schedule-file`)
and the period/delay frontier (`spikepipe frontier`).

The files are spikepipe/schedule_file.py's two forms (JSON plain data, or the compact text form for `.txt`), so a
file written here is one the command reads and the reverse; a file read here is validated against the network's
task graph on the hardware before it is returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from spikepipe.api.inputs import ApiArgumentError, as_hardware, positive
from spikepipe.api.ops import HardwareArg, NetworkArg, as_workload, method_graph
from spikepipe.api.progress import ProgressArg, ProgressEvent, reporter
from spikepipe.api.results import FrontierResult
from spikepipe.ir import Schedule


def write_schedule(plan: Schedule, path: str | Path, network: NetworkArg, hardware: HardwareArg = None, *,
                   method: str = "bptt", method_blocks: int = 2) -> Path:
    """Write `plan`, a schedule of `network` on `hardware`, as `simulate --schedule-out` does: JSON plain data,
    or the compact text form (one token per slot) when the path ends in `.txt`; atomically. The file records the
    network, batch, timesteps and hardware it was made for, which `read_schedule` checks."""
    from spikepipe.schedule_file import write_schedule as write_file

    hw = as_hardware(hardware, plan.processors)
    graph = method_graph(as_workload(network).task_graph(hw), method, method_blocks)
    return write_file(path, plan, graph, hw.cluster)


def read_schedule(path: str | Path, network: NetworkArg, hardware: HardwareArg = None, *,
                  processors: int | None = None, method: str = "bptt", method_blocks: int = 2) -> Schedule:
    """The schedule a file holds (JSON or the text form, as `simulate --schedule-file`), for `network` on
    `processors` processors of the hardware (default: as many as the file says), validated before it is returned:
    a file made for another network, batch, timesteps or processor count, or a slot that breaks a dependency or
    overlaps another, raises ScheduleError (its first line names the first broken slot; `.grid` shows it)."""
    from spikepipe.schedule_file import from_data, read_data

    positive("processors", processors)
    data = read_data(path)
    if processors is None:
        made_for = data.get("processors")
        processors = made_for if isinstance(made_for, int) and not isinstance(made_for, bool) and made_for > 0 \
            else None
    hw = as_hardware(hardware, processors)
    graph = method_graph(as_workload(network).task_graph(hw), method, method_blocks)
    return from_data(data, graph, hw.cluster, source=str(path))


def compute_frontier(network: NetworkArg, hardware: HardwareArg = None, *, processors: int,
                     slacks: Sequence[float] | None = None, deterministic_time_s: float | None = None,
                     progress: ProgressArg = None) -> FrontierResult:
    """The Pareto set of period against gradient delay on `processors` processors (`spikepipe frontier`):
    spikepipe solved at each period slack of `slacks` (default spikepipe.frontier.SLACKS; the ladder stops once
    delay is zero or a zero-delay baseline is shorter) in `deterministic_time_s` of CP-SAT deterministic time each
    (reproducible on any load), and every baseline, each replayed and certified. (`spikepipe.frontier` is the
    module that computes it, hence the name.)"""
    from spikepipe.frontier import PERIODIC_BASELINES, SLACKS, ZERO_DELAY_BASELINES, frontier

    positive("processors", processors, optional=False)
    ladder = tuple(SLACKS if slacks is None else slacks)
    if not ladder or any(not isinstance(s, (int, float)) or not 0 <= s < 1 for s in ladder):
        raise ApiArgumentError(f"slacks must be fractions in [0, 1), got {list(ladder)!r}")
    if deterministic_time_s is not None and not deterministic_time_s > 0:
        raise ApiArgumentError(f"deterministic_time_s must be a positive number of seconds, "
                               f"got {deterministic_time_s!r}")
    hw = as_hardware(hardware, processors)
    graph = as_workload(network).task_graph(hw)
    options = {} if deterministic_time_s is None else {"deterministic_time_s": deterministic_time_s}
    total = len(PERIODIC_BASELINES) + len(ZERO_DELAY_BASELINES) + len(set(ladder))  # at most; the ladder may stop
    label = f"{graph.name} P={processors}"
    with reporter(progress, "frontier", total) as report_to:
        done = [0]

        def step(what: str) -> None:
            if report_to:
                report_to(ProgressEvent("frontier", done[0], total, f"{label}: {what}"))
            done[0] += 1

        fr = frontier(graph, hw.cluster, slacks=ladder, options=options, progress=step)
        if report_to:
            report_to(ProgressEvent("frontier", total, total, label))
    return FrontierResult.from_frontier(fr)
