"""Read a solved CP-SAT model back into plain data: an assignment (phase 1) or slots (phase 2)."""

from __future__ import annotations

from ortools.sat.python import cp_model

from hwmodels import Cluster
from schedules.common import slot_cycles
from schedules.cpsat_build import ChainAssignment, Phase1, Phase2
from spikepipe.ir import Slot, TaskGraph


def extract_assignment(solver: cp_model.CpSolver, p1: Phase1 | ChainAssignment | Phase2) -> dict[str, int]:
    out = {}
    for (t, p), var in p1.x.items():
        if solver.boolean_value(var):
            out[t] = p
    return out


def extract_slots(solver: cp_model.CpSolver, p2: Phase2, graph: TaskGraph, cluster: Cluster,
                  assignment: dict[str, int]) -> list[Slot]:
    """The slots of a solved phase-2 model: on `assignment`'s processors, or on the model's own when it
    re-assigns (p2.x)."""
    if p2.x:
        assignment = extract_assignment(solver, p2)
    slots = []
    for t in graph.topological_order():
        p = assignment[t]
        slots.append(Slot(t, p, solver.value(p2.start[t]), slot_cycles(graph, cluster, t, p),
                          lag=solver.value(p2.lag[t])))
    return slots
