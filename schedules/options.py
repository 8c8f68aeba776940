"""Every schedule generator's options, declared once as a frozen dataclass (docs/extending.md, "a schedule
generator"): the generator converts what it is given once, at its entry, and everything that passes options on
(the evaluator's routing, the sweep's keys, the CLI's `--option`, the API's `options=`) reads the names from
these declarations through the registry (schedules.registry.options_class), so no list of option names exists
twice.

A field's default is what the generator does when the option is not given (None: the generator chooses, e.g.
the micro-batch count that gives the shortest period). Values are checked when the object is built, with the
same error type and wording as before the declarations existed: unknown names list the valid ones.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from schedules.common import ScheduleOptionError, check_options, positive_int_option

T = TypeVar("T", bound="ScheduleOptions")
Check = Callable[[str, str, Any], Any]


def option(default: Any = None, check: Check | None = None, doc: str = "") -> Any:
    """A dataclass field that is a generator option: its default, its value check, and one line saying what it
    does (for readers and `dataclasses.fields(cls)[i].metadata["doc"]`)."""
    return field(default=default, metadata={"check": check, "doc": doc})


def positive_int(generator: str, key: str, value: Any) -> None:
    if value is not None:
        positive_int_option(generator, key, value)


def positive_number(generator: str, key: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < float("inf"):
        raise ScheduleOptionError(f"schedule {generator!r}: option {key} must be a positive number, got {value!r}")


def option_names(cls: type) -> tuple[str, ...]:
    """The options a generator's class declares: its dataclass fields, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(cls))


@dataclass(frozen=True)
class ScheduleOptions:
    """The base of every generator's options: `from_mapping` is the one boundary from plain keywords."""

    generator: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check = f.metadata.get("check")
            if check is not None:
                check(self.generator, f.name, getattr(self, f.name))

    @classmethod
    def from_mapping(cls: type[T], options: Mapping[str, Any] | None = None) -> T:
        """The typed options from keywords: unknown names are rejected listing the valid ones, values checked."""
        given = dict(options or {})
        check_options(cls.generator, given, option_names(cls))
        return cls(**given)

    @classmethod
    def coerce(cls: type[T], options: T | Mapping[str, Any] | None, extra: Mapping[str, Any]) -> T:
        """A generator's entry: its typed options as given, or built from keywords (not both)."""
        if isinstance(options, cls):
            if extra:
                raise ScheduleOptionError(f"schedule {cls.generator!r}: options given both as {cls.__name__} and "
                                          f"as keywords {sorted(extra)}")
            return options
        if options is not None and not isinstance(options, Mapping):
            raise ScheduleOptionError(f"schedule {cls.generator!r} takes {cls.__name__} or keywords, got "
                                      f"{type(options).__name__}")
        return cls.from_mapping({**(options or {}), **extra})

    def given(self) -> dict[str, Any]:
        """The options that differ from the generator's own defaults, as keywords."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) != f.default}


# ---------------------------------------------------------------- the generators without options


@dataclass(frozen=True)
class SequentialOptions(ScheduleOptions):
    generator: ClassVar[str] = "sequential"


@dataclass(frozen=True)
class DataParallelOptions(ScheduleOptions):
    generator: ClassVar[str] = "data-parallel"


@dataclass(frozen=True)
class ListOptions(ScheduleOptions):
    generator: ClassVar[str] = "list"


# ---------------------------------------------------------------- flush schedules (schedules.flush)

MICROBATCHES_DOC = "micro-batches per minibatch (default: the count from {P, 2P, 4P, powers of 2} that is fastest)"


@dataclass(frozen=True)
class GPipeOptions(ScheduleOptions):
    generator: ClassVar[str] = "gpipe"
    microbatches: int | None = option(None, positive_int, MICROBATCHES_DOC)


@dataclass(frozen=True)
class OneFOneBOptions(GPipeOptions):
    generator: ClassVar[str] = "1f1b"


@dataclass(frozen=True)
class ZeroBubbleOptions(GPipeOptions):
    generator: ClassVar[str] = "zero-bubble"


@dataclass(frozen=True)
class ZbVOptions(GPipeOptions):
    generator: ClassVar[str] = "zb-v"


@dataclass(frozen=True)
class InterleavedOptions(GPipeOptions):
    generator: ClassVar[str] = "interleaved-1f1b"
    virtual_stages: int | None = option(None, positive_int,
                                        "chunks per processor (default: the depth that is fastest)")


# ---------------------------------------------------------------- stage pipelines (schedules.pipedream)

STAGES_DOC = "pipeline stages, at most the processors (default: one per processor)"


@dataclass(frozen=True)
class LayerPipeOptions(ScheduleOptions):
    generator: ClassVar[str] = "layerpipe"
    stages: int | None = option(None, positive_int, STAGES_DOC)


@dataclass(frozen=True)
class PipeDreamOptions(LayerPipeOptions):
    generator: ClassVar[str] = "pipedream"
    max_stretch: float = option(2.0, positive_number,
                                "how far the period may stretch to keep p-s weight versions (x the shortest)")


def parse_value(text: str) -> Any:
    """A command-line option value: a JSON literal (4, 0.5, true, [..]) or else the text itself ("auto")."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignment(text: str) -> tuple[str, Any]:
    """NAME=VALUE of `--option`, the value as parse_value reads it."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ScheduleOptionError(f"option {text!r} must be NAME=VALUE (e.g. microbatches=4)")
    return name.strip(), parse_value(value.strip())
