"""SimPy replay of schedules: `simulate(schedule, cluster, iterations=N, graph=...) -> SimResult`."""

from spikepipe.sim.engine import graph_dependencies, simulate
from spikepipe.sim.result import SimResult, SimulationError, SlotRecord, TransferRecord, Violation

__all__ = ["SimResult", "SimulationError", "SlotRecord", "TransferRecord", "Violation", "graph_dependencies",
           "simulate"]
