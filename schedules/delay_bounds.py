"""Lower bounds on gradient delay at a given period, for a fixed processor assignment.

The delay of layer l is ceil(S_l / period) - 1, where S_l is the absolute time from F_l's start to W_l's end for
one minibatch (ir.slot_lag_delays). Two bounds on S_l, both valid for every schedule with this period and this
assignment, hence their sum over layers for the total:

- critical path: S_l is at least the longest path F_l -> ... -> W_l (durations and transfers of the assignment);
  delay_lower_bounds.
- packing: the tasks of that cone (descendants of F_l that W_l depends on) that share a processor occupy
  disjoint offsets of the period, in every period. For tasks i, j on one processor, the absolute starts satisfy
  A_j - A_i = k * period + x with k an integer and d_i <= x <= period - d_j. A task whose data arrives while a
  cone task of an earlier or later minibatch holds its processor waits for it, and near a multiple of the period
  that wait costs a whole period of delay. The least S_l under precedence, transfers and these constraints (all
  other tasks dropped: a relaxation) is a small integer program per layer; CP-SAT's proven bound on it (its
  optimum when it finishes) bounds S_l. The solve is limited in deterministic time with one worker, so the bound
  is the same on any machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

from ortools.sat.python import cp_model

from hwmodels import Cluster
from schedules.common import slot_cycles, transfer_cycles
from spikepipe.ir import TaskGraph, TaskKind, task_id

# deterministic seconds per layer's packing model; the cone of a layer has at most 3L tasks
_DET_PER_LAYER_S = 0.05


def delay_lower_bounds(graph: TaskGraph, cluster: Cluster, period: int,
                       assignment: Mapping[str, int] | None = None) -> tuple[int, ...]:
    """delay_l >= ceil(longest path from F_l's start to W_l's end / period) - 1 (docs/design.md section 4 formula:
    the span of one minibatch from F_l to W_l is a whole number of periods plus offsets). Durations are the
    fastest processor's and transfers 0, unless an assignment is given (then both are exact for it)."""
    order = graph.topological_order()
    procs = range(cluster.size)
    if assignment is None:
        dur = {t: min(slot_cycles(graph, cluster, t, p) for p in procs) for t in order}
    else:
        dur = {t: slot_cycles(graph, cluster, t, assignment[t]) for t in order}
    pos = {t: i for i, t in enumerate(order)}
    out = []
    for layer in range(graph.num_layers):
        if not graph.has_task(layer, TaskKind.W):  # no weights: delay 0 (ir.slot_lag_delays)
            out.append(0)
            continue
        f, w = task_id(TaskKind.F, layer), task_id(TaskKind.W, layer)
        end = {f: dur[f]}  # longest F_l-start-to-end path
        for t in order[pos[f] + 1:pos[w] + 1]:
            best = None
            for u in graph.predecessors(t):
                if u in end:
                    c = 0 if assignment is None else transfer_cycles(
                        cluster, assignment[u], assignment[t], graph.edge_bytes(u, t))
                    best = max(best or 0, end[u] + c)
            if best is not None:
                end[t] = best + dur[t]
        span = end.get(w, dur[f] + dur[w])
        out.append(max(0, -(-span // period) - 1))
    return tuple(out)



def _cone(graph: TaskGraph, layer: int) -> list[str]:
    g = graph.nx
    import networkx as nx

    f, w = task_id(TaskKind.F, layer), task_id(TaskKind.W, layer)
    inside = (nx.descendants(g, f) | {f}) & (nx.ancestors(g, w) | {w})
    return [t for t in graph.topological_order() if t in inside]


def packing_span_bound(graph: TaskGraph, cluster: Cluster, period: int, assignment: Mapping[str, int],
                       layer: int, det_s: float = _DET_PER_LAYER_S) -> int:
    """A lower bound on S_l (cycles) from the cone of layer l with cyclic no-overlap on each processor."""
    cone = _cone(graph, layer)
    dur = {t: slot_cycles(graph, cluster, t, assignment[t]) for t in cone}
    inside = set(cone)
    edges = [(u, v, transfer_cycles(cluster, assignment[u], assignment[v], graph.edge_bytes(u, v)))
             for v in cone for u in graph.predecessors(v) if u in inside]
    horizon = (len(cone) + 2) * period + sum(c for *_, c in edges) + sum(dur.values())
    m = cp_model.CpModel()
    a = {t: m.new_int_var(0, horizon, f"a_{t}") for t in cone}
    f, w = task_id(TaskKind.F, layer), task_id(TaskKind.W, layer)
    m.add(a[f] == 0)
    for u, v, c in edges:
        m.add(a[v] >= a[u] + dur[u] + c)
    kmax = horizon // period + 1
    for i, j in combinations(cone, 2):
        if assignment[i] != assignment[j]:
            continue
        if dur[i] + dur[j] > period:
            return horizon  # cannot share a processor in this period: no schedule exists, any bound holds
        k = m.new_int_var(-kmax, kmax, f"k_{i}_{j}")
        m.add(a[j] - a[i] - period * k >= dur[i])
        m.add(a[j] - a[i] - period * k <= period - dur[j])
    span = a[w] + dur[w]
    periods = m.new_int_var(0, kmax + 1, "periods")
    m.add(periods * period >= span)
    m.minimize(periods)
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.max_deterministic_time = det_s
    solver.parameters.max_time_in_seconds = 60.0  # a guard only
    solver.parameters.random_seed = 0
    code = solver.solve(m)
    if code == cp_model.INFEASIBLE:
        return horizon
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return 0
    # best_objective_bound periods: S_l > (bound - 1) * period, so S_l >= (bound - 1) * period + 1
    best = int(round(solver.best_objective_bound))
    return max(0, (best - 1) * period + 1)


def assignment_delay_bounds(graph: TaskGraph, cluster: Cluster, period: int,
                            assignment: Mapping[str, int] | None = None, *, packing: bool = True) -> tuple[int, ...]:
    """Per-layer lower bounds on the gradient delay at `period`: the critical path's, raised by the packing
    bound when an assignment is given."""
    cp = delay_lower_bounds(graph, cluster, period, assignment)
    if assignment is None or not packing:
        return cp
    out = []
    for layer, b in enumerate(cp):
        if not graph.has_task(layer, TaskKind.W):  # no weights, delay 0: nothing to bound
            out.append(0)
            continue
        span = packing_span_bound(graph, cluster, period, assignment, layer)
        out.append(max(b, -(-span // period) - 1))
    return tuple(out)
