"""The JSON contract (docs/contract.md) built from library reports: what `--json` prints and `.to_dict()` returns.

The CLI and the Python API both call these functions, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# the keys every `simulate` result row starts with, in this order (docs/contract.md section 6)
CONTRACT_KEYS = ("schedule", "period_cycles", "simulated_period_cycles", "speedup", "comm_fraction",
                 "gradient_delays", "peak_memory_bytes")


def contract_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """The `simulate --json` object from spikepipe.sim.evaluate.evaluate_graph's report: exactly network,
    processors, lower_bound_cycles and results (failed generators appear as rows with null numbers and an
    `error`)."""
    rows = []
    for r in report["results"]:
        rows.append({**{k: r[k] for k in CONTRACT_KEYS}, **{k: v for k, v in r.items() if k not in CONTRACT_KEYS},
                     "sequential_cycles": report["sequential_cycles"]})
    for e in report["errors"]:
        rows.append({**dict.fromkeys(CONTRACT_KEYS), "schedule": e["schedule"], "error": e["error"]})
    # then T and B as the model runs them, and how the front end found them (docs/design.md section 5)
    how = {k: report[k] for k in ("timesteps", "batch", "layout", "timesteps_source", "batch_source", "time_fixed")
           if k in report}
    return {"network": report["network"], "processors": report["processors"],
            "lower_bound_cycles": report["lower_bound_cycles"], "results": rows, **how}


def compare_summary(*, network: str, processors: Sequence[int], batch: int, timesteps: int,
                    reports: Sequence[Mapping[str, Any]], files: Mapping[str, Any]) -> dict[str, Any]:
    """The `compare --json` object: one simulate object (plus `sequential_cycles`) per processor count."""
    return {"network": network, "processors": list(processors), "batch": batch, "timesteps": timesteps,
            "reports": [dict(r) for r in reports], "files": dict(files)}
