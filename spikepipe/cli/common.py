"""Shared CLI pieces: the Result type, error lines, and options that several commands take."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hwmodels import Cluster, HardwareConfigError


class CliError(Exception):
    """Bad command-line input."""


class CommandImportError(ImportError):
    """A command's module cannot be imported: a broken installation or a bug, reported as an error that names the
    command (with -v, the import's traceback), never as a command that is not there."""


@dataclass
class Result:
    data: dict[str, Any]
    render_fn: Callable[[], None] | None = field(default=None)

    def render(self) -> None:
        if self.render_fn is not None:
            self.render_fn()
        else:
            import json

            print(json.dumps(self.data, indent=2, default=str))


def is_user_error(exc: BaseException) -> bool:
    """True for bad input (our typed errors, whose messages are written for the user); False for a bug."""
    from spikepipe.ir import SpikePipeError

    return isinstance(exc, (CliError, HardwareConfigError, SpikePipeError, FileNotFoundError, PermissionError))


def error_line(exc: BaseException) -> str:
    """One line, starting with `error:`; messages of our typed errors are already user-facing, others are
    prefixed with their type."""
    msg = str(exc).strip() or type(exc).__name__
    first = msg.splitlines()[0]
    if not isinstance(exc, CommandImportError) and not is_user_error(exc):
        first = f"{type(exc).__name__}: {first}"
    return f"error: {first}"


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def int_list(text: str) -> list[int]:
    """'2,4,8' -> [2, 4, 8] (each positive)."""
    try:
        return [positive_int(t) for t in text.split(",") if t.strip()]
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of positive integers: {exc}") from None


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")


def add_hardware(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("hardware")
    g.add_argument("--hardware", default=None, metavar="PRESET|FILE.toml",
                   help="hardware preset name or TOML file (processors, array, dataflow, memory, links)")
    g.add_argument("--array", default=None, metavar="RxC", help="systolic array size, e.g. 128x128")
    g.add_argument("--dataflow", default=None, choices=("os", "ws", "is"), help="systolic dataflow")


def cluster_from_args(args: argparse.Namespace, processors: int | None = None) -> Cluster:
    """The cluster described by --hardware, with --array/--dataflow overriding every processor's array."""
    from hwmodels.config import load_cluster

    return load_cluster(getattr(args, "hardware", None), processors=processors,
                        array=getattr(args, "array", None), dataflow=getattr(args, "dataflow", None))


def add_network(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("workload")
    g.add_argument("--network", required=required, metavar="NAME|FILE.py:FUNC",
                   help="built-in network (see `spikepipe networks`) or a file.py:function returning (model, input)")
    g.add_argument("--batch", type=positive_int, default=None, help="minibatch size B (network default if omitted)")
    g.add_argument("--timesteps", type=positive_int, default=None, help="SNN timesteps T (network default if omitted)")
