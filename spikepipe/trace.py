"""Chrome trace event format (opens in Perfetto / chrome://tracing) from a replay's records.

Processors are threads of process "processors", links threads of process "links"; complete events ("ph": "X")
with timestamps in microseconds at the processors' clock, so Perfetto shows real time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from spikepipe.io import write_atomic
from spikepipe.sim.result import SimResult

_KIND_COLOUR = {"F": "thread_state_running", "B": "rail_response", "W": "rail_animation"}


def chrome_trace(results: Iterable[tuple[str, SimResult]], *, freq_hz: float = 1e9,
                 max_periods: int | None = 12, max_slot_events: int = 20_000) -> dict[str, Any]:
    """One Chrome-trace document; every (label, result) becomes its own pair of processes (processors, links).
    Only the first `max_periods` periods of each replay are kept (warm-up plus a steady stretch), fewer (at least
    two) when a replay has so many slots per period that they would pass `max_slot_events`, which keeps the
    file small enough for Perfetto to open at once."""
    us = 1e6 / freq_hz
    events: list[dict[str, Any]] = []
    for index, (label, res) in enumerate(results):
        horizon = None
        if max_periods is not None:
            per_period = max(1, len(res.slot_records) // max(1, res.iterations))
            # enough periods to get through the warm-up (the largest lag) and show a few steady ones
            lag = max((r.scheduled_cycles // res.period_cycles - r.minibatch for r in res.slot_records), default=0)
            periods = max(2, min(max(max_periods, lag + 4), max_slot_events // per_period))
            horizon = periods * res.period_cycles
        pid_proc, pid_link = 2 * index + 1, 2 * index + 2
        events.append({"ph": "M", "name": "process_name", "pid": pid_proc, "tid": 0,
                       "args": {"name": f"{label}: processors"}})
        events.append({"ph": "M", "name": "process_name", "pid": pid_link, "tid": 0,
                       "args": {"name": f"{label}: links"}})
        for p in range(res.processors):
            events.append({"ph": "M", "name": "thread_name", "pid": pid_proc, "tid": p, "args": {"name": f"P{p}"}})
        for r in res.slot_records:
            if horizon is not None and r.start_cycles >= horizon:
                continue
            events.append({
                "name": r.slot, "cat": r.task[0], "ph": "X", "pid": pid_proc, "tid": r.processor,
                "ts": r.start_cycles * us, "dur": (r.end_cycles - r.start_cycles) * us,
                "cname": _KIND_COLOUR.get(r.task[0], "generic_work"),
                "args": {"minibatch": r.minibatch, "microbatch": r.microbatch, "start_cycles": r.start_cycles,
                         "end_cycles": r.end_cycles, "late_cycles": r.start_cycles - r.scheduled_cycles},
            })
        link_tid: dict[object, int] = {}
        for r in res.transfer_records:
            if horizon is not None and r.start_cycles >= horizon:
                continue
            key = r.link if r.link is not None else "collective"
            if key not in link_tid:
                link_tid[key] = len(link_tid)
                name = "all links (collective)" if key == "collective" else f"link {key[0]}->{key[1]}"
                events.append({"ph": "M", "name": "thread_name", "pid": pid_link, "tid": link_tid[key],
                               "args": {"name": name}})
            events.append({
                "name": r.src if r.collective else f"{r.src}->{r.dst}", "cat": "collective" if r.collective else "transfer",
                "ph": "X", "pid": pid_link, "tid": link_tid[key], "ts": r.start_cycles * us,
                "dur": (r.end_cycles - r.start_cycles) * us,
                "args": {"minibatch": r.minibatch, "bytes": r.bytes},
            })
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"generator": "spikepipe", "clock_hz": freq_hz}}


def write_trace(path: str | Path, results: Iterable[tuple[str, SimResult]], *, freq_hz: float = 1e9,
                max_periods: int | None = 12) -> Path:
    doc = chrome_trace(results, freq_hz=freq_hz, max_periods=max_periods)
    return write_atomic(path, json.dumps(doc, separators=(",", ":")) + "\n")
