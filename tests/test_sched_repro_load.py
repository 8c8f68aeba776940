"""The default budget is counted in work (CP-SAT deterministic time with a fixed worker count, order-search moves),
so the same solve gives a byte-identical schedule on an idle machine and with a busy loop on every core."""

from __future__ import annotations

import json
import multiprocessing as mp
import os

import pytest

from hwmodels import Cluster
from schedules import generate, validate
from spikepipe.ir import chain_graph


def _spin() -> None:
    while True:
        pass


def _chain():
    # uneven layers on more processors than phase 2 proves in this budget: the search is cut by its limit
    return chain_graph([(1000 + 37 * i % 900, 1500 + 53 * i % 700, 800 + 29 * i % 500) for i in range(24)],
                       edge_bytes=4096, batch=8)


def _schedule_bytes(s) -> str:
    d = s.to_dict()
    info = d.pop("info")
    kept = {k: info[k] for k in ("status", "phase2_source", "reproducible", "wall_guard_fired", "budget_mode")}
    return json.dumps({**d, "info": kept}, sort_keys=True, default=str)


def _listed():
    # 24 tasks on 4 processors: the seeds come from the full list of fitting partitions (schedules.fitting)
    return chain_graph([(1000 + 37 * i % 900, 1500 + 53 * i % 700, 800 + 29 * i % 500) for i in range(8)],
                       edge_bytes=4096, batch=8), Cluster.homogeneous(4)


@pytest.mark.parametrize("case", ["cut-by-limit", "partitions-listed"])
def test_same_solve_idle_and_with_every_core_busy(case):
    g, c = (_chain(), Cluster.homogeneous(6)) if case == "cut-by-limit" else _listed()
    opts = {"deterministic_time_s": 0.2, "search_evaluations": 200, "workers": 2, "seed": 3}
    idle = generate("spikepipe", g, c, **opts)
    validate(idle, g, c)
    assert idle.info["budget_mode"] == "deterministic" and idle.info["reproducible"]
    assert not idle.info["wall_guard_fired"]
    if case == "cut-by-limit":
        assert idle.info["phase2"]["status"] == "FEASIBLE"  # the limit, not a proof, ended the search
    else:
        assert idle.info["order_search"]["partitions"]["listed"] > 1000
    ctx = mp.get_context("spawn")
    spinners = [ctx.Process(target=_spin, daemon=True) for _ in range(os.cpu_count() or 2)]
    for p in spinners:
        p.start()
    try:
        busy = generate("spikepipe", g, c, **opts)
    finally:
        for p in spinners:
            p.terminate()
        for p in spinners:
            p.join()
    assert busy.info["reproducible"]
    assert _schedule_bytes(busy) == _schedule_bytes(idle)


def test_an_explicit_time_limit_is_wall_clock_and_says_so():
    g, c = _chain(), Cluster.homogeneous(6)
    s = generate("spikepipe", g, c, time_limit_s=1.0, search_evaluations=300)
    validate(s, g, c)
    assert s.info["budget_mode"] == "wall-clock"
    assert s.info["time_limit_s"] == 1.0
