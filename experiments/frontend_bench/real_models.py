"""Real SNNs as their authors wrote them, through the front end: inferred T and B, layers, tasks, forward MACs
against torch's FLOP counter, and `simulate` at P=4 (period, speedup over sequential, max gradient delay).

    .venv/bin/python experiments/frontend_bench/real_models.py [--processors 4] [--time-limit 5] [--only NAME,...]

Models: experiments/frontend_bench/models.py (SpikingJelly's zoo, snnTorch tutorial style, every neuron) plus two
NIR graphs written with the `nir` package (T and B given). Writes results/frontend_bench/real_models.csv and .md
(git-ignored) and prints the markdown table.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from hwmodels.config import load_cluster
from spikepipe.costs import build_task_graph
from spikepipe.frontend import Traced, trace_model
from spikepipe.io import write_atomic, write_csv
from spikepipe.sim.evaluate import evaluate_graph

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import CASES  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ("model", "source", "layout", "T", "B", "T source", "layers", "tasks", "F MACs", "torch MACs", "equal",
           "period (cycles)", "speedup", "max delay", "trace s")


def torch_macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def nir_graph(neuron: str) -> object:
    """A 2-conv NIR CNN on 2 x 32 x 32 (DVS-like) with the given neuron, built with the nir package."""
    import nir

    def cell(shape: tuple[int, ...]) -> object:
        ones, zeros = np.ones(shape), np.zeros(shape)
        if neuron == "cubalif":
            return nir.CubaLIF(tau_syn=ones * 2, tau_mem=ones * 4, r=ones, v_leak=zeros, v_threshold=ones)
        return nir.LIF(tau=ones * 2, r=ones, v_leak=zeros, v_threshold=ones)

    pool = {"kernel_size": np.array([2, 2]), "stride": np.array([2, 2]), "padding": np.array([0, 0])}
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2, 32, 32])}),
        "conv1": nir.Conv2d(input_shape=(32, 32), weight=np.zeros((16, 2, 3, 3)), stride=1, padding=1, dilation=1,
                            groups=1, bias=np.zeros(16)),
        "n1": cell((16, 32, 32)), "pool1": nir.SumPool2d(**pool),
        "conv2": nir.Conv2d(input_shape=(16, 16), weight=np.zeros((32, 16, 3, 3)), stride=1, padding=1,
                            dilation=1, groups=1, bias=np.zeros(32)),
        "n2": cell((32, 16, 16)), "pool2": nir.AvgPool2d(**pool),
        "flat": nir.Flatten(input_type={"input": np.array([32, 8, 8])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=np.zeros((11, 32 * 8 * 8)), bias=np.zeros(11)), "n3": cell((11,)),
        "output": nir.Output(output_type={"output": np.array([11])}),
    }
    order = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order, order[1:], strict=False)))


def _row(name: str, source: str, traced: Traced, torch_total: int | None, args, seconds: float) -> dict:
    cluster = load_cluster(None, processors=args.processors)
    lay = traced.layout
    graph = build_task_graph(traced.layers, batch=lay.batch, timesteps=lay.timesteps,
                             processor=cluster.processors[0], name=name, layout=lay.to_dict())
    macs = sum(g.macs for t in graph.tasks if t.kind.value == "F" for g in t.gemms)
    report = evaluate_graph(graph, cluster, ["sequential", "spikepipe"],
                            options={"time_limit_s": args.time_limit}).report
    best = next((r for r in report["results"] if r["schedule"] == "spikepipe"), None)
    return {"model": name, "source": source, "layout": lay.style, "T": lay.timesteps, "B": lay.batch,
            "T source": lay.timesteps_source, "layers": len(traced.layers), "tasks": len(graph.tasks),
            "F MACs": macs, "torch MACs": torch_total if torch_total is not None else "",
            "equal": "" if torch_total is None else ("yes" if torch_total == macs else "NO"),
            "period (cycles)": best["period_cycles"] if best else "", "speedup":
                round(best["speedup"], 2) if best else "", "max delay": best["max_delay"] if best else "",
            "trace s": round(seconds, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processors", type=int, default=4)
    ap.add_argument("--time-limit", type=float, default=5.0, help="spikepipe scheduler time limit (s)")
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "frontend_bench")
    args = ap.parse_args()
    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    only = {n for n in args.only.split(",") if n}
    rows = []
    for case in CASES:
        if only and case.name not in only:
            continue
        model, x = case.build()
        t0 = time.perf_counter()
        traced = trace_model(model, x)
        seconds = time.perf_counter() - t0
        rows.append(_row(case.name, case.source, traced, torch_macs(model, x), args, seconds))
        print(rows[-1], flush=True)
    from spikepipe.nir_import import graph_module, trace_graph

    for neuron in ("lif", "cubalif"):
        name = f"nir-cnn-{neuron}"
        if only and name not in only:
            continue
        graph = nir_graph(neuron)
        t0 = time.perf_counter()
        traced = trace_graph(graph, timesteps=16, batch=8)
        seconds = time.perf_counter() - t0
        nm = graph_module(graph)  # torch's counter on the graph as torch modules, on meta tensors
        total = torch_macs(nm.module, torch.empty(16, 8, *nm.input_shape, device="meta"))
        rows.append(_row(name, f"NIR graph (nir package), {neuron.upper()}, 2 conv + affine; T, B given",
                         traced, total, args, seconds))
        print(rows[-1], flush=True)
    write_csv(args.out / "real_models.csv", rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(f"{r[c]:,}" if isinstance(r[c], int) and c not in ("T", "B") else str(r[c])
                                for c in COLUMNS) + " |" for r in rows]
    md = "\n".join(lines) + "\n"
    write_atomic(args.out / "real_models.md", md)
    print(md)


if __name__ == "__main__":
    main()
