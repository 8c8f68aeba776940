"""Names of the schedule generators and lookup. Generators are imported on first use, so asking for `sequential`
never loads OR-tools."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

from hwmodels import Cluster
from spikepipe.ir import Schedule, SpikePipeError, TaskGraph

Generator = Callable[..., Schedule]

# name -> "module:function"; order is the order of reports (baselines first, SpikePipe last)
_GENERATORS: dict[str, str] = {
    "sequential": "schedules.sequential:sequential",
    "data-parallel": "schedules.data_parallel:data_parallel",
    "gpipe": "schedules.flush:gpipe",
    "1f1b": "schedules.flush:one_f_one_b",
    "interleaved-1f1b": "schedules.flush:interleaved_1f1b",
    "zero-bubble": "schedules.flush:zero_bubble",
    "zb-v": "schedules.flush:zb_v",
    "pipedream": "schedules.pipedream:pipedream",
    "layerpipe": "schedules.pipedream:layerpipe",
    "list": "schedules.listsched:list_schedule",
    "spikepipe": "schedules.spikepipe_sched:spikepipe",
}

# the standard schedules that pipeline whole tasks (no batch split across processors): what spikepipe must beat
PIPELINING = ("sequential", "gpipe", "1f1b", "interleaved-1f1b", "zero-bubble", "zb-v", "pipedream",
              "layerpipe")


class UnknownScheduleError(SpikePipeError):
    """No schedule generator has this name."""


def names() -> list[str]:
    return list(_GENERATORS)


def get(name: str) -> Generator:
    try:
        target = _GENERATORS[name]
    except KeyError:
        raise UnknownScheduleError(f"unknown schedule {name!r}; valid names: {', '.join(_GENERATORS)}") from None
    module, func = target.split(":")
    return getattr(import_module(module), func)


def generate(name: str, graph: TaskGraph, cluster: Cluster, **options: Any) -> Schedule:
    return get(name)(graph, cluster, **options)
