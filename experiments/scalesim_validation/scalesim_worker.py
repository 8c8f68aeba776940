"""Runs inside the separate SCALE-Sim venv (stdlib + scalesim only): simulate GEMM layers one by one.

Reads a JSON job on stdin: {"rows", "cols", "dataflow", "shapes": [[M, K, N], ...], "sram_kb": int}
and prints one JSON line per layer: {"m", "k", "n", "total_cycles", "stall_cycles",
"total_cycles_incl_prefetch", "wall_s"}. Each layer is its own SCALE-Sim run (its own topology file) so that
its wall time is measured alone. Not imported by the project.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """[general]
run_name = golden

[architecture_presets]
ArrayHeight:    {rows}
ArrayWidth:     {cols}
IfmapSramSzkB:    {sram_kb}
FilterSramSzkB:   {sram_kb}
OfmapSramSzkB:    {sram_kb}
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 10
Dataflow : {dataflow}
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


def config_text(rows: int, cols: int, dataflow: str, sram_kb: int) -> str:
    return CONFIG.format(rows=rows, cols=cols, dataflow=dataflow, sram_kb=sram_kb)


def run_layer(workdir: Path, cfg: Path, m: int, k: int, n: int) -> dict:
    from scalesim.scale_sim import scalesim  # only here: the project venv imports config_text without it

    # SCALE-Sim's GEMM topology rows are name, M, N, K (K the reduction), each row ending with a comma.
    topo = workdir / f"gemm_{m}_{k}_{n}.csv"
    topo.write_text(f"Layer, M, N, K,\nL0, {m}, {n}, {k},\n")
    layout = workdir / "layout.csv"  # required by the loader, unused without custom layouts
    layout.write_text("Layer,\n")
    out = workdir / f"out_{m}_{k}_{n}"
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        sim = scalesim(save_disk_space=True, verbose=False, config=str(cfg), topology=str(topo),
                       layout=str(layout), input_type_gemm=True)
        sim.run_scale(top_path=str(out))
    wall = time.perf_counter() - t0
    lines = (out / "golden" / "COMPUTE_REPORT.csv").read_text().strip().splitlines()
    fields = [f.strip() for f in lines[1].split(",")]
    return {"m": m, "k": k, "n": n, "total_cycles_incl_prefetch": int(fields[1]), "total_cycles": int(fields[2]),
            "stall_cycles": int(fields[3]), "wall_s": wall}


def main() -> None:
    job = json.loads(sys.stdin.read())
    with tempfile.TemporaryDirectory(prefix="scalesim_") as tmp:
        work = Path(tmp)
        cfg = work / "scale.cfg"
        cfg.write_text(config_text(job["rows"], job["cols"], job["dataflow"], job["sram_kb"]))
        for m, k, n in job["shapes"]:
            print(json.dumps(run_layer(work, cfg, m, k, n)), flush=True)


if __name__ == "__main__":
    main()
