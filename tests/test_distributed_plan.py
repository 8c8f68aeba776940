"""The distributed plan (no processes): each rank's events are the emulation's global order restricted to it, the
weight versions read give the schedule's delays, and every message is sent before it is received."""

from __future__ import annotations

import pytest

import schedules
from hwmodels.config import load_cluster
from spikepipe import zoo
from spikepipe.distributed.plan import PlanError, block_producers, build_plan
from spikepipe.ir import Schedule, Slot, slot_lag_delays
from spikepipe.train.optim import OptimConfig
from spikepipe.train.pipelined import ExactPipeline
from spikepipe.workload import load_workload

CASES = [(net, sched, p) for net in ("snn-mlp", "snn-cnn")
         for sched in ("pipedream", "spikepipe", "layerpipe", "pipedream-rotated") for p in (2, 4)]


def _schedule(net: str, name: str, p: int) -> Schedule:
    """A generated schedule; NAME-rotated: with every processor's cyclic order cut inside its longest slot, which
    then wraps past the period end (docs/design.md section 4.2)."""
    from sched_graphs import rotated, straddle

    graph, cluster = load_workload(net, batch=16, timesteps=None), load_cluster(None, processors=p)
    base = name.removesuffix("-rotated")
    s = schedules.generate(base, graph, cluster)
    if name.endswith("-rotated"):
        s = rotated(s, graph, cluster, {q: straddle(s, q) for q in {sl.processor for sl in s.slots}})
        assert any(sl.wraps(s.period_cycles) for sl in s.slots)
    return s


def _net(name: str):
    return zoo.build(name, timesteps=None, batch=16, num_classes=10, seed=0)[0]


def _emulation_order(net, schedule: Schedule, n: int) -> list[tuple[str, int, int]]:
    try:  # the trainer's public event order, where it exists
        from spikepipe.train.pipelined import event_order, layer_timings

        evs = event_order(layer_timings(schedule, len(net.blocks)), schedule.period_cycles, n)
        return [(e.kind.value, e.layer, e.minibatch) for e in evs]
    except ImportError:
        trainer = ExactPipeline(net, OptimConfig(), schedule, total_steps=n)
        return [(kind.value, layer, mb) for _, _, layer, mb, kind in trainer._events(n)]


@pytest.mark.parametrize(("net_name", "sched", "p"), CASES)
@pytest.mark.parametrize("stash", [True, False])
def test_periodic_plan_is_the_emulation_order(net_name, sched, p, stash):
    net, s, n = _net(net_name), _schedule(net_name, sched, p), 9
    plan = build_plan(s, block_producers(net.sources, net.residuals), n, stash=stash)
    ours = [(e.kind, e.layer, e.n) for e in plan.events if e.kind != "U"]
    assert ours == _emulation_order(net, s, n)
    # each rank runs exactly the slots the schedule puts on its processor
    for rank, idx in plan.rank_events.items():
        tasks = {(plan.events[i].kind, plan.events[i].layer) for i in idx if plan.events[i].kind != "U"}
        assert tasks == {(sl.kind.value, sl.layer) for sl in s.slots if sl.processor == rank}
    # the versions F reads, counted in the plan, give ir.slot_lag_delays once the pipeline is full
    delays = [0] * len(net.blocks)
    for i, e in enumerate(plan.events):
        if e.kind == "F":
            delays[e.layer] = max(delays[e.layer], e.n - plan.reads[i])
    assert tuple(delays) == slot_lag_delays(s.slots, len(net.blocks), s.period_cycles) == s.gradient_delays
    # messages go between different ranks, from an earlier event to a later one, each received once
    seen = set()
    recv_at = {m: i for i, ms in plan.recvs.items() for m in ms}
    assert sorted(recv_at) == list(range(len(plan.messages)))  # each received exactly once
    for m, msg in enumerate(plan.messages):
        assert msg.src != msg.dst
        assert plan.events[msg.src_event].rank == msg.src and plan.events[msg.dst_event].rank == msg.dst
        # received by its receiver after it was sent and no later than the event that needs it
        assert msg.src_event < recv_at[m] <= msg.dst_event and plan.events[recv_at[m]].rank == msg.dst
        assert m in plan.sends[msg.src_event]
        assert (msg.dst, msg.key) not in seen
        seen.add((msg.dst, msg.key))
    # each pair's messages are received in the order they are sent (NCCL matches by order, not by tag)
    def per_pair(table: dict[int, list[int]]) -> dict[tuple[int, int], list[int]]:
        out: dict[tuple[int, int], list[int]] = {}
        for event in sorted(table):
            for m in table[event]:
                out.setdefault((plan.messages[m].src, plan.messages[m].dst), []).append(m)
        return out

    assert per_pair(plan.sends) == per_pair(plan.recvs)


@pytest.mark.parametrize("sched", ["data-parallel", "1f1b", "gpipe"])
@pytest.mark.parametrize("p", [2, 4])
def test_flush_plan_updates_once_per_minibatch(sched, p):
    net, s = _net("snn-mlp"), _schedule("snn-mlp", sched, p)
    plan = build_plan(s, block_producers(net.sources, net.residuals), 5, stash=True)
    assert plan.chunks == s.microbatches * max(1, len({sl.part for sl in s.slots}))
    for i, e in enumerate(plan.events):
        if e.kind == "F":  # every F of minibatch n reads the weights after the n updates before it
            assert plan.reads[i] == e.n
    ws = {layer: sorted({sl.processor for sl in s.slots if sl.kind.value == "W" and sl.layer == layer})
          for layer in range(len(net.blocks))}
    assert {layer: list(r) for layer, r in plan.w_ranks.items()} == ws


def test_unequal_split_parts_are_refused():
    net, s = _net("snn-mlp"), _schedule("snn-mlp", "pipedream", 2)
    f0 = next(sl for sl in s.slots if sl.task == "F0")
    half = Slot("F0", 1 - f0.processor, f0.start_cycles, f0.duration_cycles, f0.lag, part=1, fraction=0.5)
    split = Schedule(s.name, s.kind, s.processors, s.period_cycles, s.slots + (half,), s.dependencies,
                     s.gradient_delays)
    with pytest.raises(PlanError, match=r"splits F0 into 2 parts of fractions \[1.0, 0.5\]"):
        build_plan(split, block_producers(net.sources, net.residuals), 3, stash=True)


def test_a_read_before_its_producer_is_refused():
    net, s = _net("snn-mlp"), _schedule("snn-mlp", "pipedream", 2)
    # F0 starts at the end of the period, after F1 of the same minibatch: F1 would run before its input exists
    slots = tuple(Slot(sl.task, sl.processor, s.period_cycles - 1, 1, 0) if sl.task == "F0" else sl
                  for sl in s.slots)
    bad = Schedule(s.name, s.kind, s.processors, s.period_cycles, slots, s.dependencies, s.gradient_delays)
    with pytest.raises(PlanError, match="F0 produced its input"):
        build_plan(bad, block_producers(net.sources, net.residuals), 3, stash=True)
