"""Markdown table of experiments/results/schedulers.csv (written by run.py), printed for NOTES.md.

    .venv/bin/python experiments/schedulers/table.py [experiments/results/schedulers.csv]
"""

from __future__ import annotations

import csv
import sys


def main(argv: list[str] | None = None) -> int:
    path = (argv or sys.argv[1:] or ["experiments/results/schedulers.csv"])[0]
    rows = list(csv.DictReader(open(path, newline="")))
    by = {(r["network"], int(r["processors"]), r["schedule"]): r for r in rows}
    cases = sorted({(r["network"], int(r["processors"])) for r in rows}, key=lambda k: (k[0], k[1]))
    print("| network | P | spikepipe period | LB gap | speedup | / pipedream | / best baseline (name) | delays max/total "
          "(floor) | solve s | phase 1 / 2 status | split period | split speedup | split parts | sim = claim | "
          "data-parallel speedup |")
    print("|---|---:|---:|---:|---:|---:|---|---|---:|---|---:|---:|---|---|---:|")
    for net, p in cases:
        s, x, dp = by[(net, p, "spikepipe")], by[(net, p, "spikepipe-split")], by[(net, p, "data-parallel")]
        sim = x["simulated_period_cycles"]
        ok = "" if sim == "" else ("yes" if abs(float(sim) - float(x["period_cycles"])) < 1 else f"no ({sim})")
        print(f"| {net} | {p} | {s['period_cycles']} | {100 * float(s['period_gap_to_lb']):.2f}% | "
              f"{float(s['speedup']):.2f} | {float(s['pipedream_over_this']):.3f} | "
              f"{float(s['best_pipelining_over_this']):.3f} ({s['best_pipelining']}) | "
              f"{s['max_delay']}/{s['total_delay']} ({s['delay_lower_bound']}) | {s['solve_s']} | "
              f"{s['phase1_status']} / {s['phase2_status']} | {x['period_cycles']} | {float(x['speedup']):.2f} | "
              f"{x['split_parts']} | {ok} | {float(dp['speedup']):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
