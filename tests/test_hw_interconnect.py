"""Interconnect: routes, transfer times and ring all-reduce for all-to-all and ring topologies."""

from __future__ import annotations

from math import ceil

import pytest

from hwmodels import Cluster, HardwareConfigError, Interconnect


@pytest.mark.parametrize("p", [2, 3, 4, 5, 8])
def test_all_to_all_is_one_hop_everywhere(p):
    net = Interconnect(topology="all-to-all")
    for s in range(p):
        for d in range(p):
            assert net.route(s, d, p) == (() if s == d else ((s, d),))


@pytest.mark.parametrize("p", [2, 3, 4, 5, 8])
def test_ring_takes_the_shorter_way_over_neighbour_links(p):
    net = Interconnect(topology="ring")
    for s in range(p):
        for d in range(p):
            route = net.route(s, d, p)
            fwd = (d - s) % p
            assert len(route) == min(fwd, p - fwd)
            if route:
                assert route[0][0] == s and route[-1][1] == d
                assert all(b == a2 for (_, b), (a2, _) in zip(route, route[1:], strict=False))
                assert all((b - a) % p in (1, p - 1) for a, b in route)
                # ties (opposite side of an even ring) go clockwise
                if fwd == p - fwd:
                    assert route[0][1] == (s + 1) % p


@pytest.mark.parametrize("topology", ["all-to-all", "ring"])
@pytest.mark.parametrize("nbytes", [0, 1, 64, 1000, 1 << 20])
def test_transfer_cycles_store_and_forward(topology, nbytes):
    net = Interconnect(link_bytes_per_cycle=64.0, link_latency_cycles=10, topology=topology)
    c = Cluster.homogeneous(6, interconnect=net)
    for d in range(6):
        hops = len(c.route(0, d))
        expect = hops * (10 + (ceil(nbytes / 64) if nbytes else 0))
        assert c.transfer_cycles(0, d, nbytes) == expect


def test_farther_is_slower_on_a_ring_not_on_all_to_all():
    ring = Cluster.homogeneous(8, interconnect=Interconnect(topology="ring"))
    a2a = Cluster.homogeneous(8, interconnect=Interconnect(topology="all-to-all"))
    assert ring.transfer_cycles(0, 4, 4096) == 4 * ring.transfer_cycles(0, 1, 4096)
    assert a2a.transfer_cycles(0, 4, 4096) == a2a.transfer_cycles(0, 1, 4096)


@pytest.mark.parametrize("p", [1, 2, 3, 4, 16])
@pytest.mark.parametrize("nbytes", [0, 10, 4096, 999_983])
def test_ring_allreduce_formula(p, nbytes):
    net = Interconnect(link_bytes_per_cycle=32.0, link_latency_cycles=7)
    expect = 0 if p == 1 or nbytes == 0 else 2 * (p - 1) * (7 + ceil(ceil(nbytes / p) / 32))
    assert net.allreduce_cycles(nbytes, p) == expect
    assert Cluster.homogeneous(p, interconnect=net).allreduce_cycles(nbytes) == expect


def test_more_bandwidth_never_slower():
    times = [Interconnect(link_bytes_per_cycle=bw).transfer_cycles(0, 1, 1 << 20, 2) for bw in (1, 8, 64, 512)]
    assert times == sorted(times, reverse=True)


@pytest.mark.parametrize("kwargs", [dict(link_bytes_per_cycle=0), dict(link_bytes_per_cycle=True),
                                    dict(link_latency_cycles=-1), dict(link_latency_cycles=1.5),
                                    dict(topology="hypercube")])
def test_bad_interconnect(kwargs):
    with pytest.raises(HardwareConfigError):
        Interconnect(**kwargs)
