"""Frozen result objects of the Python API. Each carries everything its command's JSON carries.

`.to_dict()` is exactly the command's `--json` object (docs/contract.md), built by the same functions the CLI
uses; `.to_pandas()` a table; `.plot()` a matplotlib Figure (shown inline by Jupyter, never a global pyplot).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from spikepipe.ir import Schedule, SpikePipeError, TaskGraph
from spikepipe.sim.result import SimResult

if TYPE_CHECKING:
    import pandas
    from matplotlib.figure import Figure
    from torch import nn

    from spikepipe.frontier import Frontier, FrontierPoint
    from spikepipe.zoo import NetworkInfo


class ResultLookupError(SpikePipeError, KeyError):
    """A result was asked for a schedule or processor count it does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def _frozen(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(copy.deepcopy(dict(d)))


def _table(rows: list[dict[str, Any]]) -> pandas.DataFrame:
    import pandas as pd

    return pd.DataFrame(rows)


@dataclass(frozen=True)
class ScheduleResult:
    """One schedule on one cluster, replayed. `plan` is the Schedule (slots, lags, period), `replay` the
    simulator's measurement; both are None for a generator that failed (`error` says why)."""

    schedule: str
    kind: str | None
    processors: int
    period_cycles: int | None
    simulated_period_cycles: float | None
    speedup: float | None
    comm_fraction: float | None
    gradient_delays: tuple[int, ...] | None
    peak_memory_bytes: int | None
    max_delay: int | None
    mean_utilisation: float | None
    late_slots: int | None
    sequential_cycles: float | None
    error: str | None
    row: Mapping[str, Any] = field(repr=False, compare=False)
    plan: Schedule | None = field(default=None, repr=False, compare=False)
    replay: SimResult | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_row(cls, row: Mapping[str, Any], processors: int, plan: Schedule | None = None,
                 replay: SimResult | None = None) -> ScheduleResult:
        delays = row.get("gradient_delays")
        return cls(schedule=row["schedule"], kind=row.get("kind"), processors=int(row.get("processors") or processors),
                   period_cycles=row.get("period_cycles"), simulated_period_cycles=row.get("simulated_period_cycles"),
                   speedup=row.get("speedup"), comm_fraction=row.get("comm_fraction"),
                   gradient_delays=None if delays is None else tuple(delays),
                   peak_memory_bytes=row.get("peak_memory_bytes"), max_delay=row.get("max_delay"),
                   mean_utilisation=row.get("mean_utilisation"), late_slots=row.get("late_slots"),
                   sequential_cycles=row.get("sequential_cycles"), error=row.get("error"), row=_frozen(row),
                   plan=plan, replay=replay)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """The row of `simulate --json`'s results for this schedule."""
        return copy.deepcopy(dict(self.row))

    def plot(self, *, network: str = "", num_layers: int | None = None) -> Figure:
        """Gantt chart of one steady-state period of the replay."""
        if self.plan is None or self.replay is None:
            raise ResultLookupError(f"schedule {self.schedule} did not run ({self.error}); nothing to plot")
        from spikepipe.plots import gantt_figure

        return gantt_figure(self.plan, self.replay, network=network, num_layers=num_layers)


@dataclass(frozen=True)
class SimulateResult:
    """Every requested schedule of one network on one cluster (`spikepipe simulate`)."""

    network: str
    processors: int
    batch: int
    timesteps: int
    lower_bound_cycles: int
    sequential_cycles: float
    ideal_speedup: float | None
    results: tuple[ScheduleResult, ...]
    contract: Mapping[str, Any] = field(repr=False, compare=False)
    graph: TaskGraph | None = field(default=None, repr=False, compare=False)
    # a method trained in phases (bloctrain): each phase's own result, with its schedules and replays; the rows
    # above combine them (spikepipe.methods.phased) and hold no schedule of their own
    phases: tuple[SimulateResult, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def from_report(cls, report: Mapping[str, Any], evaluations: list[Any] = (),  # type: ignore[assignment]
                    graph: TaskGraph | None = None, phases: tuple[SimulateResult, ...] = ()) -> SimulateResult:
        from spikepipe.api.contract import contract_report

        data = contract_report(report)
        by_name = {e.schedule.name: e for e in evaluations}
        rows = []
        for r in data["results"]:
            ev = by_name.get(r["schedule"]) if not r.get("error") else None
            rows.append(ScheduleResult.from_row(r, report["processors"], ev.schedule if ev else None,
                                                ev.sim if ev else None))
        return cls(network=report["network"], processors=report["processors"], batch=report["batch"],
                   timesteps=report["timesteps"], lower_bound_cycles=report["lower_bound_cycles"],
                   sequential_cycles=report["sequential_cycles"], ideal_speedup=report["ideal_speedup"],
                   results=tuple(rows), contract=_frozen(data), graph=graph, phases=tuple(phases))

    def __getitem__(self, schedule: str) -> ScheduleResult:
        for r in self.results:
            if r.schedule == schedule:
                return r
        raise ResultLookupError(f"no result for schedule {schedule!r}; have {', '.join(self.names)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.schedule for r in self.results)

    @property
    def best(self) -> ScheduleResult:
        """The result with the highest speedup (ties: the first in report order)."""
        ok = [r for r in self.results if r.ok]
        if not ok:
            raise ResultLookupError("every schedule failed; no best result")
        return max(ok, key=lambda r: r.speedup or 0.0)

    def to_dict(self) -> dict[str, Any]:
        """Exactly the `simulate --json` object."""
        return copy.deepcopy(dict(self.contract))

    def to_pandas(self) -> pandas.DataFrame:
        """One row per schedule (as `simulate --csv`)."""
        return _table([{"network": self.network, **r.to_dict()} for r in self.results])

    def _repr_html_(self) -> str:  # Jupyter: the table, not a wall of dataclass fields
        cols = ["schedule", "kind", "period_cycles", "speedup", "max_delay", "peak_memory_bytes", "error"]
        table = self.to_pandas()
        return (f"<p><b>{self.network}</b> on P={self.processors}: lower bound {self.lower_bound_cycles:,} cycles, "
                f"sequential {self.sequential_cycles:,.0f}</p>" + table[[c for c in cols if c in table]].to_html())

    def plot(self, schedule: str | None = None) -> Figure:
        """Gantt chart of one steady-state period of `schedule` (default: spikepipe if it ran, else the first)."""
        if self.phases:
            raise ResultLookupError("this result combines BlocTrain's phases, one schedule each; plot a phase: "
                                    ".phases[g].plot(schedule)")
        ran = [r for r in self.results if r.ok]
        if schedule is None:
            pick = next((r for r in ran if r.schedule == "spikepipe"), ran[0] if ran else None)
            if pick is None:
                raise ResultLookupError("no schedule ran; nothing to plot")
        else:
            pick = self[schedule]
        return pick.plot(network=self.network, num_layers=self.graph.num_layers if self.graph else None)


@dataclass(frozen=True)
class CompareResult:
    """Every schedule at several processor counts (`spikepipe compare`)."""

    network: str
    processors: tuple[int, ...]
    batch: int
    timesteps: int
    reports: tuple[SimulateResult, ...]
    files: Mapping[str, Any]
    summary: Mapping[str, Any] = field(repr=False, compare=False)

    def __getitem__(self, processors: int) -> SimulateResult:
        for r in self.reports:
            if r.processors == processors:
                return r
        raise ResultLookupError(f"no report for P={processors}; have {', '.join(map(str, self.processors))}")

    def to_dict(self) -> dict[str, Any]:
        """Exactly the `compare --json` object."""
        return copy.deepcopy(dict(self.summary))

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per (processor count, schedule), as `compare` writes results.csv."""
        return [{"network": self.network, "processors": rep.processors, "lower_bound_cycles": rep.lower_bound_cycles,
                 **r.to_dict()} for rep in self.reports for r in rep.results]

    def to_pandas(self) -> pandas.DataFrame:
        """One row per (processor count, schedule), as results.csv."""
        return _table(self.rows())

    def _repr_html_(self) -> str:
        import pandas as pd

        return (f"<p><b>{self.network}</b>: speedup by schedule and P</p>"
                + pd.DataFrame(self.speedups()).rename_axis("P").to_html())

    def speedups(self) -> dict[str, dict[int, float]]:
        """schedule -> {P: speedup} for the schedules that ran."""
        out: dict[str, dict[int, float]] = {}
        for rep in self.reports:
            for r in rep.results:
                if r.ok and r.speedup is not None:
                    out.setdefault(r.schedule, {})[rep.processors] = r.speedup
        return out

    def plot(self) -> Figure:
        """Speedup against processors for every schedule, with the lower-bound ceiling."""
        from spikepipe.plots import speedup_figure

        ok = [r for r in self.rows() if not r.get("error")]
        ideal = {rep.processors: rep.ideal_speedup for rep in self.reports if rep.ideal_speedup is not None}
        n = len({r["schedule"] for r in self.rows()})
        return speedup_figure(ok, ideal, network=self.network,
                              subtitle=f"B={self.batch}, T={self.timesteps}, {n} schedules, replayed in SimPy")

    def plot_gantt(self, schedule: str | None = None, processors: int | None = None) -> Figure:
        """Gantt chart of one schedule at one processor count (default: the largest)."""
        return self[processors if processors is not None else max(self.processors)].plot(schedule)


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of training: losses and accuracies, learning rate at its end, wall time."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    lr: float
    seconds: float
    step_seconds: float


@dataclass(frozen=True)
class TrainResult:
    """A training run (`spikepipe train`). `model` is the user's module with the trained weights loaded."""

    network: str
    dataset: str
    schedule: str
    processors: int
    trainer: str
    epochs: int
    batch: int
    timesteps: int
    test_accuracy: float
    test_loss: float
    val_accuracy: float | None
    gradient_delays: tuple[int, ...]
    measured_delays: tuple[int, ...]
    period_cycles: int | None
    history: tuple[EpochRecord, ...]
    data: Mapping[str, Any] = field(repr=False, compare=False)
    model: nn.Module | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_data(cls, data: Mapping[str, Any], model: nn.Module | None = None) -> TrainResult:
        return cls(network=data["network"], dataset=data["dataset"], schedule=data["schedule"],
                   processors=data["processors"], trainer=data["trainer"], epochs=data["epochs"],
                   batch=data["batch"], timesteps=data["timesteps"], test_accuracy=data["test_accuracy"],
                   test_loss=data["test_loss"], val_accuracy=data["val_accuracy"],
                   gradient_delays=tuple(data["gradient_delays"]), measured_delays=tuple(data["measured_delays"]),
                   period_cycles=data["period_cycles"], history=tuple(EpochRecord(**{f.name: h[f.name] for f in fields(EpochRecord)})
                                 for h in data["history"]),
                   data=_frozen(data), model=model)

    def to_dict(self) -> dict[str, Any]:
        """Exactly the `train --json` object."""
        return copy.deepcopy(dict(self.data))

    def to_pandas(self) -> pandas.DataFrame:
        """One row per epoch."""
        return _table([dict(h) for h in self.data["history"]])

    def _repr_html_(self) -> str:
        return (f"<p><b>{self.network}</b> on {self.dataset}, schedule {self.schedule} (delays "
                f"{list(self.gradient_delays)}): test accuracy {100 * self.test_accuracy:.2f}%</p>"
                + self.to_pandas().to_html())

    def plot(self) -> Figure:
        """Loss and accuracy per epoch, training and validation."""
        from spikepipe.plots import curves_figure

        return curves_figure(list(self.data["history"]),
                             f"{self.network} on {self.dataset}, schedule {self.schedule} (delays "
                             f"{list(self.gradient_delays)}): test accuracy {100 * self.test_accuracy:.1f}%")


@dataclass(frozen=True)
class CyclesResult:
    """Cycles of one GEMM C[m x n] = A[m x k] B[k x n] on a systolic array (`spikepipe cycles`)."""

    cycles: int
    stall_cycles: int
    total_cycles: int
    m: int
    k: int
    n: int
    array: str
    dataflow: str
    folds: int
    utilization: float
    dram_bytes: int
    model: str
    data: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> CyclesResult:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name != "data"}, data=_frozen(data))

    def to_dict(self) -> dict[str, Any]:
        """Exactly the `cycles --json` object."""
        return copy.deepcopy(dict(self.data))


@dataclass(frozen=True)
class TasksResult:
    """The costed F/B/W task graph of one minibatch (`spikepipe tasks`); `graph` is the TaskGraph itself."""

    network: str
    batch: int
    timesteps: int
    total_cycles: int
    num_layers: int
    data: Mapping[str, Any] = field(repr=False, compare=False)
    graph: TaskGraph | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Exactly the `tasks --json` object."""
        return copy.deepcopy(dict(self.data))

    def to_pandas(self) -> pandas.DataFrame:
        """One row per task: id, layer, kind, cycles, MACs, bytes (GEMMs and vector work as lists)."""
        return _table([dict(t) for t in self.data["tasks"]])


@dataclass(frozen=True)
class SweepResult:
    """A design-space sweep (`spikepipe sweep`): counts, and the table of every finished point."""

    sweep: str
    kind: str
    points: int
    computed: int
    cached: int
    failed: int
    table_csv: str
    table_parquet: str | None
    data: Mapping[str, Any] = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Exactly the `sweep --json` object."""
        return copy.deepcopy(dict(self.data))

    def to_pandas(self) -> pandas.DataFrame:
        """The sweep's table: one row per point (its parameters, its results, status and error)."""
        import pandas as pd

        return pd.read_csv(self.table_csv)


@dataclass(frozen=True)
class FrontierResult:
    """The period/delay Pareto set of one network on P processors (`spikepipe frontier`): `points` in period
    order (each a frozen spikepipe.FrontierPoint: period, total and max delay, per-layer delays, speedup,
    certificate status and gaps, where it came from), `knee` the index of the knee among them, `candidates`
    every schedule that was tried."""

    network: str
    processors: int
    lower_bound_cycles: int
    sequential_cycles: float
    knee: int
    points: tuple[FrontierPoint, ...]
    candidates: tuple[FrontierPoint, ...] = field(repr=False)
    data: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_frontier(cls, fr: Frontier) -> FrontierResult:
        return cls(fr.network, fr.processors, fr.lower_bound_cycles, fr.sequential_cycles, fr.knee,
                   tuple(fr.points), tuple(fr.candidates), _frozen(fr.to_dict()))

    @property
    def knee_point(self) -> FrontierPoint:
        """The frontier point farthest below the chord from the shortest period to the least delay."""
        if not self.points:
            raise ResultLookupError(f"the frontier of {self.network} has no points")
        return self.points[self.knee]

    def to_dict(self) -> dict[str, Any]:
        """Exactly the `frontier --json` object."""
        return copy.deepcopy(dict(self.data))

    def to_pandas(self, *, candidates: bool = False) -> pandas.DataFrame:
        """One row per frontier point with a `knee` column (as frontier.csv); `candidates=True`: every schedule
        tried, with `on_frontier`."""
        if candidates:
            kept = set(self.points)
            return _table([{**p.to_dict(), "on_frontier": p in kept} for p in self.candidates])
        return _table([{**p.to_dict(), "knee": i == self.knee} for i, p in enumerate(self.points)])

    def plot(self) -> Figure:
        """Speedup against total gradient delay: the frontier's staircase, its knee and every baseline."""
        from spikepipe.frontier import Frontier, frontier_figure

        return frontier_figure(Frontier(self.network, self.processors, self.lower_bound_cycles,
                                        self.sequential_cycles, self.points, self.candidates, self.knee))


@dataclass(frozen=True)
class NetworksResult:
    """The built-in networks (`spikepipe networks`): `names`, and per network its description, input shape,
    classes, default timesteps and batch (`details`, spikepipe.zoo.NetworkInfo records)."""

    names: tuple[str, ...]
    details: tuple[NetworkInfo, ...] = field(repr=False)
    data: Mapping[str, Any] = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Exactly the `networks --json` object."""
        return copy.deepcopy(dict(self.data))

    def to_pandas(self) -> pandas.DataFrame:
        """One row per network."""
        return _table([dict(d) for d in self.data["details"]])
