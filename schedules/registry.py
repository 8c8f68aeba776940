"""Names of the schedule generators, their options' declarations (schedules.options) and lookup. Generators are
imported on first use, so asking for `sequential` never loads OR-tools."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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

# name -> its options' class (a ScheduleOptions dataclass), "module:Class", or "module:factory()" for one built on
# first use; the same names as _GENERATORS (tests/test_structure.py checks it)
_OPTION_CLASSES: dict[str, str] = {
    "sequential": "schedules.options:SequentialOptions",
    "data-parallel": "schedules.options:DataParallelOptions",
    "gpipe": "schedules.options:GPipeOptions",
    "1f1b": "schedules.options:OneFOneBOptions",
    "interleaved-1f1b": "schedules.options:InterleavedOptions",
    "zero-bubble": "schedules.options:ZeroBubbleOptions",
    "zb-v": "schedules.options:ZbVOptions",
    "pipedream": "schedules.options:PipeDreamOptions",
    "layerpipe": "schedules.options:LayerPipeOptions",
    "list": "schedules.options:ListOptions",
    "spikepipe": "schedules.spikepipe_options:SpikePipeOptions",
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


def options_class(name: str) -> type:
    """The dataclass that declares generator `name`'s options (its fields are the option names)."""
    get(name)  # the same error for an unknown name
    module, attr = _OPTION_CLASSES[name].split(":")
    return getattr(import_module(module), attr)


def option_targets() -> dict[str, tuple[str, ...]]:
    """Every option name any generator declares -> the generators that take it, in report order: how an option
    given once (simulate, compare, a sweep point) is routed to each generator."""
    from schedules.options import option_names

    out: dict[str, list[str]] = {}
    for name in _GENERATORS:
        for key in option_names(options_class(name)):
            out.setdefault(key, []).append(name)
    return {k: tuple(v) for k, v in out.items()}


def parse_options(name: str, options: Mapping[str, Any]) -> Any:
    """Generator `name`'s typed options from keywords: the check a generator makes at its entry, made early."""
    return options_class(name).from_mapping(options)


def generate(name: str, graph: TaskGraph, cluster: Cluster, options: Any = None, /, **kwargs: Any) -> Schedule:
    """Generator `name`'s schedule; its options as its typed object (options_class(name)) or as keywords."""
    if options is None:
        return get(name)(graph, cluster, **kwargs)
    return get(name)(graph, cluster, options, **kwargs)
