"""CP-SAT models of the SpikePipe scheduler (build only; solving and extraction live next door).

Phase 1 (assignment): x[t, p] = task t on processor p. Minimise the period Π subject to every processor's work
<= Π and every directed link's occupancy per period <= Π (an edge u->v with bytes crossing a -> b loads every
link of that route for its bandwidth time). Lags make any in-period order feasible, so these are the only
constraints on Π for unsplit tasks: it is P||Cmax with links.

Phase 2 (order and lags) for a fixed assignment and period: a start s in [0, Π) per task whose run [s, s + d)
may wrap past Π into the next period (docs/design.md section 4.2), cyclic no overlap per processor, lag r >= 0,
every edge s_v + Π r_v >= s_u + d_u + w(u, v) + c(u, v) + Π r_u with w the transfer's wait for its link (at
least the time the same producer's earlier transfers on it take), cyclic no overlap of the transfers on every
link (one-hop routes), and
delay_l >= ceil((Π r_W + s_W + d_W - Π r_F - s_F) / Π) - 1 (ir.slot_lag_delays). Minimise Σ delay_l.
Cyclic no overlap is an ordinary no-overlap over two copies of every interval, [s, s + d) and [s + Π, s + Π + d):
two runs collide modulo Π exactly when a pair of copies overlaps (d <= Π, since a processor's load fits the period).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from hwmodels import Cluster
from schedules.common import expected_dependencies, link_queueing_cycles, slot_cycles, transfer_cycles
from spikepipe.ir import Slot, TaskGraph, TaskKind, task_id


def candidate_processors(graph: TaskGraph, cluster: Cluster, hint: Mapping[str, int],
                         per_task: int) -> dict[str, tuple[int, ...]]:
    """At most `per_task` processors per task for large models: its hint processor, its graph neighbours'
    hint processors (moving next to them saves transfers), then the least loaded processors of the hint (moving
    there balances). The hint stays feasible; the search loses the rest of the space (callers say so in info)."""
    load = [0] * cluster.size
    for t, p in hint.items():
        load[p] += slot_cycles(graph, cluster, t, p)
    light = sorted(range(cluster.size), key=lambda p: (load[p], p))
    out = {}
    for t in graph.topological_order():
        cand = [hint[t]]
        near = [hint[u] for u in (*graph.predecessors(t), *graph.successors(t))]
        for p in (*near, *light):
            if len(cand) >= per_task:
                break
            if p not in cand:
                cand.append(p)
        out[t] = tuple(sorted(cand))
    return out


def _processor_sets(graph: TaskGraph, cluster: Cluster,
                    candidates: Mapping[str, Sequence[int]] | None) -> dict[str, tuple[int, ...]]:
    every = tuple(range(cluster.size))
    return {t: tuple(candidates[t]) if candidates else every for t in graph.topological_order()}


def _assignment_vars(m: cp_model.CpModel, graph: TaskGraph, cluster: Cluster, sets: Mapping[str, Sequence[int]],
                     period: int | tuple[int, int]) -> tuple[dict[tuple[str, int], cp_model.IntVar],
                                                            cp_model.IntVar | int]:
    """x[t, p]: task t on processor p, exactly one per task, every processor's work <= the period: a constant, or
    a variable with the given (lower, upper) bounds, created right after the x (the order phase 1's search has
    always had: its answer within its deterministic time depends on it)."""
    x = {(t, p): m.new_bool_var(f"x_{t}_{p}") for t in graph.topological_order() for p in sets[t]}
    if isinstance(period, tuple):
        period = m.new_int_var(period[0], max(period), "period")
    on: dict[int, list[str]] = defaultdict(list)
    for t in graph.topological_order():
        m.add_exactly_one(x[t, p] for p in sets[t])
        for p in sets[t]:
            on[p].append(t)
    for p in sorted(on):
        m.add(sum(slot_cycles(graph, cluster, t, p) * x[t, p] for t in on[p]) <= period)
    return x, period


@dataclass
class Phase1:
    model: cp_model.CpModel
    x: dict[tuple[str, int], cp_model.IntVar]
    period: cp_model.IntVar
    link_constraints: int


@dataclass
class Phase2:
    model: cp_model.CpModel
    start: dict[str, cp_model.IntVar]
    lag: dict[str, cp_model.IntVar]
    delay: list[cp_model.IntVar]
    period: int
    waits: dict[tuple[str, str], cp_model.IntVar] = field(default_factory=dict)  # per booked transfer
    # build_phase2_free: x[t, p], task t on processor p (empty: the assignment is fixed)
    x: dict[tuple[str, int], cp_model.IntVar] = field(default_factory=dict)


def link_indicator_count(graph: TaskGraph, cluster: Cluster,
                         candidates: Mapping[str, Sequence[int]] | None = None) -> int:
    """How many crossing indicators build_phase1(links=True) would create: its size, to decide before building."""
    sets = _processor_sets(graph, cluster, candidates)
    n = 0
    for u, v, b in graph.edges:
        if b > 0:
            common = len(set(sets[u]) & set(sets[v]))
            n += len(sets[u]) * len(sets[v]) - common
    return n


def build_phase1(graph: TaskGraph, cluster: Cluster, lower: int, upper: int,
                 hint: Mapping[str, int] | None = None, links: bool = True,
                 candidates: Mapping[str, Sequence[int]] | None = None) -> Phase1:
    """links=False leaves the link capacities out (the caller checks the answer's link load and rebuilds with
    them only if a link binds: their encoding is quadratic in P and slows the search a lot at P = 16).
    `candidates` restricts each task to some processors (candidate_processors); processors are then no longer
    interchangeable in the model, so no symmetry is broken."""
    m = cp_model.CpModel()
    tasks = list(graph.topological_order())
    sets = _processor_sets(graph, cluster, candidates)
    x, period = _assignment_vars(m, graph, cluster, sets, (lower, max(lower, upper)))
    occ = cluster.interconnect.occupancy_cycles
    heavy = [(u, v, occ(b)) for u, v, b in graph.edges if b > 0]
    n_links = 0
    ys: list[tuple[cp_model.IntVar, str, str, int, int]] = []
    # links can only bind if all traffic together could exceed the smallest period
    if links and cluster.size > 1 and sum(o for _, _, o in heavy) > lower:
        load: dict[tuple[int, int], list] = defaultdict(list)
        for i, (u, v, o) in enumerate(heavy):
            for a in sets[u]:
                for b in sets[v]:
                    if a == b:
                        continue
                    y = m.new_bool_var(f"y_{i}_{a}_{b}")
                    ys.append((y, u, v, a, b))
                    m.add_bool_or([x[u, a].Not(), x[v, b].Not(), y])
                    for link in cluster.route(a, b):
                        load[link].append(o * y)
        for terms in load.values():
            m.add(sum(terms) <= period)
            n_links += 1
    homogeneous = (cluster.homogeneous_ and cluster.interconnect.topology == "all-to-all"
                   and candidates is None)
    if homogeneous and tasks:  # processors are interchangeable: pin one task to break the symmetry
        m.add(x[tasks[0], 0] == 1)
    if hint:
        first = hint[tasks[0]] if tasks else 0

        def relabel(p_hint: int) -> int:  # homogeneous: relabel so the pinned task's processor is 0
            if not homogeneous:
                return p_hint
            return 0 if p_hint == first else (first if p_hint == 0 else p_hint)

        for t in tasks:
            for p in sets[t]:
                m.add_hint(x[t, p], int(p == relabel(hint[t])))
        # a complete hint (link indicators too) is taken as a first solution at once, even on big models
        for y, u, v, a, b in ys:
            m.add_hint(y, int(relabel(hint[u]) == a and relabel(hint[v]) == b))
        m.add_hint(period, upper)
    m.minimize(period)
    return Phase1(m, x, period, n_links)


@dataclass
class ChainAssignment:
    model: cp_model.CpModel
    x: dict[tuple[str, int], cp_model.IntVar]


def build_chain_assignment(graph: TaskGraph, cluster: Cluster, period: int, hint: Mapping[str, int],
                           candidates: Mapping[str, Sequence[int]] | None = None) -> ChainAssignment:
    """Another assignment at phase 1's period, for phase 2 to try beside phase 1's: every processor's work <= the
    period, and as few forward/backward edges (the minibatch's chain: into an F or a B task) as possible between
    processors. With every processor full, a minibatch that hops waits on the next processor for its current
    slot, so fewer hops leave fewer waits to the rotations (schedules.order_search). Links are not modelled: the
    caller uses it only when no link binds, and checks the answer's link load."""
    m = cp_model.CpModel()
    tasks = list(graph.topological_order())
    sets = _processor_sets(graph, cluster, candidates)
    x, _ = _assignment_vars(m, graph, cluster, sets, period)
    hops = []
    for u, v, _ in graph.edges:
        if graph.task(v).kind is TaskKind.W:
            continue
        hop = m.new_bool_var(f"hop_{u}_{v}")
        for p in sets[u]:  # same processor unless the edge hops
            if (v, p) in x:
                m.add_implication(x[u, p], x[v, p]).only_enforce_if(hop.Not())
            else:
                m.add_implication(x[u, p], hop)
        hops.append(hop)
    if cluster.homogeneous_ and cluster.interconnect.topology == "all-to-all" and candidates is None and tasks:
        m.add(x[tasks[0], hint[tasks[0]]] == 1)  # interchangeable processors: keep the hint's label
    for (t, p), var in x.items():
        m.add_hint(var, int(hint[t] == p))
    m.minimize(sum(hops))
    return ChainAssignment(m, x)


def _cyclic_intervals(m: cp_model.CpModel, start: cp_model.IntVar, dur: int, period: int, name: str,
                      present: cp_model.IntVar | None = None) -> tuple[cp_model.IntervalVar, cp_model.IntervalVar]:
    """A run of `dur` cycles from `start` in [0, period) and its copy one period later: with both copies of every
    run in one no-overlap, the runs do not collide modulo the period (a run may wrap past the period end).
    With `present`, both are optional intervals that exist only when it is true."""
    later = m.new_int_var(period, 2 * period - 1, f"s2_{name}")
    m.add(later == start + period)
    if present is None:
        return (m.new_fixed_size_interval_var(start, dur, f"i_{name}"),
                m.new_fixed_size_interval_var(later, dur, f"i2_{name}"))
    return (m.new_optional_fixed_size_interval_var(start, dur, present, f"i_{name}"),
            m.new_optional_fixed_size_interval_var(later, dur, present, f"i2_{name}"))


def _hint_waits(graph: TaskGraph, cluster: Cluster, assignment: Mapping[str, int], period: int,
                hint: list[Slot] | None) -> dict[tuple[str, str], int]:
    """The link waits of the hint's slots, first come first served as the replay serves them."""
    if not hint or any(assignment[s.task] != s.processor for s in hint):
        return {}
    return link_queueing_cycles(hint, expected_dependencies(graph, hint), period, cluster)


def _queued_behind_siblings(graph: TaskGraph, cluster: Cluster, assignment: Mapping[str, int],
                            period: int) -> dict[tuple[str, str], int] | None:
    """Transfers of one producer over one link are requested at once and served in the dependencies' order: the
    cycles each waits behind the ones before it. None when some route has more than one hop (phase 2 then leaves
    the links out: store-and-forward over several links is not modelled; so it does when one producer's
    transfers on a link take the whole period, which no schedule at this period can carry)."""
    slots = [Slot(t, assignment[t], 0, slot_cycles(graph, cluster, t, assignment[t]))
             for t in graph.topological_order()]
    queued: dict[tuple[str, str], int] = {}
    sent: dict[tuple[str, tuple[int, int]], int] = defaultdict(int)
    for d in expected_dependencies(graph, slots):
        a, b = assignment[d.src], assignment[d.dst]
        if a == b or d.bytes == 0:
            continue
        route = cluster.route(a, b)
        if len(route) > 1:
            return None
        queued[(d.src, d.dst)] = sent[(d.src, route[0])]
        sent[(d.src, route[0])] += cluster.interconnect.occupancy_cycles(d.bytes)
    if any(total >= period for total in sent.values()):  # one producer loads a link past the period: no model
        return None
    return queued


def _delay_vars(m: cp_model.CpModel, graph: TaskGraph, start: Mapping[str, cp_model.IntVar],
                lag: Mapping[str, cp_model.IntVar], dur: Mapping[str, int], period: int, max_lag: int,
                delay_floor: tuple[int, ...] | None) -> list[cp_model.IntVar]:
    """delay_l >= ceil((Π r_W + s_W + d_W - Π r_F - s_F) / Π) - 1 per layer (0 without weights)."""
    delay = []
    for layer in range(graph.num_layers):
        if not graph.has_task(layer, TaskKind.W):  # no weights: delay 0 (ir.slot_lag_delays)
            delay.append(m.new_constant(0))
            continue
        f, w = task_id(TaskKind.F, layer), task_id(TaskKind.W, layer)
        # critical-path floors (schedules.delay_bounds.delay_lower_bounds) tighten the bound CP-SAT reports
        floor = delay_floor[layer] if delay_floor else 0
        d = m.new_int_var(min(floor, max_lag + 1), max_lag + 1, f"delay_{layer}")
        m.add(period * (d + 1) >= period * lag[w] + start[w] + dur[w] - period * lag[f] - start[f])
        delay.append(d)
    return delay


def build_phase2(graph: TaskGraph, cluster: Cluster, assignment: Mapping[str, int], period: int,
                 max_lag: int, hint: list[Slot] | None = None,
                 delay_floor: tuple[int, ...] | None = None) -> Phase2:
    m = cp_model.CpModel()
    tasks = list(graph.topological_order())
    start, lag, ivs = {}, {}, defaultdict(list)
    dur = {t: slot_cycles(graph, cluster, t, assignment[t]) for t in tasks}
    for t in tasks:
        start[t] = m.new_int_var(0, period - 1, f"s_{t}")
        lag[t] = m.new_int_var(0, max_lag, f"r_{t}")
        ivs[assignment[t]].extend(_cyclic_intervals(m, start[t], dur[t], period, t))
    for lst in ivs.values():
        m.add_no_overlap(lst)
    on_link: dict[tuple[int, int], list[cp_model.IntervalVar]] = defaultdict(list)
    queued = _queued_behind_siblings(graph, cluster, assignment, period)
    hinted = _hint_waits(graph, cluster, assignment, period, hint) if queued is not None else {}
    waits: dict[tuple[str, str], cp_model.IntVar] = {}
    # first come first served, a transfer waits at most for every other transfer on its link once
    link_load: dict[tuple[int, int], int] = defaultdict(int)
    for u, v, b in graph.edges:
        if queued is not None and assignment[u] != assignment[v] and b > 0:
            link_load[cluster.route(assignment[u], assignment[v])[0]] += cluster.interconnect.occupancy_cycles(b)
    for u, v, b in graph.edges:
        c = transfer_cycles(cluster, assignment[u], assignment[v], b)
        if queued is None or c == 0 or b == 0:
            m.add(start[v] + period * lag[v] >= start[u] + dur[u] + c + period * lag[u])
            continue
        # the transfer holds its link, cyclically, from its producer's end plus its wait (at least the time its
        # producer's earlier transfers on the link take); no two transfers hold a link at once. The replay serves
        # a link first come first served; when the model's order is that one, its times are the replay's (the
        # hint's waits are: its transfers queue exactly so), otherwise the lags are derived again afterwards
        link = cluster.route(assignment[u], assignment[v])[0]
        # at most the rest of the link's load (first come first served, each other transfer is ahead at most
        # once): with waits free up to the period one solve on snn-cnn took 41 s of wall time for 0.6
        # deterministic seconds, with this bound 2 s; the hint's own waits are within it
        most = min(period - 1, max(link_load[link] - cluster.interconnect.occupancy_cycles(b),
                                   hinted.get((u, v), 0)))
        wait = waits[(u, v)] = m.new_int_var(queued[(u, v)], max(queued[(u, v)], most), f"w_{u}_{v}")
        m.add_hint(wait, max(queued[(u, v)], hinted.get((u, v), 0)))
        m.add(start[v] + period * lag[v] >= start[u] + dur[u] + wait + c + period * lag[u])
        sent = m.new_int_var(0, period - 1, f"t_{u}_{v}")
        wraps = m.new_int_var(0, 2, f"k_{u}_{v}")
        m.add(sent + period * wraps == start[u] + dur[u] + wait)
        on_link[link].extend(_cyclic_intervals(m, sent, cluster.interconnect.occupancy_cycles(b), period,
                                               f"{u}_{v}"))
    for lst in on_link.values():
        if len(lst) > 2:
            m.add_no_overlap(lst)
    delay = _delay_vars(m, graph, start, lag, dur, period, max_lag, delay_floor)
    if tasks:
        first = tasks[0]
        m.add(lag[first] == 0)
    if hint:
        for s in hint:
            m.add_hint(start[s.task], s.start_cycles)
            m.add_hint(lag[s.task], s.lag)
    m.minimize(sum(delay))
    return Phase2(m, start, lag, delay, period, waits)


def build_phase2_free(graph: TaskGraph, cluster: Cluster, period: int, max_lag: int, hint: Sequence[Slot],
                      delay_floor: tuple[int, ...] | None = None,
                      candidates: Mapping[str, Sequence[int]] | None = None) -> Phase2:
    """Phase 2 with re-assignment, hinted with a schedule of whole tasks: the processor, start and lag of every
    task free at the fixed period; minimise the total delay. Worth it when the period has room beyond the
    assignment's loads (period_slack): at the shortest period the packing is nearly rigid and this model finds
    nothing the fixed-assignment one does not. For homogeneous all-to-all clusters only (a transfer then costs
    the same between any two processors: one bool per edge says whether it crosses); the links are left out (the
    replay's link queue derives the lags afterwards). The hint is relabelled so that the first task's processor
    is 0 (the processors are interchangeable); `candidates` (each must hold the hint's processor, and then no
    relabelling) restricts the processors per task, as in build_phase1."""
    m = cp_model.CpModel()
    tasks = list(graph.topological_order())
    sets = _processor_sets(graph, cluster, candidates)
    x, _ = _assignment_vars(m, graph, cluster, sets, period)
    dur = {t: slot_cycles(graph, cluster, t, 0) for t in tasks}
    start, lag, ivs = {}, {}, defaultdict(list)
    for t in tasks:
        start[t] = m.new_int_var(0, period - 1, f"s_{t}")
        lag[t] = m.new_int_var(0, max_lag, f"r_{t}")
        for p in sets[t]:
            ivs[p].extend(_cyclic_intervals(m, start[t], dur[t], period, f"{t}_{p}", x[t, p]))
    for p in sorted(ivs):
        m.add_no_overlap(ivs[p])
    by_task = {s.task: s for s in hint}
    first = by_task[tasks[0]].processor if tasks and candidates is None else 0

    def relabel(p: int) -> int:
        return 0 if p == first else first if p == 0 else p

    crossing = {}
    for u, v, b in graph.edges:
        c = transfer_cycles(cluster, 0, 1, b) if cluster.size > 1 else 0
        if not c:
            m.add(start[v] + period * lag[v] >= start[u] + dur[u] + period * lag[u])
            continue
        cross = crossing[(u, v)] = m.new_bool_var(f"cross_{u}_{v}")
        for p in sets[u]:  # on one processor unless the edge crosses
            if (v, p) in x:
                m.add_implication(x[u, p], x[v, p]).only_enforce_if(cross.Not())
            else:
                m.add_implication(x[u, p], cross)
        m.add(start[v] + period * lag[v] >= start[u] + dur[u] + c * cross + period * lag[u])
    delay = _delay_vars(m, graph, start, lag, dur, period, max_lag, delay_floor)
    if tasks:
        m.add(lag[tasks[0]] == 0)
        if candidates is None:
            m.add(x[tasks[0], 0] == 1)
    for t, s in by_task.items():
        for p in sets[t]:
            m.add_hint(x[t, p], int(p == relabel(s.processor)))
        m.add_hint(start[t], s.start_cycles)
        m.add_hint(lag[t], s.lag)
    for (u, v), cross in crossing.items():
        m.add_hint(cross, int(by_task[u].processor != by_task[v].processor))
    m.minimize(sum(delay))
    return Phase2(m, start, lag, delay, period, x=x)
