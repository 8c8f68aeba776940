"""SpikePipe: pipelined SNN training on systolic-array processors: speed, cost and accuracy.

The public Python API is the names in `__all__` (docs/api.md); they load on first use, so `import spikepipe`
stays cheap for the command line. Everything else is internal and may change without notice.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it; the surface is checked by tests/test_api_surface.py (see CHANGELOG.md).
# Training is `train_network`, the frontier `compute_frontier`: `spikepipe.train` and `spikepipe.frontier` are
# modules of the package, which would shadow a function of that name.
_PUBLIC = {
    "load_network": "spikepipe.api.inputs", "Workload": "spikepipe.api.inputs", "networks": "spikepipe.api.inputs",
    "hardware": "spikepipe.api.inputs", "Hardware": "spikepipe.api.inputs", "presets": "spikepipe.api.inputs",
    "HardwareError": "spikepipe.api.inputs", "ApiArgumentError": "spikepipe.api.inputs",
    "schedule": "spikepipe.api.ops", "schedule_names": "spikepipe.api.ops", "simulate": "spikepipe.api.ops",
    "compare": "spikepipe.api.ops", "train_network": "spikepipe.api.ops", "cycles": "spikepipe.api.ops",
    "tasks": "spikepipe.api.ops", "run_sweep": "spikepipe.api.ops", "CyclesResult": "spikepipe.api.results",
    "TasksResult": "spikepipe.api.results", "SweepResult": "spikepipe.api.results",
    "SimulateResult": "spikepipe.api.results", "ScheduleResult": "spikepipe.api.results",
    "CompareResult": "spikepipe.api.results", "TrainResult": "spikepipe.api.results",
    "EpochRecord": "spikepipe.api.results", "ResultLookupError": "spikepipe.api.results",
    "ProgressEvent": "spikepipe.api.progress", "network_details": "spikepipe.api.inputs",
    "NetworksResult": "spikepipe.api.results", "FrontierResult": "spikepipe.api.results",
    "compute_frontier": "spikepipe.api.plans", "read_schedule": "spikepipe.api.plans",
    "write_schedule": "spikepipe.api.plans", "FrontierPoint": "spikepipe.frontier",
    "MethodOptions": "spikepipe.methods.registry",
    "measure_activity": "spikepipe.api.measure", "ActivityResult": "spikepipe.api.measure",
    "Schedule": "spikepipe.ir", "TaskGraph": "spikepipe.ir", "SpikePipeError": "spikepipe.ir",
    "ScheduleError": "spikepipe.ir",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'spikepipe' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
