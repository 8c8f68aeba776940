"""Hardware models: systolic arrays, vector units, memory, interconnect, processors and clusters.

numpy only; no imports from the rest of the project.
"""

from hwmodels.energy import EnergyTable
from hwmodels.errors import HardwareConfigError
from hwmodels.interconnect import AllReducePhase, Interconnect
from hwmodels.memory import Memory
from hwmodels.processor import Cluster, GemmCost, Processor
from hwmodels.systolic import Dataflow, SystolicArray
from hwmodels.vector import VectorUnit

__all__ = [
    "AllReducePhase",
    "Cluster",
    "Dataflow",
    "EnergyTable",
    "GemmCost",
    "HardwareConfigError",
    "Interconnect",
    "Memory",
    "Processor",
    "SystolicArray",
    "VectorUnit",
]
