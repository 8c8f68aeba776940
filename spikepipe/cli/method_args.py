"""The training-method flags shared by `simulate`, `compare`, `train` (and the keys of `sweep` files): one set of
names, one set of defaults (spikepipe.methods.registry.MethodOptions)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from spikepipe.cli.common import positive_int

# sweep-file keys (and TrainConfig fields) that name method parameters; values are MethodOptions fields
METHOD_KEYS = ("method", "checkpoint_every", "skip", "window", "blocks", "hard_fraction", "skipper_gradient",
               "exit_confidence")


def _bounded(cast: Any, ok: Any, expect: str) -> Any:
    """An argparse type: `cast` the text, accept it when `ok(value)`, else say what was `expect`ed."""

    def parse(text: str) -> Any:
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expect}, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"expected {expect}, got {text!r}")
        return v

    return parse


_non_negative_int = _bounded(int, lambda v: v >= 0, "a whole number >= 0")
_skip = _bounded(int, lambda v: v >= -1, "a whole number >= 0 (or -1 for half the interval)")
_fraction = _bounded(float, lambda v: 0 < v <= 1, "a fraction in (0, 1]")
_unit = _bounded(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")


def add_method_arguments(p: Any, methods: Sequence[str]) -> None:
    """--method and its parameters on parser or argument group `p`."""
    from spikepipe.methods.registry import SKIPPER_GRADIENTS, MethodOptions

    d = MethodOptions()
    p.add_argument("--method", default=d.name, choices=tuple(methods),
                   help=f"training method (spikepipe.methods; default {d.name})")
    p.add_argument("--checkpoint-every", type=_non_negative_int, default=d.checkpoint_every, metavar="C",
                   help="checkpoint/skipper: checkpoint interval in timesteps (default 0: ceil(sqrt(T)), at least 2)")
    p.add_argument("--skip", type=_skip, default=d.skip, metavar="S",
                   help="skipper: timesteps skipped at the end of every interval (default -1: half the interval)")
    p.add_argument("--skipper-gradient", choices=SKIPPER_GRADIENTS, default=d.skipper_gradient,
                   help="skipper: carry the gradient arriving across skipped steps to the last kept step, or drop "
                        f"it (default {d.skipper_gradient})")
    p.add_argument("--window", type=positive_int, default=d.window, metavar="K",
                   help=f"ttl: truncation window in timesteps (default {d.window})")
    p.add_argument("--blocks", "--method-blocks", dest="blocks", type=positive_int, default=d.blocks, metavar="N",
                   help=f"ttl/local/bloctrain: number of local-loss blocks (default {d.blocks})")
    p.add_argument("--hard-fraction", type=_fraction, default=d.hard_fraction, metavar="H",
                   help=f"bloctrain: share of a block's classes passed to the next block (default {d.hard_fraction})")
    p.add_argument("--exit-confidence", type=_unit, default=d.exit_confidence, metavar="P",
                   help="bloctrain: softmax confidence an easy sample needs to exit early (default "
                        f"{d.exit_confidence})")


def method_options(args: argparse.Namespace) -> Any:
    """The MethodOptions the flags describe (raises MethodError, a SpikePipeError, on inconsistent values)."""
    from spikepipe.methods.registry import MethodOptions

    return MethodOptions.of(getattr(args, "method", "bptt"), **{k: getattr(args, k, None) for k in METHOD_KEYS[1:]})
