"""Two known answers for delays derived from lags: PipeDream keeps p-s weight versions at stage s (delay p-1-s),
and a chain with one layer per processor whose tasks fill the period gives LayerPipe's 2 * (stages after l)."""

import pytest
from sched_graphs import graphs

from hwmodels import Cluster, Interconnect
from schedules import generate, validate
from spikepipe.ir import chain_graph


@pytest.mark.parametrize("stages", [1, 2, 3, 4, 6, 8])
def test_pipedream_delay_is_p_minus_1_minus_s_on_a_uniform_chain(stages):
    # free links: PipeDream's ideal steady state, no stretching and no raised W lags
    g = chain_graph([(4000, 4000, 4000)] * stages, edge_bytes=0)
    c = Cluster.homogeneous(stages, interconnect=Interconnect(link_latency_cycles=0))
    s = generate("pipedream", g, c)
    validate(s, g, c)
    assert s.gradient_delays == tuple(stages - 1 - k for k in range(stages))
    assert s.info["period_stretch"] == 1.0
    assert s.info["w_lag_raised"] == {}  # the delays come from the placement alone
    # real links: the period stretches a little, the bookkeeping holds
    g = chain_graph([(4000, 4000, 4000)] * stages, edge_bytes=2048)
    c = Cluster.homogeneous(stages)
    s = generate("pipedream", g, c)
    validate(s, g, c)
    assert s.gradient_delays == tuple(stages - 1 - k for k in range(stages))


@pytest.mark.parametrize("procs", [2, 3, 4, 8])
@pytest.mark.parametrize("graph_name", ["random-chain", "skip-dag"])
def test_pipedream_delays_match_weight_versions_on_uneven_graphs(graph_name, procs):
    g, c = graphs()[graph_name], Cluster.homogeneous(procs)
    s = generate("pipedream", g, c)
    validate(s, g, c)
    stage_of = {sl.layer: sl.processor for sl in s.slots if sl.kind.value == "F"}
    p = len(s.info["stages"])
    assert s.gradient_delays == tuple(p - 1 - stage_of[layer] for layer in range(g.num_layers))
    assert s.info["weight_versions"] == [p - k for k in range(p)]


@pytest.mark.parametrize("layers", [1, 2, 3, 5, 8])
def test_layerpipe_chain_gives_two_per_stage_after(layers):
    # One layer per processor; F, B, W of a layer fill the period together, and its F sits at offset 0, so a
    # forward hop lands in the next period and so does a backward hop: delay(l) = 2 * (layers after l).
    g = chain_graph([(1000, 1500, 500)] * layers, edge_bytes=0)
    c = Cluster.homogeneous(layers, interconnect=Interconnect(link_latency_cycles=0))
    s = generate("layerpipe", g, c)
    validate(s, g, c)
    assert s.period_cycles == 3000
    assert s.gradient_delays == tuple(2 * (layers - 1 - layer) for layer in range(layers))
