"""The one time-budget type of the schedulers: a wall-clock Deadline on the time.perf_counter() clock.

A scheduler call starts one at entry; every phase (baselines, model builds, solves, the order search, the
communication tie-break, the split path) asks it what is left, or takes a Deadline that ends earlier
(`first`, `within`), instead of passing bare clock instants around.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Deadline:
    """The wall-clock budget of one scheduler call (or of one part of it), started at `start_s`."""
    limit_s: float
    start_s: float  # time.perf_counter() at the start

    @classmethod
    def start(cls, limit_s: float) -> Deadline:
        return cls(float(limit_s), time.perf_counter())

    @classmethod
    def within(cls, seconds: float) -> Deadline:
        """A deadline `seconds` from now (none left if negative)."""
        return cls(max(0.0, float(seconds)), time.perf_counter())

    @property
    def end_s(self) -> float:  # on the time.perf_counter() clock
        return self.start_s + self.limit_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.start_s

    def remaining(self) -> float:
        return self.end_s - time.perf_counter()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def first(self, share: float) -> Deadline:
        """The same start, ending after `share` of the limit: a budget for the first part of a call."""
        return Deadline(self.limit_s * share, self.start_s)

    def ending_earlier(self, margin_s: float) -> Deadline:
        """The same start, ending `margin_s` sooner (work after it needs that time)."""
        return Deadline(max(0.0, self.limit_s - margin_s), self.start_s)
