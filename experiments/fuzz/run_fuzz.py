"""Long fuzz run: N random (graph, cluster) cases through every scheduler, the validator and the SimPy replay.

Unlike the hypothesis tests (which stop at the first failure), this counts every property violation per schedule
generator and keeps the first reproducer of each, so one run shows every bug at once.

    .venv/bin/python experiments/fuzz/run_fuzz.py --cases 10000 --out experiments/fuzz/fuzz_10000.json

Case i depends only on (i, --seed), so a long run can be cut into index ranges (--start/--cases) run side by side
or after an interruption, and their JSON files summed with --merge:

    run_fuzz.py --start 0 --cases 5000 --out a.json & run_fuzz.py --start 5000 --cases 5000 --out b.json
    run_fuzz.py --merge a.json b.json --out fuzz_10000.json
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn  # noqa: E402
from test_fuzz_schedules import PROCESSOR_KINDS, random_cluster, random_graph  # noqa: E402

from schedules import generate, validate  # noqa: E402
from schedules.registry import PIPELINING, names  # noqa: E402
from spikepipe.io import write_json  # noqa: E402
from spikepipe.ir import lower_bound_cycles  # noqa: E402
from spikepipe.sim import simulate  # noqa: E402


def case_params(i: int, seed: int) -> dict:
    rng = random.Random(seed * 1_000_003 + i)
    return {"layers": rng.randint(1, 66) if rng.random() < 0.3 else rng.randint(1, 12),
            "seed": rng.randrange(2**31),
            "kinds": [rng.choice(sorted(PROCESSOR_KINDS)) for _ in range(rng.randint(1, 6))],
            "bw": rng.choice([4.0, 64.0, 1024.0]), "lat": rng.choice([0, 10, 1000])}


def run_case(p: dict, time_limit_s: float, contention: bool) -> dict:
    g = random_graph(p["layers"], p["seed"])
    c = random_cluster(p["kinds"], p["bw"], p["lat"])
    lb = lower_bound_cycles(g, c)
    split_lb = math.ceil(sum(min(g.cycles(t, q) for q in c.processors) for t in g.topological_order()) / c.size)
    out = {"violations": [], "periods": {}, "contention_slower": [], "fallback": False}
    for name in names():
        opts = {"time_limit_s": time_limit_s, "workers": 1, "seed": 0} if name == "spikepipe" else {}
        try:
            s = generate(name, g, c, **opts)
        except Exception as exc:  # noqa: BLE001 - counted, not fatal
            out["violations"].append((name, "exception", f"{type(exc).__name__}: {str(exc).splitlines()[0]}"))
            continue
        try:
            validate(s, g, c)
        except Exception as exc:  # noqa: BLE001
            out["violations"].append((name, "invalid", str(exc).splitlines()[0]))
        bound = split_lb if name == "data-parallel" else lb
        if s.period_cycles < bound:
            out["violations"].append((name, "below-lower-bound", f"{s.period_cycles} < {bound}"))
        sim = simulate(s, c, graph=g, link_contention=False, record=False)
        if abs(sim.simulated_period_cycles - s.period_cycles) > 1e-6 * s.period_cycles or sim.late_slots:
            out["violations"].append((name, "sim-period-differs",
                                      f"simulated {sim.simulated_period_cycles} vs claimed {s.period_cycles}, "
                                      f"{sim.late_slots} late"))
        out["periods"][name] = s.period_cycles
        if name == "spikepipe":
            out["fallback"] = bool(s.info.get("fallback"))
        if contention:
            real = simulate(s, c, graph=g, link_contention=True, record=False)
            if real.simulated_period_cycles > s.period_cycles * (1 + 1e-9):
                out["contention_slower"].append(name)
    per = out["periods"]
    if "spikepipe" in per:
        base = [v for n, v in per.items() if n in PIPELINING]
        if base and per["spikepipe"] > min(base):
            out["violations"].append(("spikepipe", "worse-than-baseline", f"{per['spikepipe']} > {min(base)}"))
        out["beaten_by"] = [n for n, v in per.items() if v < per["spikepipe"]]
    return out


def merge(parts: list[dict]) -> dict:
    """Sum runs over disjoint case ranges; refuses overlapping ranges or different settings."""
    ranges = sorted(tuple(r) for p in parts for r in p.get("ranges", [[0, p["cases_done"]]]))
    for (a0, a1), (b0, b1) in pairwise(ranges):
        if b0 < a1:
            raise SystemExit(f"error: case ranges overlap: [{a0}, {a1}) and [{b0}, {b1})")
    if len({p["time_limit_s"] for p in parts}) > 1:
        raise SystemExit("error: the runs used different --time-limit values; they cannot be summed")

    def total(key: str) -> dict:
        c: Counter = Counter()
        for p in parts:
            c.update(p[key])
        return dict(sorted(c.items()))

    first: dict = {}
    for p in sorted(parts, key=lambda p: p.get("ranges", [[0]])[0][0]):
        for k, v in p["first_reproducer"].items():
            first.setdefault(k, v)
    return {"command": " | ".join(p["command"] for p in parts),
            "cases_requested": sum(p["cases_requested"] for p in parts),
            "cases_done": sum(p["cases_done"] for p in parts), "finished": all(p["finished"] for p in parts),
            "ranges": [list(r) for r in ranges],
            "revision": sorted({p.get("revision", "unknown") for p in parts}),
            "wall_s": round(sum(p["wall_s"] for p in parts), 1), "time_limit_s": parts[0]["time_limit_s"],
            "max_tasks": max(p["max_tasks"] for p in parts), "violations": total("violations"),
            "first_reproducer": first, "contention_replays": sum(p["contention_replays"] for p in parts),
            "contention_slower": total("contention_slower"),
            "spikepipe_fallbacks": sum(p["spikepipe_fallbacks"] for p in parts),
            "spikepipe_beaten_by": total("spikepipe_beaten_by")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=10_000, help="number of cases, from index --start on")
    ap.add_argument("--start", type=int, default=0, help="index of the first case")
    ap.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                    help="sum the results of runs over disjoint case ranges into --out, then stop")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=0.3)
    ap.add_argument("--contention-every", type=int, default=5, help="also replay with contention every Nth case")
    ap.add_argument("--out", default="experiments/fuzz/fuzz.json")
    ap.add_argument("--save-every", type=int, default=50)
    args = ap.parse_args()
    if args.merge:
        write_json(args.out, merge([json.loads(Path(f).read_text()) for f in args.merge]))
        return
    viol: Counter = Counter()
    first: dict[str, dict] = {}
    slower: Counter = Counter()
    beaten: Counter = Counter()
    replayed = fallbacks = done = tasks_max = 0
    t0 = time.perf_counter()
    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"

    def save(final: bool) -> None:
        write_json(args.out, {
            "command": " ".join(sys.argv), "cases_requested": args.cases, "cases_done": done, "finished": final,
            "ranges": [[args.start, args.start + done]], "revision": revision,
            "wall_s": round(time.perf_counter() - t0, 1), "time_limit_s": args.time_limit,
            "max_tasks": tasks_max, "violations": {"/".join(k): v for k, v in sorted(viol.items())},
            "first_reproducer": first, "contention_replays": replayed,
            "contention_slower": dict(sorted(slower.items())), "spikepipe_fallbacks": fallbacks,
            "spikepipe_beaten_by": dict(sorted(beaten.items()))})

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn()) as bar:
        task = bar.add_task("fuzz", total=args.cases)
        for i in range(args.start, args.start + args.cases):
            p = case_params(i, args.seed)
            contention = args.contention_every > 0 and i % args.contention_every == 0
            r = run_case(p, args.time_limit, contention)
            tasks_max = max(tasks_max, 3 * p["layers"])
            for name, kind, msg in r["violations"]:
                viol[(name, kind)] += 1
                first.setdefault(f"{name}/{kind}", {"case": i, "params": p, "message": msg})
            replayed += contention
            slower.update(r["contention_slower"])
            fallbacks += r["fallback"]
            beaten.update(r.get("beaten_by", []))
            done += 1
            bar.update(task, advance=1, description=f"fuzz ({sum(viol.values())} violations)")
            if done % args.save_every == 0:
                save(False)
    save(True)


if __name__ == "__main__":
    main()
