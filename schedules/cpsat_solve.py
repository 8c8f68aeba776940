"""Solve a CP-SAT model with a recorded time limit, worker count and seed; report status, objective, bound, gap.
(The wall-clock Deadline one scheduler call shares between its phases is schedules.deadline's, re-exported.)"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from ortools.sat.python import cp_model

from schedules.deadline import Deadline

__all__ = ["Deadline", "SolveReport", "Solved", "solve"]


@dataclass(frozen=True)
class SolveReport:
    status: str
    objective: float | None
    bound: float | None
    gap: float | None  # (objective - bound) / objective; 0 when proven optimal
    time_limit_s: float
    workers: int
    seed: int
    wall_s: float
    deterministic_s: float | None = None  # CP-SAT deterministic-time limit, if the search was reproducible
    subsolvers: tuple[str, ...] | None = None  # the only full-problem searches run (None: CP-SAT's own set)

    @property
    def found(self) -> bool:
        return self.status in ("OPTIMAL", "FEASIBLE")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Solved:
    """A CP-SAT search: the solver (read the solution's values from it; None when the search was skipped for
    time) and its report."""

    solver: cp_model.CpSolver | None
    report: SolveReport


def solve(model: cp_model.CpModel, *, time_limit_s: float, workers: int, seed: int,
          deterministic_s: float | None = None, subsolvers: tuple[str, ...] | None = None) -> Solved:
    """Wall-clock limited by default. With `deterministic_s`, the search is limited in CP-SAT's deterministic
    time and the workers are interleaved (`interleave_search`), so the same seed and worker count give the same
    answer whatever the machine load; `time_limit_s` then only guards the wall clock. `subsolvers` names the
    only full-problem searches CP-SAT runs (and turns its neighbourhood searches off); None: CP-SAT's own set."""
    solver = cp_model.CpSolver()
    if subsolvers:
        solver.parameters.subsolvers.extend(subsolvers)
        solver.parameters.use_lns = False
    solver.parameters.max_time_in_seconds = max(0.01, float(time_limit_s))
    solver.parameters.num_workers = max(1, int(workers))
    solver.parameters.random_seed = int(seed)
    if deterministic_s is not None:
        solver.parameters.max_deterministic_time = max(0.001, float(deterministic_s))
        solver.parameters.interleave_search = True
    t0 = time.perf_counter()
    code = solver.solve(model)
    wall = time.perf_counter() - t0
    status = solver.status_name(code)
    obj = bound = gap = None
    if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        obj, bound = solver.objective_value, solver.best_objective_bound
        gap = 0.0 if code == cp_model.OPTIMAL else (abs(obj - bound) / abs(obj) if obj else 0.0)
    return Solved(solver, SolveReport(status, obj, bound, gap, float(time_limit_s), int(workers), int(seed), wall,
                                      deterministic_s, tuple(subsolvers) if subsolvers else None))
