"""Issue 17 item 4, ninth pass (a measurement, not a change; experiments/README.md section 3): which partitions
of the tasks reach a low total delay at the shortest period, and what it costs to find them.

At vgg11 P=4's period every processor is full to within a few cycles, so the partitions that fit are rare exact
fits, and the default call's phase 1 and chain model return one or two of them. This script enumerates the
partitions that fit a given period with at most H hops of the F/B chain between processors (CP-SAT, one worker,
processors labelled in order of their biggest task so that each partition comes once), scores each with the
order search, and hands the best ones to the default scheduler as seeds (`spikepipe(..., seeds=...)`, the public
way to give it a starting schedule). Phase 2 then runs on the seed's assignment when the seed beats its own
candidates. Prints one line per partition and per seeded solve; `--out DIR` writes the best schedule as a
schedule file (`simulate --schedule-file` checks and replays it).

    .venv/bin/python experiments/schedulers/partitions.py --network vgg11 -P 4 --max-hops 10 --out /tmp/parts

It builds on cpsat_build's private assignment variables on purpose: the same x and loads as phase 1's model.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ortools.sat.python import cp_model

from hwmodels.config import load_cluster
from schedules import generate
from schedules.common import make_schedule, slot_cycles, training_order
from schedules.cpsat_build import _assignment_vars, _processor_sets
from schedules.fitting import chain_hops
from schedules.order_search import search_orders
from schedules.spikepipe_sched import spikepipe
from spikepipe.ir import TaskKind
from spikepipe.schedule_file import write_schedule
from spikepipe.workload import load_workload


def partitions(graph, cluster, period: int, max_hops: int, limit: int, seconds: float):
    """Up to `limit` assignments of whole tasks with every processor's work <= period and <= max_hops chain
    hops, each partition once (canonical labels), and the solver's status ("OPTIMAL" when it finished: then
    these are all of them)."""
    n = cluster.size
    tasks = list(graph.topological_order())
    m = cp_model.CpModel()
    x, _ = _assignment_vars(m, graph, cluster, _processor_sets(graph, cluster, None), period)
    # processors are interchangeable (homogeneous, all-to-all): taking the tasks biggest first, each one is on a
    # processor already used or on the next unused one, so each partition has exactly one labelling
    label = {t: m.new_int_var(0, n - 1, f"label_{t}") for t in tasks}
    for t in tasks:
        m.add(label[t] == sum(p * x[t, p] for p in range(n)))
    used = None
    for t in sorted(tasks, key=lambda t: -slot_cycles(graph, cluster, t, 0)):  # ties: topological order
        if used is None:
            m.add(label[t] == 0)
            used = label[t]
            continue
        m.add(label[t] <= used + 1)
        nxt = m.new_int_var(0, n - 1, f"used_{t}")
        m.add_max_equality(nxt, [used, label[t]])
        used = nxt
    hops = []
    for u, v, _ in graph.edges:
        if graph.task(v).kind is TaskKind.W:
            continue
        h = m.new_bool_var(f"hop_{u}_{v}")
        for p in range(n):
            m.add_implication(x[u, p], x[v, p]).only_enforce_if(h.Not())
        hops.append(h)
    m.add(sum(hops) <= max_hops)

    found: list[dict[str, int]] = []

    class Collect(cp_model.CpSolverSolutionCallback):
        def on_solution_callback(self) -> None:
            found.append({t: int(self.value(label[t])) for t in tasks})
            if len(found) >= limit:
                self.stop_search()

    solver = cp_model.CpSolver()
    solver.parameters.enumerate_all_solutions = True
    solver.parameters.num_workers = 1
    solver.parameters.max_time_in_seconds = seconds
    code = solver.solve(m, Collect())
    return found, solver.status_name(code)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--network", default="vgg11")
    ap.add_argument("-P", "--processors", type=int, default=4)
    ap.add_argument("--max-hops", type=int, required=True, help="at most this many chain hops")
    ap.add_argument("--period", type=int, default=None, help="default: the default spikepipe call's period")
    ap.add_argument("--limit", type=int, default=50, help="partitions to enumerate at most")
    ap.add_argument("--seconds", type=float, default=120.0, help="wall limit of the enumeration")
    ap.add_argument("--moves", type=int, default=3000, help="order-search moves per partition (the default call's)")
    ap.add_argument("--solve", type=int, default=4, help="best-scored partitions given to the scheduler")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    cluster = load_cluster(None, processors=args.processors)
    graph = load_workload(args.network, processor=cluster.processors[0])
    t0 = time.perf_counter()
    default = generate("spikepipe", graph, cluster)
    period = args.period or default.period_cycles
    print(f"default call: period {default.period_cycles}, total delay {sum(default.gradient_delays)}, "
          f"chain hops {chain_hops(graph, {s.task: s.processor for s in default.slots})}, "
          f"{time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    found, status = partitions(graph, cluster, period, args.max_hops, args.limit, args.seconds)
    print(f"{len(found)} partitions with <= {args.max_hops} chain hops at period {period} ({status}, "
          f"{time.perf_counter() - t0:.1f} s)")
    scored = []
    for i, assign in enumerate(found):
        slots = search_orders(graph, cluster, assign, period, training_order(graph), seed=0,
                              evaluations=args.moves)
        s = make_schedule("spikepipe", "periodic", graph, cluster, slots, period, derive_lags=True)
        scored.append((sum(s.gradient_delays), i, s))
        print(f"  partition {i}: {chain_hops(graph, assign)} hops, order search {sum(s.gradient_delays)}")
    solved = []
    for total, i, seed in sorted(scored, key=lambda x: x[:2])[:args.solve]:
        t0 = time.perf_counter()
        s = spikepipe(graph, cluster, seeds=[seed])
        solved.append(s)
        print(f"seeded with partition {i} ({total}): period {s.period_cycles}, total delay "
              f"{sum(s.gradient_delays)} {list(s.gradient_delays)}, {time.perf_counter() - t0:.1f} s")
    if args.out and solved:
        best = min(solved, key=lambda s: (s.period_cycles, sum(s.gradient_delays)))
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        path = write_schedule(out / f"{args.network}_P{args.processors}.json", best, graph, cluster)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
