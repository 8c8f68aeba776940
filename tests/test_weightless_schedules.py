"""What consumes graphs with layers without weights (docs/design.md section 4.1): every generator schedules them
validly and its replay equals its claim, schedule files round-trip, the memory model stashes nothing for them, the
exact trainer trains such a model with the schedule's delays (0 for a layer without weights) and equals plain
autograd at zero delay, and the method transforms, the frontier and the distributed plan keep them."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest
import torch
from torch import nn
from weightless_nets import BATCH, CLASSES, GRAPHS, T, TinyAttention, W

from hwmodels import Cluster
from schedules import generate, names, validate
from schedules.certificate import certify
from spikepipe.frontend import trace
from spikepipe.ir import Slot, TaskGraph
from spikepipe.schedule_file import ScheduleFileError, from_data, load_schedule, to_data, write_schedule
from spikepipe.sim import simulate

OPTIONS = {"spikepipe": {"time_limit_s": 0.5, "workers": 1}}




@pytest.mark.parametrize("procs", [1, 2, 3, 4])
@pytest.mark.parametrize("graph_name", sorted(GRAPHS))
@pytest.mark.parametrize("name", [*names(), "spikepipe-split"])
def test_every_generator_schedules_layers_without_w(name: str, graph_name: str, procs: int) -> None:
    g, c = GRAPHS[graph_name], Cluster.homogeneous(procs)
    opts = {**OPTIONS["spikepipe"], "split": True} if name == "spikepipe-split" else OPTIONS.get(name, {})
    s = generate(name.removesuffix("-split"), g, c, **opts)
    validate(s, g, c)
    tasks = {sl.task for sl in s.slots}
    assert tasks == {task.id for task in g.tasks}  # every task, and no W for a layer without weights
    assert len(s.gradient_delays) == g.num_layers
    assert all(s.gradient_delays[i] == 0 for i in g.weightless_layers)
    assert not any(col.layer in g.weightless_layers for col in s.collectives)  # nothing to all-reduce
    r = simulate(s, c, graph=g, strict=True, link_contention=False)
    assert r.simulated_period_cycles == s.period_cycles and r.late_slots == 0
    assert r.gradient_delays == s.gradient_delays
    cert = certify(s, g, c)
    assert 0 <= cert.delay_lower_bound <= sum(s.gradient_delays)


@pytest.mark.parametrize("graph_name", sorted(GRAPHS))
@pytest.mark.parametrize("name", ["spikepipe", "pipedream", "gpipe", "data-parallel"])
def test_schedule_file_of_a_graph_without_some_w_round_trips(name: str, graph_name: str, tmp_path) -> None:
    g, c = GRAPHS[graph_name], Cluster.homogeneous(3)
    s = generate(name, g, c, **OPTIONS.get(name, {}))
    back = load_schedule(write_schedule(tmp_path / "s.json", s, g, c), g, c)
    assert sorted(back.slots, key=lambda x: x.id) == sorted(s.slots, key=lambda x: x.id)
    assert back.gradient_delays == s.gradient_delays and back.period_cycles == s.period_cycles
    data = to_data(s, g, c)
    lone = g.weightless_layers[0]
    bad = json.loads(json.dumps(data))  # a W slot for a layer without weights names a task the graph lacks
    bad["slots"].append({**bad["slots"][0], "task": f"W{lone}", "start_cycles": 0})
    with pytest.raises(ScheduleFileError, match=f"W{lone}"):
        from_data(bad, g, c)
    weighted = next(i for i in range(g.num_layers) if g.has_task(i, W))
    missing = {**data, "slots": [x for x in data["slots"] if x["task"] != f"W{weighted}"]}
    with pytest.raises(ScheduleFileError, match=f"W{weighted}"):
        from_data(missing, g, c)


def test_a_delay_stated_for_a_layer_without_weights_is_rejected() -> None:
    from spikepipe.ir import ScheduleError

    g, c = GRAPHS["chain"], Cluster.homogeneous(2)
    s = generate("pipedream", g, c)
    lone = g.weightless_layers[0]
    wrong = replace(s, gradient_delays=tuple(d + (i == lone) for i, d in enumerate(s.gradient_delays)))
    with pytest.raises(ScheduleError, match=f"first at layer {lone}"):
        validate(wrong, g, c)


def test_stashing_and_activations_of_a_layer_without_weights() -> None:
    """Weight stashing keeps no version of a layer without weights; its activations live from F's end to B's end.
    Oracle: the same intervals swept by hand from the slots' absolute times (a strict replay runs on time)."""
    g, c = GRAPHS["tiny-attention"], Cluster.homogeneous(3)
    s = generate("pipedream", g, c)
    r = simulate(s, c, graph=g, strict=True, link_contention=False, iterations=12)
    per = s.period_cycles
    first = {}
    for sl in s.slots:
        first.setdefault(sl.task, sl)
    events = []
    for layer in range(g.num_layers):
        f = first[f"F{layer}"]
        last = first[f"W{layer}"] if g.has_task(layer, W) else first[f"B{layer}"]
        nbytes = g.task(f"F{layer}").activation_bytes
        for n in range(12):
            events += [((n + f.lag) * per + f.end_cycles, nbytes, f.processor),
                       ((n + last.lag) * per + last.end_cycles, -nbytes, f.processor)]
    cur, peak = [0] * c.size, [0] * c.size
    for _, delta, p in sorted(events):
        cur[p] += delta
        peak[p] = max(peak[p], cur[p])
    assert max(r.peak_activation_bytes) == max(peak)
    holders = {sl.processor for sl in s.slots if sl.layer in g.weightless_layers}
    alone = [p for p in holders if all(sl.layer in g.weightless_layers for sl in s.slots if sl.processor == p)]
    for p in alone:  # a processor with only weightless layers holds no weights and stashes none
        assert r.weight_bytes[p] == 0 and r.peak_stash_bytes[p] == 0



# ---------------------------------------------------------------- the trainer


def _batches(n: int, seed: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.rand(T, BATCH, 8, 4, generator=gen), torch.randint(0, CLASSES, (BATCH,), generator=gen))
            for _ in range(n)]


def _model_fn(model: nn.Module):
    from spikepipe.train.model import ModelFn

    ex = torch.rand(T, 2, 8, 4)
    return ModelFn(model, ex, trace(model, ex))


@pytest.mark.parametrize(("name", "procs"), [("spikepipe", 2), ("spikepipe", 3), ("pipedream", 3),
                                             ("layerpipe", 4), ("list", 2)])
def test_trainer_runs_the_schedule_with_no_update_for_layers_without_weights(name: str, procs: int) -> None:
    from spikepipe.train.optim import OptimConfig
    from spikepipe.train.pipelined import ExactPipeline, layer_timings

    torch.manual_seed(0)
    g, c = GRAPHS["tiny-attention"], Cluster.homogeneous(procs)
    s = generate(name, g, c, **OPTIONS.get(name, {}))
    fn = _model_fn(TinyAttention())
    assert fn.num_layers == g.num_layers
    assert [i for i, names_ in enumerate(fn.map.params) if not names_] == list(g.weightless_layers)
    assert [not t.has_update for t in layer_timings(s, fn.num_layers)] == [not g.has_task(i, W)
                                                                          for i in range(g.num_layers)]
    n = 2 * s.max_lag + 4
    data = _batches(n)
    tr = ExactPipeline(fn, OptimConfig(name="adam", lr=5e-3), s, total_steps=n)
    tr.run_epoch(lambda i: data[i], n)
    tr.check_delays()
    assert tr.measured_delays == s.gradient_delays == simulate(s, c, graph=g).gradient_delays
    assert all(tr.measured_delays[i] == 0 and tr.versions[i] == 0 for i in g.weightless_layers)
    assert all(tr.versions[i] == n for i in range(g.num_layers) if g.has_task(i, W))
    start = fn.initial_weights()
    assert any(not torch.equal(tr.weights[i][k], start[i][k]) for i in range(g.num_layers) for k in start[i])


def test_a_schedule_without_w_for_a_layer_with_weights_is_refused() -> None:
    from spikepipe.train.optim import OptimConfig
    from spikepipe.train.pipelined import ExactPipeline, TrainerError

    g = GRAPHS["tiny-attention"]
    s = generate("pipedream", g, Cluster.homogeneous(2))
    weighted = next(i for i in range(g.num_layers) if g.has_task(i, W))
    broken = replace(s, slots=tuple(x for x in s.slots if x.task != f"W{weighted}"))
    with pytest.raises(TrainerError, match=f"no W slot for layer {weighted}"):
        ExactPipeline(_model_fn(TinyAttention()), OptimConfig(name="sgd", lr=0.1), broken, total_steps=1)


def _lag0(graph: TaskGraph):
    """Everything on one processor in one period, in the training order, all lags zero: no delay anywhere."""
    from schedules.common import training_order
    from spikepipe.ir import Schedule, slot_lag_delays

    slots = [Slot(t, 0, 10 * k, 10) for k, t in enumerate(training_order(graph))]
    period = 10 * len(slots)
    return Schedule("lag0", "periodic", 1, period, tuple(slots), (), slot_lag_delays(slots, graph.num_layers, period))


@pytest.mark.parametrize("trainer", ["bptt", "lag0"])
def test_zero_delay_on_an_attention_model_equals_torch_autograd(trainer: str) -> None:
    from spikepipe.train.bptt import PlainBPTT
    from spikepipe.train.model import reset_state
    from spikepipe.train.optim import OptimConfig
    from spikepipe.train.pipelined import ExactPipeline

    torch.manual_seed(2)
    model = TinyAttention()
    ref = copy.deepcopy(model)
    fn = _model_fn(model)
    cfg = OptimConfig(name="sgd", lr=0.05, momentum=0.9, schedule="constant")
    sched = _lag0(GRAPHS["tiny-attention"])
    assert sched.gradient_delays == (0,) * fn.num_layers
    tr = PlainBPTT(fn, cfg, total_steps=4) if trainer == "bptt" else ExactPipeline(fn, cfg, sched, total_steps=4)
    data = _batches(4, seed=7)
    stats = tr.run_epoch(lambda i: data[i], 4)
    opt = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9)
    want = []
    for x, y in data:
        reset_state(ref)
        loss = nn.functional.cross_entropy(ref(x).mean(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        want.append(float(loss.detach()))
    assert stats.losses == pytest.approx(want, rel=1e-5, abs=1e-6)
    if trainer == "lag0":
        assert tr.measured_delays == (0,) * fn.num_layers
    fn.load_into(tr.weights)
    theirs = ref.state_dict()
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, theirs[k], rtol=1e-5, atol=1e-6, msg=k)


# ---------------------------------------------------------------- methods, frontier, distributed plan


METHOD_PARAMS = {"bptt": {}, "checkpoint": {"every": 2}, "skipper": {"every": 2, "skip": 1},
                 "ttl": {"window": 2, "blocks": (5,)},
                 "local": {"blocks": (5,)}, "bloctrain": {"blocks": (5,), "hard_fraction": 0.5}}


@pytest.mark.parametrize("method", sorted(METHOD_PARAMS))
def test_method_transforms_keep_layers_without_w(method: str) -> None:
    from spikepipe.methods.transforms import transform

    g, c = GRAPHS["tiny-attention"], Cluster.homogeneous(3)
    h = transform(g, method, **METHOD_PARAMS[method])
    h.validate()
    local = method in ("local", "ttl", "bloctrain")
    # blocks [0, 5) and [5, 9): the first ends at layer 4, a product, whose local classifier brings weights and W
    gained = (4,) if local else ()
    assert h.weightless_layers == tuple(i for i in g.weightless_layers if i not in gained)
    for i in gained:
        w = h.task(f"W{i}")
        assert len(w.gemms) == 1 and w.gemms[0].batch_dim == "k" and ("B4", "W4") in {(u, v) for u, v, _ in h.edges}
    if local:  # the second block's first layer (a product of layers 4 and 3) sends neither operand's gradient back
        assert len(g.task("B5").gemms) == 2 and not h.task("B5").gemms
    for name in ("pipedream", "gpipe", "spikepipe"):
        s = generate(name, h, c, **OPTIONS.get(name, {}))
        validate(s, h, c)
        r = simulate(s, c, graph=h, strict=True, link_contention=False)
        assert r.simulated_period_cycles == s.period_cycles and r.gradient_delays == s.gradient_delays
        assert all(s.gradient_delays[i] == 0 for i in h.weightless_layers)


def test_bloctrain_phases_of_a_graph_without_some_w() -> None:
    from spikepipe.methods.phases import phase_graphs

    g = GRAPHS["tiny-attention"]
    phases = phase_graphs(g, blocks=(5,), hard_fraction=0.5)
    assert [p.num_layers for p in phases] == [5, 9]
    first, second = phases
    assert first.weightless_layers == () and len(first.task("W4").gemms) == 1  # the local classifier's weights
    assert second.weightless_layers == (5, 6)  # layer 4 carries block 0's hard-class detector
    c = Cluster.homogeneous(2)
    for p in phases:
        s = generate("pipedream", p, c)
        validate(s, p, c)


def test_frontier_of_a_graph_without_some_w() -> None:
    from spikepipe.frontier import frontier

    g, c = GRAPHS["attention-dag"], Cluster.homogeneous(3)
    fr = frontier(g, c, slacks=(0.0, 0.2), options={"deterministic_time_s": 0.2, "workers": 1,
                                                            "search_evaluations": 300})
    assert fr.points
    for p in fr.points:
        assert len(p.gradient_delays) == g.num_layers and all(p.gradient_delays[i] == 0 for i in g.weightless_layers)
        assert p.total_delay == sum(p.gradient_delays)


@pytest.mark.parametrize("name", ["pipedream", "spikepipe", "gpipe", "1f1b", "data-parallel"])
def test_distributed_plan_has_no_update_for_layers_without_weights(name: str) -> None:
    from spikepipe.distributed.plan import block_producers, build_plan

    g, c = GRAPHS["chain"], Cluster.homogeneous(3)
    s = generate(name, g, c, **OPTIONS.get(name, {}))
    sources, residuals = tuple(range(-1, g.num_layers - 1)), (None,) * g.num_layers
    n = 2 * s.max_lag + 4
    plan = build_plan(s, block_producers(sources, residuals), n, stash=True)
    ran = {(e.kind, e.layer) for e in plan.events}
    assert ran - {("U", i) for i in range(g.num_layers)} == {(sl.kind.value, sl.layer) for sl in s.slots}
    assert {i for kind, i in ran if kind == "U"} == {i for i in range(g.num_layers) if g.has_task(i, W)}
    if s.kind == "periodic":  # the versions F reads give the schedule's delays for the layers with weights
        delays = [0] * g.num_layers
        for i, e in enumerate(plan.events):
            if e.kind == "F" and g.has_task(e.layer, W) and e.n >= s.max_lag:
                delays[e.layer] = max(delays[e.layer], e.n - plan.reads[i])
        assert tuple(delays) == s.gradient_delays


