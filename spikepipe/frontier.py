"""The period/delay frontier: the Pareto set of (period, total delay, max delay) over schedules of one network on
one cluster, from the shortest period to the point where delay reaches its floor (zero).

Candidates: spikepipe at a ladder of period slacks, solved in increasing order (each solve seeded also by the
tight period's candidates and by the least-delay spikepipe schedule of the shorter slacks, stretched, so a slack
never adds delay over either), every periodic baseline (pipedream, layerpipe, list) and the zero-delay
ones (sequential and the flush schedules), each replayed in the simulator for its speedup and certified
(schedules.certificate). A schedule stays valid when its period is stretched, so a point at a longer period that
has no less total delay than a shorter one is dominated: the frontier keeps, in period order, each point with
less total delay than every shorter one (ties on total go to less max delay). The ladder stops once a solve
reaches zero delay or the shortest zero-delay baseline's period. Every baseline is then dominated by a frontier
point (it is a candidate itself). The knee is the point farthest below the straight line from the first point to
the last in (period, total delay), both scaled to [0, 1].
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from hwmodels import Cluster
from schedules.pareto import knee as knee_index
from schedules.pareto import staircase
from spikepipe.ir import Schedule, TaskGraph

log = logging.getLogger(__name__)

SLACKS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 0.95)
PERIODIC_BASELINES = ("pipedream", "layerpipe", "list")
ZERO_DELAY_BASELINES = ("sequential", "gpipe", "1f1b", "interleaved-1f1b", "zero-bubble", "zb-v")
# CP-SAT deterministic seconds per frontier solve: half of simulate's default (8.5), so phase 1 still gets the
# 0.35 s it had when the default was 2.0 and the points keep their periods, phase 2 2.3 s, the window search 1.25 s
DEFAULT_POINT_DETERMINISTIC_S = 4.25


@dataclass(frozen=True)
class FrontierPoint:
    period_cycles: int
    total_delay: int
    max_delay: int
    gradient_delays: tuple[int, ...]
    speedup: float
    simulated_period_cycles: float
    status: str
    period_lower_bound_cycles: int
    period_gap: float
    delay_lower_bound: int
    delay_gap: float
    source: str  # "spikepipe" or a baseline's name
    kind: str
    period_slack: float | None = None  # the slack spikepipe was asked for

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["gradient_delays"] = list(self.gradient_delays)
        return d


@dataclass(frozen=True)
class Frontier:
    network: str
    processors: int
    lower_bound_cycles: int
    sequential_cycles: float
    points: tuple[FrontierPoint, ...]
    candidates: tuple[FrontierPoint, ...] = field(default=())
    knee: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"network": self.network, "processors": self.processors,
                "lower_bound_cycles": self.lower_bound_cycles, "sequential_cycles": self.sequential_cycles,
                "knee": self.knee, "points": [p.to_dict() for p in self.points],
                "candidates": [p.to_dict() for p in self.candidates]}


def pareto(points: Sequence[FrontierPoint]) -> list[FrontierPoint]:
    """The monotone staircase of the candidates (schedules.pareto.staircase)."""
    return staircase(points, lambda p: (p.period_cycles, p.total_delay, p.max_delay, p.source))


def knee(points: Sequence[FrontierPoint]) -> int:
    return knee_index([(p.period_cycles, p.total_delay) for p in points])


def _point(ev, cert: dict[str, Any], source: str, slack: float | None) -> FrontierPoint:
    s = ev.schedule
    return FrontierPoint(
        period_cycles=s.period_cycles, total_delay=sum(s.gradient_delays), max_delay=max(s.gradient_delays, default=0),
        gradient_delays=tuple(s.gradient_delays), speedup=ev.row["speedup"],
        simulated_period_cycles=ev.row["simulated_period_cycles"], status=cert["status"],
        period_lower_bound_cycles=cert["period_lower_bound_cycles"], period_gap=cert["period_gap"],
        delay_lower_bound=cert["delay_lower_bound"], delay_gap=cert["delay_gap"], source=source, kind=s.kind,
        period_slack=slack)


def frontier(graph: TaskGraph, cluster: Cluster, *, slacks: Sequence[float] = SLACKS,
             options: dict[str, Any] | None = None, progress: Callable[[str], None] | None = None) -> Frontier:
    """The frontier; `options` go to spikepipe (default: DEFAULT_POINT_DETERMINISTIC_S of deterministic time)."""
    from schedules.spikepipe_sched import spikepipe
    from spikepipe.ir import lower_bound_cycles
    from spikepipe.sim.evaluate import evaluate_given, evaluate_one, options_for, sequential_period

    opts = {"deterministic_time_s": DEFAULT_POINT_DETERMINISTIC_S, **(options or {})}
    seq = sequential_period(graph, cluster)
    cands: list[FrontierPoint] = []

    def point(ev: Any, name: str, slack: float | None) -> FrontierPoint:
        cert = {k: ev.row[k] for k in ("status", "period_lower_bound_cycles", "period_gap", "delay_lower_bound",
                                       "delay_gap")}
        return _point(ev, cert, name, slack)

    # the baselines every spikepipe solve compares with: the same at every slack, so built once, here (a baseline
    # without options is what generate(name, graph, cluster) returns, as the solve would build it)
    built: dict[str, Schedule] = {}
    for name in (*PERIODIC_BASELINES, *ZERO_DELAY_BASELINES):
        if progress:
            progress(name)
        ev = evaluate_one(name, graph, cluster, sequential_cycles=seq, record=False)
        built[name] = ev.schedule
        cands.append(point(ev, name, None))
    zero = min((p.period_cycles for p in cands if p.total_delay == 0), default=None)
    tight = None
    best: Schedule | None = None  # the least-delay spikepipe schedule so far (all at shorter periods)
    for slack in sorted(set(slacks)):
        if not 0 <= slack < 1:
            raise ValueError(f"period slack {slack} is not in [0, 1)")
        if tight is not None and zero is not None and tight * (1 + slack) > zero:
            break
        if progress:
            progress(f"spikepipe slack {slack:g}")
        t0 = time.perf_counter()
        sched = spikepipe(graph, cluster, seeds=[best] if best else [], baselines=built,
                          **options_for("spikepipe", {**opts, "period_slack": slack}))
        ev = evaluate_given(sched, graph, cluster, sequential_cycles=seq, record=False,
                            schedule_wall_s=time.perf_counter() - t0)
        p = point(ev, "spikepipe", slack)
        cands.append(p)
        if best is None or sum(sched.gradient_delays) < sum(best.gradient_delays):
            best = sched
        tight = tight or p.period_cycles
        if p.total_delay == 0:
            break
    front = pareto(cands)
    return Frontier(graph.name, cluster.size, lower_bound_cycles(graph, cluster), seq, tuple(front), tuple(cands),
                    knee(front))


def save_frontier_plot(path: Any, fr: Frontier) -> Any:
    """frontier_figure written to `path`."""
    from spikepipe.io import save_figure

    return save_figure(frontier_figure(fr), path)


def frontier_figure(fr: Frontier) -> Any:
    """Speedup against total delay: the frontier as a staircase, every candidate baseline marked by name (a
    matplotlib Figure, no pyplot state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    # in delay order: the best speedup within a delay budget d holds from each point to the next larger delay
    pts = sorted(fr.points, key=lambda p: (p.total_delay, p.speedup))
    xs = [p.total_delay for p in pts]
    ys = [p.speedup for p in pts]
    ax.step(xs, ys, where="post", color="tab:blue", lw=1.5, label="frontier (Pareto: period vs total delay)")
    ax.plot(xs, ys, "o", color="tab:blue")
    if fr.points:
        k = fr.points[fr.knee]
        ax.plot([k.total_delay], [k.speedup], "*", ms=14, color="tab:orange", label="knee")
    markers = "sv^<>Dpxh+"
    for i, p in enumerate(c for c in fr.candidates if c.source != "spikepipe"):
        ax.plot([p.total_delay], [p.speedup], markers[i % len(markers)], color="0.35", mfc="none", ms=8,
                label=p.source)
    ax.set_xlabel("total gradient delay (sum over layers)")
    ax.set_ylabel("speedup over 1 processor (replayed)")
    ax.set_title(f"{fr.network}, P={fr.processors}: period/delay frontier")
    ax.grid(alpha=0.3)
    # beside the axes: a dozen baselines inside them cover the staircase wherever "best" puts them
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig
