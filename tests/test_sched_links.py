"""Steady-state link queueing in lag derivation (schedules.common.link_queueing_cycles), against hand counts."""

from __future__ import annotations

import pytest

from hwmodels import Cluster, Interconnect
from schedules.common import assign_lags, link_queueing_cycles
from spikepipe.ir import Dependency, Slot


def _cluster(p: int, bw: float = 4.0, lat: int = 10) -> Cluster:
    return Cluster.homogeneous(p, interconnect=Interconnect(bw, lat))


def test_two_transfers_at_once_on_one_link_queue_behind_each_other():
    # F0 and F1 both end at 100 on processor 0 and send 400 bytes (100 cycles at 4 B/cycle) to processor 1
    slots = [Slot("F0", 0, 0, 100), Slot("F1", 0, 0, 100), Slot("F2", 1, 300, 50), Slot("F3", 1, 350, 50)]
    deps = [Dependency("F0", "F2", 400), Dependency("F1", "F3", 400)]
    q = link_queueing_cycles(slots, deps, 1000, _cluster(2))
    # first come first served: one flows freely, the other waits one occupancy (100 cycles)
    assert sorted(q.values()) == [100]


def test_no_wait_when_transfers_do_not_overlap_or_use_other_links():
    slots = [Slot("F0", 0, 0, 100), Slot("F1", 0, 100, 100), Slot("F2", 1, 400, 10), Slot("F3", 2, 400, 10)]
    apart = [Dependency("F0", "F2", 400), Dependency("F1", "F2", 400)]  # requested at 100 and 200: no overlap
    assert link_queueing_cycles(slots, apart, 1000, _cluster(3)) == {}
    other = [Dependency("F0", "F2", 400), Dependency("F0", "F3", 400)]  # same time, links 0->1 and 0->2
    assert link_queueing_cycles(slots, other, 1000, _cluster(3)) == {}


def test_wrap_around_queue_from_the_previous_period():
    # F0 ends at 950 and holds link 0->1 until 1050, i.e. 50 cycles into the next period, where F1's transfer
    # (requested at offset 1000, the period's end) has to wait for it
    slots = [Slot("F0", 0, 0, 950), Slot("F1", 0, 990, 10), Slot("F2", 1, 500, 10), Slot("F3", 1, 600, 10)]
    deps = [Dependency("F0", "F2", 400), Dependency("F1", "F3", 400)]
    assert link_queueing_cycles(slots, deps, 1000, _cluster(2, lat=0)) == {("F1", "F3"): 50}


@pytest.mark.parametrize("lat", [0, 7])
def test_lags_cover_the_wait(lat):
    # free flow arrives at 200 + lat; F2 starts after that, F3 too, but F3's data waits 100 cycles behind F2's
    slots = [Slot("F0", 0, 0, 100), Slot("F1", 0, 0, 100), Slot("F2", 1, 250 + lat, 10),
             Slot("F3", 1, 260 + lat, 10)]
    deps = [Dependency("F0", "F2", 400), Dependency("F1", "F3", 400)]
    cl = _cluster(2, lat=lat)
    q = link_queueing_cycles(slots, deps, 1000, cl)
    assert q == {("F1", "F3"): 100}  # heap order: equal request times are served in dependency order
    lags = {s.task: s.lag for s in assign_lags(slots, deps, 1000, cl)}
    assert lags == {"F0": 0, "F1": 0, "F2": 0, "F3": 1}  # F3's input arrives at 300 + lat > 260 + lat
