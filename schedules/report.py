"""What the spikepipe scheduler says about one call: a frozen dataclass the Schedule.info mapping is generated from.

The keys of `SchedulerReport.to_info()` (names, order, values) are the contract tests, the certificate
(schedules.certificate) and the rows of `simulate` read; docs/design.md section 7 says why the scheduler has the
phases it reports. `BudgetReport` is the wall time per phase and what was cut for time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from schedules.cpsat_solve import SolveReport


@dataclass(frozen=True)
class BudgetReport:
    """Wall seconds per phase of one call (and per baseline), and the notes of what was cut for time."""
    time_limit_s: float
    phases_s: Mapping[str, float]
    baselines_s: Mapping[str, float]
    elapsed_s: float
    skipped_for_time: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        phases = {k: round(v, 4) for k, v in self.phases_s.items()}
        return {"time_limit_s": self.time_limit_s, "phases_s": phases,
                "baselines_s": {k: round(v, 4) for k, v in self.baselines_s.items()},
                "accounted_s": round(sum(phases.values()), 4), "elapsed_s": round(self.elapsed_s, 4),
                "skipped_for_time": list(self.skipped_for_time)}


@dataclass(frozen=True)
class Relabel:
    """A baseline returned under spikepipe's name because it beat the search, and why."""
    baseline: str
    lower_bound_cycles: int
    period_gap_to_lower_bound: float
    reason: str


@dataclass(frozen=True)
class SchedulerReport:
    """One spikepipe call (unsplit): the start (bounds, hint, baselines), phase 1 (assignment and period), the
    seeds and phase 2 (order, lags, delay), the budget and the certificate's inputs."""
    # start
    lower_bound_cycles: int
    hint: str
    hint_period_cycles: int
    best_baseline: str | None
    best_baseline_period_cycles: int | None
    baselines_compared: tuple[str, ...]
    time_limit_s: float
    workers: int
    seed: int
    budget_mode: str
    deterministic_time_s: float | None
    deterministic: bool
    fallback: str | None
    candidate_processors_per_task: int
    model_restricted: str | None
    # phase 1
    phase1: SolveReport
    phase1_link_constraints: int
    period_slack: float
    period_before_slack_cycles: int
    # seeds and phase 2
    order_search: Mapping[str, Any]
    candidates_total_delay: Mapping[str, int]
    seed_total_delay: int
    delay_lower_bound: int
    delay_lower_bound_for_assignment: int
    phase2_assignment: str  # the seed whose processor assignment phase 2 kept
    phase2: SolveReport
    phase2_source: str
    window_search: Mapping[str, Any]
    polish: Mapping[str, Any]
    period_slack_used: bool
    colocate: Mapping[str, Any]
    # outcome
    solve_s: float
    wall_guard_fired: bool
    reproducible: bool
    status: str
    objective_total_delay: int
    delay_gap: float
    period_gap_to_lower_bound: float
    period_proven_optimal: bool
    processors_used: int
    budget: BudgetReport
    relabel: Relabel | None = field(default=None)

    def to_info(self, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Schedule.info: `base` (the returned schedule's own info) updated with this report's keys."""
        ours: dict[str, Any] = {
            "lower_bound_cycles": self.lower_bound_cycles, "hint": self.hint,
            "hint_period_cycles": self.hint_period_cycles, "best_baseline": self.best_baseline,
            "best_baseline_period_cycles": self.best_baseline_period_cycles,
            "baselines_compared": list(self.baselines_compared), "time_limit_s": self.time_limit_s,
            "workers": self.workers, "seed": self.seed, "budget_mode": self.budget_mode,
            "deterministic_time_s": self.deterministic_time_s, "deterministic": self.deterministic,
            "fallback": self.fallback, "candidate_processors_per_task": self.candidate_processors_per_task}
        if self.model_restricted is not None:
            ours["model_restricted"] = self.model_restricted
        ours["phase1"] = {**self.phase1.to_dict(), "link_constraints": self.phase1_link_constraints}
        ours.update({
            "period_slack": self.period_slack, "period_before_slack_cycles": self.period_before_slack_cycles,
            "order_search": dict(self.order_search), "candidates_total_delay": dict(self.candidates_total_delay),
            "seed_total_delay": self.seed_total_delay, "delay_lower_bound": self.delay_lower_bound,
            "delay_lower_bound_for_assignment": self.delay_lower_bound_for_assignment,
            "phase2_assignment": self.phase2_assignment, "phase2": self.phase2.to_dict(),
            "phase2_source": self.phase2_source, "window_search": dict(self.window_search),
            "polish": dict(self.polish),
            "period_slack_used": self.period_slack_used, "colocate": dict(self.colocate),
            "solve_s": self.solve_s, "wall_guard_fired": self.wall_guard_fired, "reproducible": self.reproducible,
            "status": self.status, "objective_total_delay": self.objective_total_delay,
            "delay_gap": self.delay_gap, "period_gap_to_lower_bound": self.period_gap_to_lower_bound,
            "period_proven_optimal": self.period_proven_optimal, "processors_used": self.processors_used,
            "budget": self.budget.to_dict()})
        if self.relabel is None:
            return {**(base or {}), **ours}
        r = self.relabel
        return {**(base or {}), **ours, "relabelled_from": r.baseline, "lower_bound_cycles": r.lower_bound_cycles,
                "period_gap_to_lower_bound": r.period_gap_to_lower_bound, "reason": r.reason}
