"""The spikepipe generator's options as one frozen dataclass, validated once where they enter
(schedules.spikepipe_sched.spikepipe; docs/design.md section 8 follows one option from the command line here).

Unknown names raise what schedules.common.check_options raises for every generator; bad values raise the same
ScheduleOptionError messages the generator gave before it had a typed options object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar, Literal

from schedules.common import ScheduleOptionError, check_options, positive_int_option
from schedules.options import ScheduleOptions

# the default budget (no time_limit_s): CP-SAT deterministic seconds of all solves together, 0.7 s each for phase
# 1 and the chain assignment, 4.6 s for phase 2 and 2.5 s for the window search (schedules.spikepipe_phases,
# *_DET_SHARE; with the default 2 workers phase 2 takes 3 to 15 s of wall time on an idle 2-core machine on vgg11
# to resnet18). It was 6.0 before the window search: its time came on top, so every earlier phase kept its own
# (taken from phase 2 instead, it cost resnet18 2 to 6 delay points at P=4 and 8). The windows stop when none
# improves, so the cases that converge sooner (vgg11, vgg16) spend no more...
DEFAULT_DETERMINISTIC_S = 8.5
# ...and a wall-clock guard only a pathological case reaches (if it cuts anything, info says reproducible: false).
# 300 s was not enough: at a load average of 17 on the 2-core machine the default budget took 240-260 s of wall
# time on vgg16/resnet18/vgg11-28 at P=4, the guard's shares cut phase 2 and a baseline, and vgg11-28 came out at
# total delay 27 instead of the 20 the same command gives at load 8 (experiments/README.md section 3)
WALL_GUARD_S = 900.0
# the baselines a spikepipe result is compared with (and never loses to)
DEFAULT_COMPARE = ("sequential", "gpipe", "1f1b", "interleaved-1f1b", "zero-bubble", "zb-v", "pipedream",
                   "layerpipe")

BudgetMode = Literal["deterministic", "wall-clock"]


def _seconds(key: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ScheduleOptionError(f"spikepipe: {key} must be a number of seconds > 0, got {value!r}")
    return float(value)


_NEED = ("spikepipe: need time_limit_s > 0, workers >= 1, 0 <= period_slack < 1 and search_evaluations >= 0")


def _int_at_least(value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ScheduleOptionError(_NEED)
    return value


@dataclass(frozen=True)
class SpikePipeOptions(ScheduleOptions):
    """time_limit_s: the whole call's wall time, split path included (not reproducible under load); None: the
    budget is deterministic_time_s of CP-SAT deterministic time (DEFAULT_DETERMINISTIC_S) and
    search_evaluations order-search moves, under a wall guard of WALL_GUARD_S. period_slack: a fraction of the
    shortest period to give up for less delay, or "auto" (the knee over schedules.spikepipe_sched.AUTO_SLACKS).
    split: intra-layer batch splitting (schedules.split), with at most max_parts parts per layer. compare: the
    baselines the result never loses to. budget_mode is set by the generator from time_limit_s."""
    generator: ClassVar[str] = "spikepipe"
    time_limit_s: float | None = None
    workers: int = 2
    seed: int = 0
    period_slack: float | Literal["auto"] = 0.0
    compare: tuple[str, ...] = DEFAULT_COMPARE
    deterministic: bool = True
    deterministic_time_s: float | None = None
    search_evaluations: int = 3000
    split: bool = False
    max_parts: int | None = None
    budget_mode: BudgetMode | None = None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> SpikePipeOptions:
        check_options("spikepipe", options, cls.names())
        o = dict(options)
        out: dict[str, Any] = {}
        if o.get("time_limit_s") is not None:
            out["time_limit_s"] = _seconds("time_limit_s", o["time_limit_s"])
        if "workers" in o:
            out["workers"] = _int_at_least(o["workers"], 1)
        if "seed" in o:
            if isinstance(o["seed"], bool) or not isinstance(o["seed"], int):
                raise ScheduleOptionError(f"spikepipe: seed must be an integer, got {o['seed']!r}")
            out["seed"] = o["seed"]
        if "period_slack" in o:
            slack = o["period_slack"]
            if slack != "auto":
                if isinstance(slack, bool) or not isinstance(slack, (int, float)) or not 0 <= slack < 1:
                    raise ScheduleOptionError(_NEED)
                slack = float(slack)
            out["period_slack"] = slack
        if "compare" in o:
            compare = o["compare"]
            if isinstance(compare, str) or not all(isinstance(n, str) for n in compare):
                raise ScheduleOptionError(f"spikepipe: compare must be a list of schedule names, got {compare!r}")
            out["compare"] = tuple(compare)
        if "deterministic" in o:
            out["deterministic"] = bool(o["deterministic"])
        if o.get("deterministic_time_s") is not None:
            out["deterministic_time_s"] = _seconds("deterministic_time_s", o["deterministic_time_s"])
        if "search_evaluations" in o:
            out["search_evaluations"] = _int_at_least(o["search_evaluations"], 0)
        if "split" in o:
            out["split"] = bool(o["split"])
        if o.get("max_parts") is not None:
            out["max_parts"] = positive_int_option("spikepipe", "max_parts", o["max_parts"])
        if o.get("budget_mode") is not None:
            if o["budget_mode"] not in ("deterministic", "wall-clock"):
                raise ScheduleOptionError(f"spikepipe: budget_mode must be 'deterministic' or 'wall-clock', got "
                                          f"{o['budget_mode']!r}")
            out["budget_mode"] = o["budget_mode"]
        return cls(**out)

    def resolved(self) -> SpikePipeOptions:
        """The budget made explicit: without time_limit_s, deterministic time (default DEFAULT_DETERMINISTIC_S)
        under the wall guard; with it, the wall clock."""
        if self.time_limit_s is None:
            det = DEFAULT_DETERMINISTIC_S if self.deterministic_time_s is None else self.deterministic_time_s
            return replace(self, deterministic_time_s=det, budget_mode="deterministic")
        return replace(self, budget_mode="wall-clock")

    @property
    def wall_limit_s(self) -> float:
        """The wall-clock limit of the call: time_limit_s, else the guard."""
        return WALL_GUARD_S if self.time_limit_s is None else self.time_limit_s
