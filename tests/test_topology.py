"""On-chip networks: 2D mesh and torus (dimension-order routing), switch (per-port limits). Routes and hop counts
on small grids by hand, link loads, the topology-following all-reduce, config, and replay = claim on them."""

from __future__ import annotations

from math import ceil

import pytest
from sched_graphs import graphs

from hwmodels import Cluster, HardwareConfigError, Interconnect
from hwmodels.config import load_cluster
from hwmodels.interconnect import SWITCH, squarest_grid
from schedules import generate
from schedules.common import link_loads, make_schedule
from spikepipe.ir import Slot, chain_graph
from spikepipe.sim import simulate

MESH23 = Interconnect(topology="mesh", grid=(2, 3))  # positions 0 1 2 / 3 4 5


@pytest.mark.parametrize("src,dst,route", [
    (0, 5, ((0, 1), (1, 2), (2, 5))),  # along the row first, then down the column
    (5, 0, ((5, 4), (4, 3), (3, 0))),
    (3, 2, ((3, 4), (4, 5), (5, 2))),
    (1, 4, ((1, 4),)),
    (2, 0, ((2, 1), (1, 0))),
    (4, 4, ()),
])
def test_mesh_routes_by_hand(src, dst, route):
    assert MESH23.route(src, dst, 6) == route


@pytest.mark.parametrize("src,dst,route", [
    (0, 2, ((0, 2),)),  # wrap-around is shorter on a row of 3
    (0, 8, ((0, 2), (2, 8))),  # X by the wrap, then Y by the wrap
    (4, 0, ((4, 3), (3, 0))),
    (7, 1, ((7, 1),)),  # column wrap: row 2 -> row 0
])
def test_torus_3x3_routes_by_hand(src, dst, route):
    assert Interconnect(topology="torus", grid=(3, 3)).route(src, dst, 9) == route


def test_torus_ties_go_up_and_mesh_placement():
    t44 = Interconnect(topology="torus")  # 4x4 by default
    assert t44.route(0, 2, 16) == ((0, 1), (1, 2))  # distance 2 both ways: towards increasing index
    assert t44.route(0, 8, 16) == ((0, 4), (4, 8))
    # processor i sits at grid position placement[i]: here the grid is reversed
    placed = Interconnect(topology="mesh", grid=(2, 2), placement=(3, 2, 1, 0))
    assert placed.position(0, 4) == (1, 1) and placed.position(3, 4) == (0, 0)
    assert placed.route(0, 3, 4) == ((0, 1), (1, 3))


def test_switch_two_ports_per_transfer():
    net = Interconnect(topology="switch")
    assert net.route(2, 5, 8) == ((2, SWITCH), (SWITCH, 5))
    assert len(net.links(8)) == 16
    assert net.transfer_cycles(2, 5, 640, 8) == 2 * (net.link_latency_cycles + ceil(640 / net.link_bytes_per_cycle))


@pytest.mark.parametrize("p,grid", [(1, (1, 1)), (2, (1, 2)), (6, (2, 3)), (7, (1, 7)), (8, (2, 4)), (12, (3, 4)),
                                    (16, (4, 4)), (64, (8, 8))])
def test_squarest_grid(p, grid):
    assert squarest_grid(p) == grid


@pytest.mark.parametrize("topology", ["mesh", "torus"])
@pytest.mark.parametrize("grid", [(2, 3), (3, 3), (2, 4), (4, 4), (1, 5)])
def test_hops_are_grid_distances_and_routes_use_neighbour_links(topology, grid):
    rows, cols = grid
    p = rows * cols
    net = Interconnect(topology=topology, grid=grid)
    links = set(net.links(p))

    def dist(a, b, n):
        d = abs(a - b)
        return min(d, n - d) if topology == "torus" else d

    for s in range(p):
        for d in range(p):
            route = net.route(s, d, p)
            (r0, c0), (r1, c1) = divmod(s, cols), divmod(d, cols)
            assert len(route) == dist(r0, r1, rows) + dist(c0, c1, cols) == net.hops(s, d, p)
            assert set(route) <= links
            if route:
                assert route[0][0] == s and route[-1][1] == d
                assert all(b == a2 for (_, b), (a2, _) in zip(route, route[1:], strict=False))
    neighbours = {(a, b) for a in range(p) for b in range(p) if a != b and
                  dist(a // cols, b // cols, rows) + dist(a % cols, b % cols, cols) == 1}
    assert links == neighbours


def test_link_loads_on_a_mesh_line_by_hand():
    """Two layers on the ends of a 1x3 mesh: the activation and the gradient each cross two links, one each way."""
    c = Cluster.homogeneous(3, interconnect=Interconnect(topology="mesh", link_bytes_per_cycle=64,
                                                         link_latency_cycles=5))
    g = chain_graph([(100, 100, 100)] * 2, edge_bytes=640)
    slots = [Slot("F0", 0, 0, 100), Slot("B0", 0, 200, 100), Slot("W0", 0, 300, 100),
             Slot("F1", 2, 0, 100), Slot("B1", 2, 100, 100), Slot("W1", 2, 200, 100)]
    s = make_schedule("hand", "periodic", g, c, slots, 400, derive_lags=True)
    assert link_loads(s, c, g) == {(0, 1): 10, (1, 2): 10, (2, 1): 10, (1, 0): 10}


@pytest.mark.parametrize("topology,grid,expect", [
    # ring all-reduce over 4, one hop per step
    ("ring", None, lambda n, lat, occ: 6 * (lat + occ(ceil(n / 4)))),
    # through the switch: two hops per step
    ("switch", None, lambda n, lat, occ: 6 * 2 * (lat + occ(ceil(n / 4)))),
    # 2x2 torus: rows (2 steps of n/2) then columns (2 steps of n/4), one hop
    ("torus", (2, 2), lambda n, lat, occ: 2 * (lat + occ(ceil(n / 2))) + 2 * (lat + occ(ceil(ceil(n / 2) / 2)))),
    # 1x4 mesh line: the folded ring, two hops per step
    ("mesh", (1, 4), lambda n, lat, occ: 6 * 2 * (lat + occ(ceil(n / 4)))),
])
@pytest.mark.parametrize("nbytes", [1000, 1 << 20])
def test_allreduce_follows_topology(topology, grid, expect, nbytes):
    net = Interconnect(topology=topology, grid=grid, link_bytes_per_cycle=32, link_latency_cycles=7)
    assert net.allreduce_cycles(nbytes, 4) == expect(nbytes, 7, net.occupancy_cycles)


@pytest.mark.parametrize("topology", ["mesh", "torus"])
def test_grid_allreduce_takes_the_cheaper_plan(topology):
    """4x4: the 2D plan (rows: 6 steps of n/4, columns: 6 of n/16; two hops per step on a mesh line) against one
    ring over a Hamiltonian cycle (30 steps of n/16, one hop); latency-bound messages prefer the fewer steps."""
    lat = 100
    net = Interconnect(topology=topology, grid=(4, 4), link_bytes_per_cycle=1, link_latency_cycles=lat)
    h = 2 if topology == "mesh" else 1
    for n in (1 << 4, 1 << 20):
        two_d = 6 * h * (lat + ceil(n / 4)) + 6 * h * (lat + ceil(ceil(n / 4) / 4))
        ring = 30 * (lat + ceil(n / 16))
        assert net.allreduce_cycles(n, 16) == min(two_d, ring)
        bytes_2d = 16 * h * (6 * ceil(n / 4) + 6 * ceil(ceil(n / 4) / 4))
        assert net.allreduce_link_bytes(n, 16) == (bytes_2d if two_d < ring else 16 * 30 * ceil(n / 16))
    # a 3x3 mesh has no Hamiltonian cycle (odd P): the 2D plan only
    m33 = Interconnect(topology="mesh", grid=(3, 3), link_latency_cycles=lat)
    n = 1 << 20
    assert m33.allreduce_cycles(n, 9) == 4 * 2 * (lat + m33.occupancy_cycles(ceil(n / 3))) + \
        4 * 2 * (lat + m33.occupancy_cycles(ceil(ceil(n / 3) / 3)))


def test_config_topologies(tmp_path):
    base = "[[processor]]\nrows = 8\ncols = 8\ncount = {count}\n[interconnect]\n{net}\n"

    def load(net, count=8, processors=None):
        p = tmp_path / "hw.toml"
        p.write_text(base.format(count=count, net=net))
        return load_cluster(str(p), processors=processors)

    c = load('topology = "mesh"\ngrid = [2, 4]')
    assert c.interconnect.grid == (2, 4) and c.route(0, 7) == ((0, 1), (1, 2), (2, 3), (3, 7))
    assert load('topology = "torus"', count=1, processors=12).interconnect.dims(12) == (3, 4)
    assert load('topology = "switch"').route(0, 1) == ((0, SWITCH), (SWITCH, 1))
    with pytest.raises(HardwareConfigError, match="grid"):
        load('topology = "mesh"\ngrid = [3, 3]')
    with pytest.raises(HardwareConfigError, match="grid"):
        load('topology = "mesh"\ngrid = [2, 4]', count=1, processors=6)
    with pytest.raises(HardwareConfigError, match="placement"):
        load('topology = "mesh"\nplacement = [0, 1, 2, 3, 4, 5, 6, 6]')
    with pytest.raises(HardwareConfigError, match="grid"):
        load('topology = "ring"\ngrid = [2, 4]')
    with pytest.raises(HardwareConfigError, match="topology"):
        load('topology = "hypercube"')


GRAPHS = graphs()
OPTIONS = {"spikepipe": {"time_limit_s": 0.3, "workers": 1}}
NETS = {"mesh": Interconnect(topology="mesh", link_latency_cycles=20),
        "torus": Interconnect(topology="torus", link_latency_cycles=20),
        "switch": Interconnect(topology="switch", link_latency_cycles=20)}


@pytest.mark.parametrize("procs", [4, 6])
@pytest.mark.parametrize("graph_name", sorted(GRAPHS))
@pytest.mark.parametrize("topology", sorted(NETS))
@pytest.mark.parametrize("name", ["spikepipe", "pipedream", "1f1b", "data-parallel", "gpipe", "zero-bubble"])
def test_replay_equals_claim_on_new_topologies(name, topology, graph_name, procs):
    g, c = GRAPHS[graph_name], Cluster.homogeneous(procs, interconnect=NETS[topology])
    s = generate(name, g, c, **OPTIONS.get(name, {}))
    r = simulate(s, c, graph=g, strict=True, link_contention=False)
    assert r.simulated_period_cycles == s.period_cycles
    assert r.late_slots == 0
    assert r.gradient_delays == s.gradient_delays
    shared = simulate(s, c, graph=g)
    assert shared.simulated_period_cycles >= s.period_cycles
    if s.kind == "periodic":
        assert shared.simulated_period_cycles == s.period_cycles
