"""One definition of every training method: its parameters, their defaults, and the timesteps it recomputes.

The trainer (`make_trainer`), the task-graph transform (`transforms.transform`) and the CLI flags of `simulate`,
`train` and `sweep` (spikepipe.cli.method_args) all read `MethodOptions`, so a method has one meaning whichever
command runs it. `segments` is the recomputation schedule of checkpointing and Skipper: the trainer runs exactly
these steps and the transform prices exactly these steps. No torch here: the CLI builds its parser from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from spikepipe.ir import SpikePipeError


class MethodError(SpikePipeError):
    """A training method cannot run on this network or with these options."""


TRANSFORM_METHODS = ("bptt", "checkpoint", "skipper", "ttl", "local", "bloctrain")
TRAINER_METHODS = ("bptt", "checkpoint", "skipper", "ttl", "bloctrain")
SKIPPER_GRADIENTS = ("drop", "carry")


@dataclass(frozen=True)
class MethodOptions:
    """A training method and its parameters; 0 / -1 mean "derive from T" as documented per field."""

    name: str = "bptt"
    checkpoint_every: int = 0  # checkpoint/skipper interval in timesteps; 0: ceil(sqrt(T)), at least 2
    skip: int = -1  # skipper: timesteps skipped at the end of every interval; -1: half the interval (floor)
    window: int = 2  # ttl: truncation window in timesteps
    blocks: int | tuple[int, ...] = 2  # ttl/local/bloctrain: block count, or the first layer of every later block
    hard_fraction: float = 0.5  # bloctrain: share of a block's classes handed to the next block
    # skipper: the gradient arriving across skipped steps is carried to the last kept step (default: it recovered
    # the 6-point loss of dropping it on vgg11-28, experiments/README.md section 7) or dropped
    skipper_gradient: str = "carry"
    exit_confidence: float = 0.5  # bloctrain: softmax confidence an easy sample needs to leave early

    def __post_init__(self) -> None:
        if self.name not in TRANSFORM_METHODS:
            raise MethodError(f"unknown training method {self.name!r}; valid: {', '.join(TRANSFORM_METHODS)}")
        if self.checkpoint_every < 0:
            raise MethodError(f"checkpoint_every must be >= 1 (or 0 for ceil(sqrt(T))), got {self.checkpoint_every}")
        if self.skip < -1:
            raise MethodError(f"skip must be >= 0 (or -1 for half the interval), got {self.skip}")
        if self.window < 1:
            raise MethodError(f"TTL window must be at least 1 timestep, got {self.window}")
        if not 0.0 < self.hard_fraction <= 1.0:
            raise MethodError(f"hard_fraction must be in (0, 1], got {self.hard_fraction}")
        if not 0.0 <= self.exit_confidence <= 1.0:
            raise MethodError(f"exit_confidence must be in [0, 1], got {self.exit_confidence}")
        if self.skipper_gradient not in SKIPPER_GRADIENTS:
            raise MethodError(f"skipper_gradient must be one of {', '.join(SKIPPER_GRADIENTS)}, "
                              f"got {self.skipper_gradient!r}")

    @classmethod
    def of(cls, name: str, **params: object) -> MethodOptions:
        """From keyword parameters; `every` is accepted for checkpoint_every, None values take the default."""
        if "every" in params:
            params["checkpoint_every"] = params.pop("every")
        known = {f.name for f in fields(cls)}
        unknown = set(params) - known
        if unknown:
            raise MethodError(f"unknown method parameter(s) {', '.join(sorted(unknown))}; valid: "
                              f"{', '.join(sorted(known - {'name'}))}")
        given = {k: v for k, v in params.items() if v is not None}
        if isinstance(given.get("blocks"), list):
            given["blocks"] = tuple(given["blocks"])
        return replace(cls(name=name), **given)  # type: ignore[arg-type]

    def every(self, timesteps: int) -> int:
        """The checkpoint interval at T timesteps."""
        return self.checkpoint_every or max(2, math.ceil(math.sqrt(timesteps)))

    def skipped(self, timesteps: int) -> int:
        """Timesteps skipped per interval (0 unless Skipper)."""
        if self.name != "skipper":
            return 0
        every = self.every(timesteps)
        s = every // 2 if self.skip < 0 else self.skip
        if not 0 <= s < every:
            raise MethodError(f"skip must be in [0, checkpoint_every), got skip={s}, checkpoint_every={every}")
        return s

    def describe(self, timesteps: int) -> dict[str, object]:
        """The resolved parameters that matter for this method (for reports)."""
        out: dict[str, object] = {"method": self.name}
        if self.name in ("checkpoint", "skipper"):
            out["checkpoint_every"] = self.every(timesteps)
        if self.name == "skipper":
            out["skip"] = self.skipped(timesteps)
            out["skipper_gradient"] = self.skipper_gradient
        if self.name == "ttl":
            out["window"] = self.window
        if self.name in ("ttl", "local", "bloctrain"):
            out["blocks"] = list(self.blocks) if isinstance(self.blocks, tuple) else self.blocks
        if self.name == "bloctrain":
            out["hard_fraction"] = self.hard_fraction
            out["exit_confidence"] = self.exit_confidence
        return out


@dataclass(frozen=True)
class Segment:
    start: int  # first timestep
    kept_end: int  # recomputed and backpropagated: [start, kept_end)
    end: int  # the segment covers [start, end); [kept_end, end) is skipped

    @property
    def kept(self) -> int:
        return self.kept_end - self.start


def segments(timesteps: int, every: int, skip: int = 0) -> list[Segment]:
    """Checkpoint segments of `every` steps; the last `skip` of each are skipped. A segment no longer than `skip`
    (a short last one) keeps its first step, so every segment contributes a gradient."""
    if every < 1 or not 0 <= skip < every:
        raise MethodError(f"need checkpoint_every >= 1 and 0 <= skip < checkpoint_every, got {every}, {skip}")
    out = []
    for t0 in range(0, timesteps, every):
        t1 = min(timesteps, t0 + every)
        out.append(Segment(t0, t1 - skip if t1 - t0 > skip else t0 + 1, t1))
    return out


def kept_steps(timesteps: int, every: int, skip: int = 0) -> int:
    return sum(s.kept for s in segments(timesteps, every, skip))
