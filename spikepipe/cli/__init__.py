"""The `spikepipe` command. The only place that prints or exits.

Every command is a module in this package with `register(subparsers)`; its handler returns a `Result` (a JSON-able
dict plus an optional human rendering). `--json` prints exactly one JSON object on stdout. Any bad input exits
with status 2 and one line on stderr starting with `error:`, never a traceback. An unexpected error (a bug, not
bad input) is the same one line, last; with `-v` its traceback comes before it. A command module that cannot be
imported is such an error, named, not a command that is silently missing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence

from spikepipe.cli.common import CliError, CommandImportError, Result

COMMAND_MODULES = ("cycles", "networks", "tasks", "simulate", "compare", "train", "sweep", "frontier",
                   "activity")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own exit is status 2 with usage; keep it to one line
        raise CliError(f"{message} (see `{self.prog} --help`)")

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        # argparse reports a command's unknown option from the top parser: point to the command's own help
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = getattr(parsed, "command", None)
            where = f"{self.prog} {command}" if command else self.prog
            raise CliError(f"unrecognized arguments: {' '.join(extras)} (see `{where} --help`)")
        return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="spikepipe", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    import importlib

    for name in COMMAND_MODULES:
        module = f"spikepipe.cli.cmd_{name}"
        try:
            mod = importlib.import_module(module)
        except Exception as exc:  # a broken command is an error naming it, never a command that quietly is not there
            raise CommandImportError(f"the `{name}` command cannot be loaded ({module}): "
                                     f"{type(exc).__name__}: {exc}") from exc
        mod.register(sub)
    for command in sub.choices.values():  # `spikepipe simulate ... -v` works too, as users type it
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="as `spikepipe -v COMMAND`: log progress details, print tracebacks")
    return parser


# torch warns "Triton not available" when SpikingJelly registers its kernels on a CPU-only build
_NOISY_LOGGERS = ("torch._library.triton",)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # -v goes before the command; read before parsing, so a parser that cannot be built still shows its traceback
    leading = argv[:next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))]
    verbose = "-v" in leading or "--verbose" in leading
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        verbose = verbose or args.verbose
        # Dask sets up its own INFO-level logging when `distributed` is imported (spikepipe sweep, in this
        # process and in its workers, which inherit the environment): 30 lines of scheduler and nanny chatter
        # per sweep that say nothing about the user's input. -v keeps them; a user's own setting wins
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "info" if verbose else "warning")
        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                            format="%(levelname)s %(name)s: %(message)s")
        for noisy in _NOISY_LOGGERS:  # library chatter that says nothing about the user's input
            logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)
        if args.version:
            from spikepipe import __version__

            print(f"spikepipe {__version__}")
            return 0
        handler: Callable[[argparse.Namespace], Result] | None = getattr(args, "handler", None)
        if handler is None:
            parser.print_help(sys.stderr)
            return 2
        result = handler(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the contract: one line, status 2, for every failure
        from spikepipe.cli.common import error_line, is_user_error

        if not is_user_error(exc):  # a bug, not bad input: its traceback with -v, and a hint to ask for it
            if verbose:
                import traceback

                traceback.print_exception(exc, file=sys.stderr)
            print(error_line(exc) + ("" if verbose else " (run `spikepipe -v ...` for the traceback)"),
                  file=sys.stderr)
        else:
            print(error_line(exc), file=sys.stderr)
        return 2
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(result.data, sort_keys=False, default=_json_default) + "\n")
    else:
        result.render()
    return 0


def _json_default(obj: object) -> object:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


if __name__ == "__main__":
    sys.exit(main())
