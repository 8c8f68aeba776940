"""Memory stall model: direction and accounting checks (stalls are separate from compute)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hwmodels import Memory, Processor, SystolicArray
from hwmodels.memory import GemmTraffic

DATAFLOWS = ["os", "ws", "is"]
SHAPES = [(64, 64, 64), (3136, 576, 64), (100, 300, 7), (7, 300, 100), (1024, 1024, 1024)]
BIG = 1 << 30


def proc(dataflow: str, **mem) -> Processor:
    return Processor(array=SystolicArray(32, 32, dataflow), memory=Memory(**mem))


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_more_bandwidth_never_more_stalls_and_compute_unchanged(dataflow, m, k, n):
    costs = [proc(dataflow, dram_bytes_per_cycle=bw).gemm_cost(m, k, n) for bw in (1, 4, 16, 64, 256, 4096)]
    stalls = [c.stall_cycles for c in costs]
    assert stalls == sorted(stalls, reverse=True)
    assert stalls[0] > stalls[-1]
    assert len({c.compute_cycles for c in costs}) == 1
    assert costs[0].compute_cycles == SystolicArray(32, 32, dataflow).gemm_cycles(m, k, n)
    assert all(c.total_cycles == c.compute_cycles + c.stall_cycles for c in costs)


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_gemm_fitting_sram_is_read_once(dataflow, m, k, n):
    p = proc(dataflow, ifmap_sram_bytes=BIG, filter_sram_bytes=BIG, ofmap_sram_bytes=BIG)
    wb = p.word_bytes
    assert p.gemm_cost(m, k, n).dram_bytes == (m * k + k * n + m * n) * wb


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_smaller_sram_never_less_traffic(dataflow, m, k, n):
    sizes = [BIG, 1 << 22, 1 << 18, 1 << 14, 1 << 10]
    traffic = [proc(dataflow, ifmap_sram_bytes=s, filter_sram_bytes=s, ofmap_sram_bytes=s).gemm_cost(m, k, n)
               .dram_bytes for s in sizes]
    assert traffic == sorted(traffic)


def test_large_gemm_on_small_sram_restreams():
    # OS, A = 1024x1024 bf16 = 2 MiB does not fit 64 KiB: re-read once per column fold (1024/32 = 32).
    p = proc("os", ifmap_sram_bytes=1 << 16, filter_sram_bytes=1 << 30, ofmap_sram_bytes=1 << 30)
    t = p.memory.gemm_traffic(p.array, 1024, 1024, 1024, 2)
    assert t.ifmap_bytes == 1024 * 1024 * 2 * 32
    assert t.filter_bytes == 1024 * 1024 * 2 and t.ofmap_bytes == 1024 * 1024 * 2


@pytest.mark.parametrize("dataflow", ["ws", "is"])
def test_partial_sums_spill_when_the_output_block_does_not_fit(dataflow):
    # K = 320 on 32 rows: 10 K folds; each output block written and read back 2*10-1 times.
    p = proc(dataflow, ifmap_sram_bytes=BIG, filter_sram_bytes=BIG, ofmap_sram_bytes=1024)
    t = p.memory.gemm_traffic(p.array, 500, 320, 500, 2)
    assert t.ofmap_bytes == 500 * 500 * 2 * 19


def test_stall_formula_hand_case():
    mem = Memory(dram_bytes_per_cycle=10.0)
    t = GemmTraffic(ifmap_bytes=1000, filter_bytes=500, ofmap_bytes=500, first_fold_bytes=200)
    # first fold exposed: 20 cycles; the other 1800 bytes = 180 cycles hide behind 100 compute -> 80 stall
    assert mem.stall_cycles(100, t) == 20 + 80
    assert mem.stall_cycles(1000, t) == 20  # compute-bound: only the first fold's load shows
    assert replace(mem, double_buffered=False).stall_cycles(1000, t) == 200  # nothing overlaps


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_double_buffering_never_hurts_when_traffic_is_equal(dataflow, m, k, n):
    # With SRAM large enough that halving it changes nothing, double buffering can only hide time.
    kw = dict(ifmap_sram_bytes=BIG, filter_sram_bytes=BIG, ofmap_sram_bytes=BIG, dram_bytes_per_cycle=8)
    db, single = proc(dataflow, **kw), proc(dataflow, double_buffered=False, **kw)
    assert db.gemm_cost(m, k, n).dram_bytes == single.gemm_cost(m, k, n).dram_bytes
    assert db.gemm_cost(m, k, n).stall_cycles <= single.gemm_cost(m, k, n).stall_cycles


@pytest.mark.parametrize("kwargs", [dict(ifmap_sram_bytes=0), dict(dram_bytes_per_cycle=0),
                                    dict(dram_bytes_per_cycle=-1.0), dict(filter_sram_bytes=1.5),
                                    dict(dram_bytes=True), dict(double_buffered="yes")])
def test_bad_memory_values_are_rejected(kwargs):
    from hwmodels import HardwareConfigError

    with pytest.raises(HardwareConfigError):
        Memory(**kwargs)
