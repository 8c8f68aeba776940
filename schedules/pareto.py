"""Period against delay: the monotone Pareto staircase and its knee, for the frontier and `period_slack="auto"`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def staircase(items: Sequence[T], key: Callable[[T], tuple]) -> list[T]:
    """key(item) = (period, total delay, max delay, tie-break...). In period order, each item with less total delay (or equal
    total and less max delay) than every kept item of a shorter or equal period: a longer period never has more
    delay, since a schedule stays valid when its period is stretched."""
    out: list[T] = []
    for it in sorted(items, key=key):
        if not out or key(it)[1:3] < key(out[-1])[1:3]:
            if out and key(it)[0] == key(out[-1])[0]:
                out[-1] = it
            else:
                out.append(it)
    return out


def knee(points: Sequence[tuple[int, int]]) -> int:
    """Index of the (period, total delay) point farthest below the chord from the first point to the last, both
    axes scaled to [0, 1]; 0 for fewer than three points."""
    if len(points) < 3:
        return 0
    (p0, d0), (p1, d1) = points[0], points[-1]
    dp, dd = max(1, p1 - p0), max(1, d0 - d1)
    scores = [1 - (p - p0) / dp - (d - d1) / dd for p, d in points]
    return max(range(len(points)), key=lambda i: (scores[i], -i))
