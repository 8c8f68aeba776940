"""Every flush baseline against its closed form and against torch.distributed.pipelining's schedule of the same
name, on p equal stages with F = B = W = 1 per micro-batch (per chunk for the interleaved and V schedules) and
free links. Prints a markdown table (iteration in units of one pass of one stage, chunk units halved for v=2).

    .venv/bin/python experiments/schedulers/flush_forms.py
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from torch_pipelining import pipeline_order, unit_makespan  # noqa: E402

from hwmodels import Cluster, Interconnect  # noqa: E402
from schedules import generate  # noqa: E402
from spikepipe.ir import chain_graph  # noqa: E402

UNIT = 120  # cycles of one pass of one chunk, divisible by every v used

# name, torch class, chunks per processor v, closed form in stage units (F = B = W = 1 per stage), its label
FORMS = [
    ("gpipe", "ScheduleGPipe", 1, lambda p, m, v: (m + p - 1) * 2 + m, "(m+p-1)(F+B) + mW"),
    ("1f1b", "Schedule1F1B", 1, lambda p, m, v: (m + p - 1) * 2 + m, "(m+p-1)(F+B) + mW"),
    ("interleaved-1f1b", "ScheduleInterleaved1F1B", 2, lambda p, m, v: 3 * m + Fraction(2 * (p - 1), v),
     "m(F+B+W) + (p-1)(F+B)/v"),
    ("zero-bubble", "ScheduleInterleavedZeroBubble", 1, lambda p, m, v: 3 * m + (p - 1), "m(F+B+W) + (p-1)(F+B-W)"),
    ("zb-v", "ScheduleZBVZeroBubble", 2, lambda p, m, v: 3 * m + Fraction(p - 1, 2),
     "m(F+B+W) + (p-1)(F+B-W)/2, m >= 2p"),
]


def ours(name: str, p: int, m: int, v: int) -> Fraction:
    per_chunk = UNIT // v
    g = chain_graph([(per_chunk * m,) * 3] * (p * v), batch=256)
    c = Cluster.homogeneous(p, interconnect=Interconnect(link_latency_cycles=0))
    opts = {"microbatches": m} | ({"virtual_stages": v} if name == "interleaved-1f1b" else {})
    return Fraction(generate(name, g, c, **opts).period_cycles, UNIT)


def main() -> None:
    print("| schedule | closed form (stage units) | p | m | closed form | ours | torch |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, cls, v, form, label in FORMS:
        for p in (2, 4, 8):
            for m in (p, 2 * p, 4 * p):
                if name == "zb-v" and m < 2 * p:
                    continue
                theirs = Fraction(unit_makespan(pipeline_order(cls, p, m, v)), v)
                print(f"| {name} | {label} | {p} | {m} | {float(form(p, m, v)):g} | {float(ours(name, p, m, v)):g} "
                      f"| {float(theirs):g} |")


if __name__ == "__main__":
    main()
