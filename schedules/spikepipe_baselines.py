"""The baselines a spikepipe result is compared with and never loses to (schedules.spikepipe_phases.start): which
are built within the call's time, cheapest kinds first, and the memo that lets repeated solves of one graph build
each once."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hwmodels import Cluster
from schedules.spikepipe_options import DEFAULT_COMPARE
from spikepipe.ir import Schedule, TaskGraph

if TYPE_CHECKING:
    from schedules.spikepipe_phases import PhaseTimer

# cheap periodic baselines, always built whatever the time: phase 2 is seeded from them and the guarantee rests
# on them; the flush ones cost seconds at a few hundred tasks (a whole iteration is replayed per micro-batch count)
ALWAYS_BUILT = ("sequential", "pipedream", "layerpipe")
# the other baselines are built only while the call has spent less than this share of its limit...
_BASELINE_SHARE = 0.3
# ...or less than this many seconds, so tiny limits on small graphs still compare with every baseline
_MIN_BASELINE_S = 0.3


def build_baselines(graph: TaskGraph, cluster: Cluster, compare: Sequence[str], timer: PhaseTimer,
                    built: dict[str, Schedule]) -> dict[str, Schedule]:
    """The periodic baselines always; the others, cheapest kinds first, while the time spent stays under
    max(_BASELINE_SHARE of the limit, _MIN_BASELINE_S) even if the next one takes as long as the longest so far.
    One already in `built` is taken from there (it costs no time); each one built is added to it."""
    from schedules.registry import get  # late: the registry names the scheduler

    allowance = max(_BASELINE_SHARE * timer.deadline.limit_s, _MIN_BASELINE_S)
    out, longest = {}, 0.0
    skipped = []
    rank = {n: i for i, n in enumerate(DEFAULT_COMPARE)}
    for name in sorted(compare, key=lambda n: (n not in ALWAYS_BUILT, rank.get(n, 99))):
        if name in built:
            out[name] = built[name]
            continue
        if name not in ALWAYS_BUILT and timer.deadline.elapsed() + longest > allowance:
            skipped.append(name)
            continue
        t0 = time.perf_counter()
        out[name] = built[name] = get(name)(graph, cluster)
        took = time.perf_counter() - t0
        timer.baselines_s[name] = took
        longest = max(longest, took)
    if skipped:
        timer.skip(f"baselines not built (the result is compared only with the others): {', '.join(skipped)}")
    return out
