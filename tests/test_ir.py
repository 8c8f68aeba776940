import pytest

from spikepipe.ir import GraphError, Slot, TaskKind, chain_graph, slot_lag_delays


def test_chain_graph_has_all_tasks_and_edges():
    g = chain_graph([(10, 20, 5), (10, 20, 5), (7, 7, 7)])
    assert g.num_layers == 3
    assert len(g.tasks) == 9
    assert ("F0", "F1") in {(u, v) for u, v, _ in g.edges}
    assert ("B1", "B0") in {(u, v) for u, v, _ in g.edges}
    assert ("F2", "B2") in {(u, v) for u, v, _ in g.edges}
    assert g.total_cycles() == 2 * 35 + 21


def test_nonpositive_cost_is_rejected():
    with pytest.raises(GraphError):
        chain_graph([(10, 0, 5)])


@pytest.mark.parametrize("stages", [1, 2, 3, 5, 8])
def test_pipedream_lags_give_p_minus_1_minus_s(stages):
    # Async 1F1B with unit F and B(+W) per stage, period 2: F_s(n) at 2n+s, B_s(n) at 2n+2p-1-s.
    period = 2
    slots = []
    for s in range(stages):
        tf, tb = s, 2 * stages - 1 - s
        slots.append(Slot(f"F{s}", s, tf % period, 1, lag=tf // period))
        slots.append(Slot(f"W{s}", s, tb % period, 1, lag=tb // period))
    assert slot_lag_delays(slots, stages, period) == tuple(stages - 1 - s for s in range(stages))


def test_kind_and_layer_from_slot():
    s = Slot("W12", 3, 0, 5, lag=2, part=1)
    assert s.kind is TaskKind.W and s.layer == 12 and s.id == "W12.p1"


@pytest.mark.parametrize("fraction", [1.0, 0.5, 0.125])
def test_memoised_prices_equal_fresh_ones_per_processor_and_fraction(fraction):
    """TaskGraph.cycles keeps its prices: asked again, on another array or for another slice of the batch, it
    answers what task_cycles computes from the task's work."""
    from hwmodels.config import load_cluster
    from spikepipe.ir.graph import task_cycles
    from spikepipe.workload import load_workload

    small = load_cluster(None, processors=2, array="32x32").processors[0]
    big = load_cluster(None, processors=2, array="128x128").processors[0]
    g = load_workload("vgg11-28", processor=big)
    for _ in range(2):
        for p in (small, big):
            for t in g.topological_order():
                assert g.cycles(t, p, fraction) == task_cycles(g.task(t), p, fraction)
    assert any(g.cycles(t, small, fraction) != g.cycles(t, big, fraction) for t in g.topological_order())


@pytest.mark.parametrize("task,mb,part", [("F0", 0, 0), ("B12", 3, 0), ("W7", 0, 2), ("F3", 1, 1)])
def test_slot_id_kind_layer_are_computed_once_and_change_nothing(task, mb, part):
    """id, kind and layer are cached per Slot: a copy with other fields has its own, and equality, hashing and
    the fields (asdict) are the same whether they were read or not."""
    from dataclasses import asdict, replace

    fresh, read = Slot(task, 1, 5, 9, microbatch=mb, part=part), Slot(task, 1, 5, 9, microbatch=mb, part=part)
    want = task + (f".m{mb}" if mb else "") + (f".p{part}" if part else "")
    assert (read.id, read.kind, read.layer) == (want, TaskKind(task[0]), int(task[1:]))
    assert read == fresh and hash(read) == hash(fresh) and asdict(read) == asdict(fresh)
    other = replace(read, microbatch=mb + 1, task="W" + task[1:])
    assert other.id == "W" + task[1:] + f".m{mb + 1}" + (f".p{part}" if part else "")
    assert other.kind is TaskKind.W
