"""Periodic slots that wrap past the period end (docs/design.md section 4.2): the in-period pieces by hand, a
hand-made schedule replayed cycle by cycle, and over a grid of built-in networks the schedules of the periodic
baselines with every processor's cyclic order cut elsewhere (tests/sched_graphs.rotated): valid, replayed at
their claimed period with no late slot and with their delays, through schedule files and back, the trainer's
counted weight versions equal to their delays, and a wrapped tail over the period's first slot rejected by name."""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import pytest
import torch
from sched_graphs import graphs, rotated, straddle
from train_nets import TinySNN

from hwmodels import Cluster, Interconnect
from hwmodels.config import load_cluster
from schedules import generate, validate
from schedules.colocate import colocate
from schedules.common import assign_lags, link_queueing_cycles, make_schedule
from schedules.deadline import Deadline
from schedules.split import split_schedule
from spikepipe.ir import (
    Dependency,
    LayerSpec,
    Schedule,
    ScheduleError,
    Slot,
    Task,
    TaskGraph,
    TaskKind,
    chain_graph,
    task_id,
)
from spikepipe.schedule_file import from_data, parse_text, to_data, to_text
from spikepipe.sim import SimulationError, simulate
from spikepipe.train.optim import OptimConfig
from spikepipe.train.pipelined import ExactPipeline
from spikepipe.workload import load_workload

FREE = Interconnect(link_latency_cycles=0)


# ------------------------------------------------------------------ the pieces, by hand

@pytest.mark.parametrize(("start", "dur", "period", "pieces"), [
    (10, 30, 90, ((10, 40),)),
    (60, 30, 90, ((60, 90),)),  # ends exactly at the period end: no wrap
    (70, 30, 90, ((70, 90), (0, 10))),
    (89, 90, 90, ((0, 90),)),  # as long as the period: fills it
    (0, 0, 90, ((0, 0),)),
])
def test_pieces_by_hand(start, dur, period, pieces):
    sl = Slot("F0", 0, start, dur)
    assert sl.pieces(period) == pieces
    assert sl.wraps(period) == (start + dur > period)
    assert sum(b - a for a, b in sl.pieces(period)) == min(dur, period)


# ------------------------------------------------------------------ one processor, by hand

def one_layer(f_start: int) -> tuple[Schedule, TaskGraph, Cluster]:
    """F0, B0, W0 of 30 cycles each on one processor, period 90, the cycle cut inside F0: F0 [f, f+30) lag 0
    ends 30 - (90 - f) cycles into the next period, where B0 (lag 1) starts at 10 and W0 at 40."""
    g = chain_graph([(30, 30, 30)])
    c = Cluster.homogeneous(1, interconnect=FREE)
    slots = [Slot("F0", 0, f_start, 30), Slot("B0", 0, 10, 30, lag=1), Slot("W0", 0, 40, 30, lag=1)]
    return make_schedule("hand", "periodic", g, c, slots, 90), g, c


def test_a_wrapping_slot_then_the_next_periods_first_slot_replay_at_the_claimed_period():
    s, g, c = one_layer(70)
    assert s.slot("F0").wraps(90) and s.slot("F0").pieces(90) == ((70, 90), (0, 10))
    validate(s, g, c)
    # F0(n) reads at 90n + 70; W0(n) ends at 90(n + 1) + 70, exactly when F0(n + 1) reads (visible): delay 0
    assert s.gradient_delays == (0,)
    r = simulate(s, c, graph=g, iterations=12, strict=True)
    assert r.simulated_period_cycles == 90 and r.late_slots == 0 and r.gradient_delays == (0,)
    start = {(x.slot, x.minibatch): x.start_cycles for x in r.slot_records}
    end = {(x.slot, x.minibatch): x.end_cycles for x in r.slot_records}
    for n in range(12):
        assert start[("F0", n)] == 90 * n + 70 and end[("F0", n)] == 90 * n + 100
        assert start[("B0", n)] == end[("F0", n)]  # next period's first slot, at the wrapped slot's end
        assert start[("W0", n)] == 90 * n + 130


def test_a_wrapped_tail_over_the_first_slot_is_rejected_and_replays_late():
    s, g, c = one_layer(75)  # tail [0, 15) runs into B0 at 10
    with pytest.raises(ScheduleError) as exc:
        validate(s, g, c)
    first = str(exc.value).splitlines()[0]
    assert "at once" in first and "F0 [75, 105) (wrapping: [0, 15) of the next period)" in first
    assert "marked '!': F0" in str(exc.value)
    with pytest.raises(SimulationError):
        simulate(s, c, graph=g, iterations=6, strict=True)


def test_link_queue_behind_a_wrapped_producer():
    # A ends at 1050 (50 cycles into the next period) and holds link 0->1 for 100 cycles; B's transfer,
    # requested at 60 of every period, queues behind it for 90 cycles
    slots = [Slot("F0", 0, 950, 100), Slot("F1", 0, 50, 10), Slot("F2", 1, 500, 10), Slot("F3", 1, 600, 10)]
    deps = [Dependency("F0", "F2", 400), Dependency("F1", "F3", 400)]
    c = Cluster.homogeneous(2, interconnect=Interconnect(4.0, 0))
    assert link_queueing_cycles(slots, deps, 1000, c) == {("F1", "F3"): 90}
    # F2's input arrives at 1150 (lag 1, offset 150 <= 500); F3's at 60 + 90 + 100 = 250 <= 600
    assert {s.task: s.lag for s in assign_lags(slots, deps, 1000, c)} == {"F0": 0, "F1": 0, "F2": 1, "F3": 0}


# ------------------------------------------------------------------ built-in networks, cuts moved

NETWORKS = ("snn-cnn", "vgg11-28", "vgg11", "resnet18")


@cache
def _case(net: str, p: int, base: str) -> tuple[Schedule, TaskGraph, Cluster]:
    c = load_cluster(None, processors=p)
    g = load_workload(net, processor=c.processors[0])
    return generate(base, g, c), g, c


def _rotate_all(s: Schedule, g: TaskGraph, c: Cluster, which: float, every: bool) -> Schedule:
    procs = sorted({sl.processor for sl in s.slots if sl.duration_cycles > 1})
    return rotated(s, g, c, {q: straddle(s, q, which) for q in (procs if every else procs[:1])})


GRID = [(net, p, base, which, every) for net in NETWORKS for p in (2, 4) for base in ("pipedream", "layerpipe")
        for which, every in ((1.0, False), (0.0, True), (1.0, True))]


@pytest.mark.parametrize(("net", "p", "base", "which", "every"), GRID)
def test_rotated_schedules_are_valid_and_replay_at_their_period(net, p, base, which, every):
    s0, g, c = _case(net, p, base)
    s = _rotate_all(s0, g, c, which, every)
    wrapping = [sl for sl in s.slots if sl.wraps(s.period_cycles)]
    assert len(wrapping) == (len({sl.processor for sl in s0.slots}) if every else 1)
    validate(s, g, c)
    assert s.period_cycles == s0.period_cycles
    r = simulate(s, c, graph=g, strict=True)
    assert r.simulated_period_cycles == s.period_cycles and r.late_slots == 0
    assert r.gradient_delays == s.gradient_delays
    # the schedule file, JSON and the compact text form, loads back to the same schedule (validated on load)
    assert from_data(to_data(s, g, c), g, c).slots == s.slots
    text = from_data(parse_text(to_text(s, g)), g, c)
    assert text.slots == s.slots and text.gradient_delays == s.gradient_delays


def test_the_grid_draws_a_wrapped_tail_at_the_row_start():
    s0, g, c = _case("vgg11-28", 2, "layerpipe")
    s = _rotate_all(s0, g, c, 1.0, False)
    w = next(sl for sl in s.slots if sl.wraps(s.period_cycles))
    lines = s.grid(mark=w.id, width=100).splitlines()
    row = lines[1 + w.processor]
    cells = row[row.index("|") + 1:row.rindex("|")]
    tail = (w.end_cycles - s.period_cycles) * 100 // s.period_cycles
    assert cells.startswith("!" * max(1, tail)) and cells.endswith("!")
    assert lines[-1] == f"marked '!': {w.id}"


@pytest.mark.parametrize(("net", "p", "base"), [("vgg11-28", 4, "pipedream"), ("resnet18", 2, "layerpipe")])
def test_a_wrapped_tail_over_the_periods_first_slot_is_rejected_by_name(net, p, base):
    s0, g, c = _case(net, p, base)
    s = _rotate_all(s0, g, c, 1.0, False)
    validate(s, g, c)
    w = next(sl for sl in s.slots if sl.wraps(s.period_cycles))
    first = min((sl for sl in s.slots if sl.processor == w.processor and sl is not w), key=lambda x: x.start_cycles)
    # push w later until its tail runs one cycle into the first slot of the period (its head only shrinks)
    bad = replace(s, slots=tuple(replace(x, start_cycles=s.period_cycles - w.duration_cycles + first.start_cycles
                                         + 1) if x is w else x for x in s.slots))
    with pytest.raises(ScheduleError) as exc:
        validate(bad, g, c)
    head = str(exc.value).splitlines()[0]
    assert "at once" in head and w.id in head and first.id in head and "wrapping" in head
    assert f"marked '!': {w.id}" in str(exc.value)


@pytest.mark.parametrize("base", ["layerpipe", "pipedream"])
@pytest.mark.parametrize("p", [2, 3])
@pytest.mark.parametrize("which", [0.0, 1.0])
def test_trainer_counts_the_delays_of_a_wrapping_schedule(base, p, which):
    g = chain_graph([(3000 + 500 * i, 2500, 2000 + 300 * i) for i in range(3)], edge_bytes=256, batch=6)
    c = load_cluster(None, processors=p)
    s0 = generate(base, g, c)
    s = rotated(s0, g, c, {q: straddle(s0, q, which) for q in range(p)})
    assert any(sl.wraps(s.period_cycles) for sl in s.slots)
    validate(s, g, c)
    n = 3 * s.max_lag + 4
    gen = torch.Generator().manual_seed(1)
    data = [(torch.rand(4, 6, 8, generator=gen) * 1.5, torch.randint(0, 4, (6,), generator=gen)) for _ in range(n)]
    pipe = ExactPipeline(TinySNN(), OptimConfig(name="sgd", lr=0.05), s, total_steps=n)
    pipe.run_epoch(lambda i: data[i], n)
    # the versions counted while training (not the delay formula) equal the schedule's delays
    assert pipe.measured_delays == s.gradient_delays
    pipe.check_delays()


# ------------------------------------------------------------------ the communication tie-break

def _two_layers() -> TaskGraph:
    tasks = [Task(task_id(k, layer), layer, k, cycles=1000) for layer in range(2) for k in TaskKind]
    edges = [("F0", "F1", 512), ("F1", "B1", 0), ("B1", "B0", 512), ("B0", "W0", 65536), ("B1", "W1", 0)]
    specs = [LayerSpec(i, f"l{i}", "linear", (1,), (1,)) for i in range(2)]
    return TaskGraph(specs, tasks, edges, batch=1, timesteps=1, name="two")


def test_colocate_does_not_move_a_slot_over_a_wrapped_tail():
    # processor 1: W0's tail [0, 500), F1 [1000, 2000), B1 [2000, 3000), W1 [3000, 4000), W0 [5500, 6000); the
    # gap [0, 1000) is only [500, 1000) free, too short for B0, which must go to [4000, 5500) to join W0
    g, c = _two_layers(), Cluster.homogeneous(2)
    slots = [Slot("F0", 0, 0, 1000), Slot("B0", 0, 1000, 1000), Slot("W0", 1, 5500, 1000),
             Slot("F1", 1, 1000, 1000), Slot("B1", 1, 2000, 1000), Slot("W1", 1, 3000, 1000)]
    s = make_schedule("spikepipe", "periodic", g, c, slots, 6000, derive_lags=True)
    validate(s, g, c)
    out = colocate(g, c, s, Deadline.within(1e9)).schedule
    validate(out, g, c)
    b0 = out.slot("B0")
    assert b0.processor == 1 and 4000 <= b0.start_cycles <= 4500
    assert out.slot("W0").wraps(6000)


# ------------------------------------------------------------------ the command line, end to end

@pytest.mark.parametrize("suffix", [".json", ".txt"])
def test_simulate_and_train_take_a_wrapping_schedule_file(suffix, tmp_path, capsys):
    import json

    from spikepipe.cli import main
    from spikepipe.schedule_file import write_schedule
    from spikepipe.sim.evaluate import load_graph

    c = load_cluster(None, processors=2)  # the command line's default hardware
    g = load_graph("snn-mlp", c, batch=16, timesteps=2)
    s0 = generate("pipedream", g, c)
    s = rotated(s0, g, c, {q: straddle(s0, q) for q in range(2)})
    assert sum(sl.wraps(s.period_cycles) for sl in s.slots) == 2 and any(s.gradient_delays)
    path = write_schedule(tmp_path / f"s{suffix}", s, g, c)
    common = ["--network", "snn-mlp", "-P", "2", "--batch", "16", "--timesteps", "2"]
    assert main(["simulate", *common, "--schedule-file", str(path), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["results"][0]
    assert row["period_cycles"] == s.period_cycles == row["simulated_period_cycles"]
    assert row["late_slots"] == 0 and tuple(row["gradient_delays"]) == s.gradient_delays
    assert main(["train", "--network", "snn-mlp", "--processors", "2", "--batch", "16", "--timesteps", "2",
                 "--dataset", "digits", "--epochs", "1", "--limit-train", "96", "--no-progress",
                 "--schedule-file", str(path), "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert tuple(run["gradient_delays"]) == tuple(run["measured_delays"]) == s.gradient_delays


@pytest.mark.parametrize("procs", [2, 4])
@pytest.mark.parametrize("graph_name", sorted(graphs()))
def test_rotated_split_schedules_replay_with_their_broadcasts(graph_name, procs):
    g, c = graphs()[graph_name], Cluster.homogeneous(procs)
    s0 = split_schedule(g, c, evaluations=100)
    s = rotated(s0, g, c, {q: straddle(s0, q) for q in {sl.processor for sl in s0.slots if sl.duration_cycles > 1}})
    assert any(sl.wraps(s.period_cycles) for sl in s.slots)
    validate(s, g, c)
    r = simulate(s, c, graph=g, strict=True)
    assert r.simulated_period_cycles == s.period_cycles and r.late_slots == 0
    assert r.gradient_delays == s.gradient_delays
    assert from_data(parse_text(to_text(s, g)), g, c).slots == s.slots


@pytest.mark.parametrize(("net", "p", "base"), [("vgg11-28", 4, "pipedream"), ("resnet18", 2, "layerpipe"),
                                                ("snn-cnn", 4, "layerpipe")])
@pytest.mark.parametrize("stretch", [1.01, 1.3])
def test_a_wrapping_schedule_stays_valid_when_its_period_is_stretched(net, p, base, stretch):
    # what the frontier and period_slack rely on (docs/design.md section 4.2): at most one slot of a processor
    # wraps, and at a longer period its tail only shrinks (or the wrap goes away)
    s0, g, c = _case(net, p, base)
    s = _rotate_all(s0, g, c, 1.0, True)
    period = int(s.period_cycles * stretch)
    longer = make_schedule("stretched", "periodic", g, c, [replace(x, lag=0) for x in s.slots], period,
                           derive_lags=True)
    validate(longer, g, c)
    r = simulate(longer, c, graph=g, strict=True)
    assert r.simulated_period_cycles == period and r.late_slots == 0 and r.gradient_delays == longer.gradient_delays


@pytest.mark.parametrize(("net", "p", "base"), [("vgg11-28", 4, "layerpipe"), ("resnet18", 2, "pipedream")])
def test_the_gantt_of_one_period_shows_every_processors_work_wrapped_tails_included(net, p, base):
    pytest.importorskip("matplotlib")
    from spikepipe.plots import gantt_figure

    s0, g, c = _case(net, p, base)
    s = _rotate_all(s0, g, c, 1.0, True)
    r = simulate(s, c, graph=g)
    assert r.late_slots == 0
    ax = gantt_figure(s, r, network=net).axes[0]
    drawn = [0.0] * p
    for bar in ax.patches:
        row = round(bar.get_y() + bar.get_height() / 2)
        if row < p:  # processor rows; the last row is the links
            drawn[row] += bar.get_width()
    # one steady period of length `period`: each processor is busy for all its slots' durations, the tail of the
    # slot that wrapped in from the period before included
    assert drawn == pytest.approx([sum(x.duration_cycles for x in s.slots if x.processor == q) for q in range(p)])


@pytest.mark.parametrize(("net", "p", "base"), [("snn-cnn", 4, "pipedream"), ("vgg11-28", 4, "pipedream"),
                                                ("vgg11", 4, "layerpipe")])
@pytest.mark.parametrize("which", [0.0, 1.0])
def test_the_delay_lower_bounds_hold_for_wrapping_schedules(net, p, base, which):
    # the packing bound models cyclic no-overlap (schedules/delay_bounds.py), so it must not assume that every
    # processor's order starts at phase 0: a wrapping schedule of the same assignment never beats it
    from schedules.delay_bounds import assignment_delay_bounds

    s0, g, c = _case(net, p, base)
    s = _rotate_all(s0, g, c, which, True)
    bounds = assignment_delay_bounds(g, c, s.period_cycles, {x.task: x.processor for x in s.slots})
    assert all(b <= d for b, d in zip(bounds, s.gradient_delays, strict=True)), (bounds, s.gradient_delays)
