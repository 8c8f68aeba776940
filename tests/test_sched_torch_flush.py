"""Flush baselines at their published strength: never slower than torch.distributed.pipelining's schedule of the
same name (its own pipeline_order, replayed with unit costs), and ZB-H1 at its closed form on equal stages."""

import pytest
from torch_pipelining import pipeline_order, unit_makespan

from hwmodels import Cluster, Interconnect
from schedules import generate, validate
from spikepipe.ir import chain_graph

UNIT = 100  # cycles of one F, B or W of one chunk for one micro-batch

# (our name, torch's class, chunks per processor in torch's order)
SAME_NAME = [
    ("gpipe", "ScheduleGPipe", 1),
    ("1f1b", "Schedule1F1B", 1),
    ("zero-bubble", "ScheduleInterleavedZeroBubble", 1),
    ("interleaved-1f1b", "ScheduleInterleaved1F1B", 2),
    ("interleaved-1f1b", "ScheduleInterleaved1F1B", 3),
    ("zb-v", "ScheduleZBVZeroBubble", 2),
]


def _free_cluster(p: int) -> Cluster:
    return Cluster.homogeneous(p, interconnect=Interconnect(link_latency_cycles=0))


def _equal_chain(layers: int, m: int, f: int = UNIT, b: int = UNIT, w: int = UNIT):
    # whole-minibatch cycles m times the micro-batch cost, so a 1/m slot costs exactly f, b, w
    return chain_graph([(f * m, b * m, w * m)] * layers, batch=64)


@pytest.mark.parametrize("p", [2, 3, 4, 8])
@pytest.mark.parametrize("mult", [1, 2, 4])
@pytest.mark.parametrize(("ours", "theirs", "v"), SAME_NAME)
def test_never_slower_than_torch_of_the_same_name(ours, theirs, v, p, mult):
    m = mult * p
    torch_units = unit_makespan(pipeline_order(theirs, p, m, v))
    g, c = _equal_chain(p * v, m), _free_cluster(p)
    s = generate(ours, g, c, microbatches=m)
    validate(s, g, c)
    assert s.period_cycles <= torch_units * UNIT, (s.period_cycles / UNIT, torch_units)


@pytest.mark.parametrize("p", [2, 3, 4, 8])
@pytest.mark.parametrize("m", [1, 2, 4, 8, 16])
def test_zb_h1_reaches_its_closed_form(p, m):
    """Qi et al.'s ZB-H1 on p equal stages: m(F+B+W) + (p-1)(F+B-W) when m >= p; torch's order agrees."""
    g, c = _equal_chain(p, m), _free_cluster(p)
    s = generate("zero-bubble", g, c, microbatches=m)
    validate(s, g, c)
    one_f_one_b = generate("1f1b", g, c, microbatches=m).period_cycles
    if m >= p:
        assert s.period_cycles == m * 3 * UNIT + (p - 1) * UNIT
    if m >= p and m % max(1, m // p) == 0:  # torch needs m to be a multiple of its rounds, m // p
        assert s.period_cycles == unit_makespan(pipeline_order("ScheduleInterleavedZeroBubble", p, m)) * UNIT
    assert s.period_cycles <= one_f_one_b
    if p > 1 and m > 1:
        assert s.period_cycles < one_f_one_b  # the W passes really fill the cool-down


@pytest.mark.parametrize(("f", "b", "w"), [(100, 200, 100), (50, 100, 150), (300, 100, 20)])
@pytest.mark.parametrize("p", [2, 4])
def test_zero_bubble_split_never_loses_to_1f1b_on_unequal_passes(f, b, w, p):
    m = 2 * p
    g, c = _equal_chain(p, m, f, b, w), _free_cluster(p)
    zb = generate("zero-bubble", g, c, microbatches=m)
    assert zb.period_cycles <= generate("1f1b", g, c, microbatches=m).period_cycles


@pytest.mark.parametrize("layers", [4, 8, 12, 16])
def test_interleaving_depth_is_chosen_per_case(layers):
    """v runs from 1 to what the layer count allows; the pick is the best of all and never loses to 1F1B."""
    p, m = 4, 8
    g, c = _equal_chain(layers, m), _free_cluster(p)
    s = generate("interleaved-1f1b", g, c, microbatches=m)
    validate(s, g, c)
    assert s.info["virtual_stages_tried"] == list(range(1, layers // p + 1))
    fixed = {v: generate("interleaved-1f1b", g, c, microbatches=m, virtual_stages=v).period_cycles
             for v in s.info["virtual_stages_tried"]}
    assert s.period_cycles == min(fixed.values())
    assert s.period_cycles <= generate("1f1b", g, c, microbatches=m).period_cycles
    if layers >= 2 * p:
        assert s.info["virtual_stages"] > 1  # equal layers: deeper interleaving shrinks the bubble


def test_zb_v_puts_two_chunks_per_processor_in_a_v():
    p, m = 4, 8
    g, c = _equal_chain(2 * p, m), _free_cluster(p)
    s = generate("zb-v", g, c, microbatches=m)
    validate(s, g, c)
    proc_of_layer = {sl.layer: sl.processor for sl in s.slots if sl.kind.value == "F"}
    assert [proc_of_layer[layer] for layer in range(2 * p)] == [0, 1, 2, 3, 3, 2, 1, 0]
    # fewer layers than 2P: a V on fewer processors; one layer: no V to make, ZB-H1 instead (and said so)
    half = generate("zb-v", _equal_chain(p, m), c, microbatches=m)
    validate(half, _equal_chain(p, m), c)
    assert len({sl.processor for sl in half.slots}) == p // 2 and half.info["virtual_stages"] == 2
    one = generate("zb-v", _equal_chain(1, m), c, microbatches=m)
    assert one.info["virtual_stages"] == 1 and "ZB-H1" in one.info["note"]
