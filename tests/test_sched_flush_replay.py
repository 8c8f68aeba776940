"""A flush schedule's claimed period is what the SimPy replay measures with link contention: the executor books
links first come, first served in time order, as the replay's DMA serves them. On one-hop routes every slot is
on time in the replay; on a ring, transfers asked for in the same cycle can reach their second hop in an order the
executor does not know, so a slot may start a few cycles late inside the iteration, but the period holds."""

import pytest
from sched_graphs import graphs, random_dag

from hwmodels import Cluster, Interconnect
from schedules import generate, validate
from spikepipe.sim import simulate

FLUSH = ("gpipe", "1f1b", "interleaved-1f1b", "zero-bubble", "zb-v")
GRAPHS = {**graphs(), "wide-skips": random_dag(9, seed=11, skip_prob=0.6, edge_bytes=200_000, batch=32),
          "heavy-links": random_dag(6, seed=5, skip_prob=0.5, edge_bytes=1_000_000, batch=16)}


@pytest.mark.parametrize("topology", ["all-to-all", "ring"])
@pytest.mark.parametrize("procs", [3, 8])
@pytest.mark.parametrize("graph_name", sorted(GRAPHS))
@pytest.mark.parametrize("name", FLUSH)
def test_flush_claim_equals_the_contended_replay(name, graph_name, procs, topology):
    g = GRAPHS[graph_name]
    c = Cluster.homogeneous(procs, interconnect=Interconnect(topology=topology, link_bytes_per_cycle=16))
    s = generate(name, g, c)
    validate(s, g, c)
    # one-hop routes: the strict replay raises at the first slot not on time or whose data is not there at its
    # start, so passing it is the lenient replay with no late slot (the lenient one would only repeat it)
    r = simulate(s, c, graph=g, strict=topology != "ring")
    assert r.simulated_period_cycles == s.period_cycles
    if topology != "ring":
        assert r.late_slots == 0


@pytest.mark.parametrize("procs", [4, 8])
@pytest.mark.parametrize("network", ["snn-cnn", pytest.param("resnet18", marks=pytest.mark.slow)])
def test_flush_claim_equals_the_replay_on_real_networks(network, procs):
    from hwmodels.config import load_cluster
    from spikepipe.workload import load_workload

    c = load_cluster(None, processors=procs)
    g = load_workload(network, processor=c.processors[0])
    for name in FLUSH:
        s = generate(name, g, c)
        r = simulate(s, c, graph=g)
        assert r.simulated_period_cycles == s.period_cycles, name
