"""What a schedule proves about itself: status, period and delay lower bounds, and the gaps to them.

status      optimal    CP-SAT's answer, period and total delay both at their (proven) bounds
            feasible   CP-SAT's answer, not proven optimal
            heuristic  a baseline or heuristic generator, or a schedule file (its bounds still say how far it may
                       be from best; a file's schedule at both bounds is optimal)
            fallback   spikepipe returned a seed or a baseline because its search found nothing better
period_lower_bound_cycles  no schedule of this class (whole tasks, or tasks in this many micro-batches) has a
            shorter period: max(work / P, largest task), raised to phase 1's proven bound when CP-SAT has one
delay_lower_bound  no schedule with this period and this processor assignment has less total delay (sum over
            layers); flush schedules have none. See schedules.delay_bounds.
Gaps are (value - bound) / value, 0 when the value is 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from math import ceil
from typing import Any, Literal

from hwmodels import Cluster
from schedules.delay_bounds import assignment_delay_bounds
from spikepipe.ir import Schedule, TaskGraph

Status = Literal["optimal", "feasible", "heuristic", "fallback"]


@dataclass(frozen=True)
class Certificate:
    status: Status
    period_lower_bound_cycles: int
    period_gap: float
    delay_lower_bound: int
    delay_gap: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def compact(self) -> str:
        """Period gap and delay gap in one short cell: `0.0%/67%`."""
        return f"{self.period_gap:.1%}/{self.delay_gap:.0%}"


def _gap(value: int, bound: int) -> float:
    return (value - bound) / value if value > 0 else 0.0


def _split_work_bound(graph: TaskGraph, cluster: Cluster) -> int:
    """Work / P with every task at its cheapest price over batch fractions 1/m, m <= 4P: a bound for schedules
    that split tasks across processors (a part can be priced below its share of the whole task)."""
    procs = tuple(dict.fromkeys(cluster.processors))
    ms = range(1, max(1, min(graph.batch, 4 * cluster.size)) + 1)
    work = sum(min(m * graph.cycles(t, p, 1.0 / m) if m > 1 else graph.cycles(t, p) for p in procs for m in ms)
               for t in graph.topological_order())
    return int(ceil(work / cluster.size))


def _period_bound(s: Schedule, graph: TaskGraph, cluster: Cluster) -> int:
    if any(sl.part for sl in s.slots):  # split tasks: the whole-task bounds (and phase 1's) do not hold
        return min(_split_work_bound(graph, cluster), s.period_cycles)
    lb = int(s.info.get("lower_bound_cycles", 0))
    p1 = s.info.get("phase1") if s.name == "spikepipe" and "relabelled_from" not in s.info else None
    restricted = "model_restricted" in s.info
    if isinstance(p1, dict) and p1.get("bound") is not None and p1.get("status") in ("OPTIMAL", "FEASIBLE") \
            and not restricted:
        # phase 1 minimises the busiest processor over every assignment of whole tasks: its proven bound bounds
        # every periodic schedule of whole tasks (the links only lengthen it)
        lb = max(lb, int(ceil(float(p1["bound"]) - 1e-6)))
    return min(lb, s.period_cycles)


def _delay_bound(s: Schedule, graph: TaskGraph, cluster: Cluster) -> int:
    if s.kind == "flush":
        return 0
    total = sum(s.gradient_delays)
    p2 = s.info.get("phase2") if s.name == "spikepipe" and "relabelled_from" not in s.info else None
    if (isinstance(p2, dict) and p2.get("status") == "OPTIMAL"
            and str(s.info.get("phase2_source", "")).startswith("cp-sat")):
        # phase 2 proved its objective minimal for its period and assignment (the polish keeps the processors);
        # its model leaves link waits out, so the schedule's total may be above it, never below
        return min(total, int(ceil(float(p2["objective"]) - 1e-6)))
    split = any(sl.part for sl in s.slots)
    assign = None if split else {sl.task: sl.processor for sl in s.slots}
    return min(total, sum(assignment_delay_bounds(graph, cluster, s.period_cycles, assign)))


def certify(schedule: Schedule, graph: TaskGraph, cluster: Cluster) -> Certificate:
    s = schedule
    plb = _period_bound(s, graph, cluster)
    dlb = _delay_bound(s, graph, cluster)
    pgap, dgap = _gap(s.period_cycles, plb), _gap(sum(s.gradient_delays), dlb)
    if "source" in s.info:  # read from a schedule file: only its bounds can prove anything about it
        status: Status = "optimal" if pgap == 0 and dgap == 0 else "heuristic"
    elif s.name != "spikepipe":
        status = "heuristic"
    elif "relabelled_from" in s.info or s.info.get("fallback"):
        status = "fallback"
    elif pgap == 0 and dgap == 0:
        status = "optimal"
    else:
        status = "feasible"
    return Certificate(status, plb, pgap, dlb, dgap)
