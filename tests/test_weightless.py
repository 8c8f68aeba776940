"""Layers without weights (products of two activations as in spiking self-attention, element-wise products,
concatenations) have an F and a B task and no W task (docs/design.md section 4.1): the vocabulary says so, the cost
model's MACs follow torch's FLOP counter forward and backward, every generator schedules such graphs validly and
its replay equals its claim, schedule files round-trip, and the exact trainer trains such a model with the
schedule's delays (0 for a layer without weights) and equals plain autograd at zero delay."""

from __future__ import annotations

import copy
import json
import random
from dataclasses import replace

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hwmodels import Cluster
from schedules import generate, names, validate
from schedules.certificate import certify
from spikepipe.costs import build_task_graph
from spikepipe.frontend import trace, trace_model
from spikepipe.ir import GraphError, LayerSpec, Slot, Task, TaskGraph, TaskKind, chain_graph, task_id
from spikepipe.schedule_file import ScheduleFileError, from_data, load_schedule, to_data, write_schedule
from spikepipe.sim import simulate
from spikepipe.snn import LIF, TimeDistributed

F, B, W = TaskKind.F, TaskKind.B, TaskKind.W
T, BATCH, CLASSES = 3, 4, 3


# ---------------------------------------------------------------- models written by hand


class TinyAttention(nn.Module):
    """[T, B, d, n] -> a Conv1d stem makes n tokens of d features -> spiking self-attention (Q K^T) V with a
    spike-driven gate V * A, a projection with a residual add, then a linear readout on the flattened tokens:
    products of two activations (matmul), an element-wise product (mul), and layers with weights around them."""

    def __init__(self, tokens: int = 4, dim: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.embed, self.embed_lif = TimeDistributed(nn.Conv1d(dim, dim, 1)), LIF()
        self.q, self.k, self.v = (TimeDistributed(nn.Linear(dim, dim)) for _ in range(3))
        self.q_lif, self.k_lif, self.v_lif, self.attn_lif, self.gate_lif = LIF(), LIF(), LIF(), LIF(), LIF()
        self.proj, self.proj_lif = TimeDistributed(nn.Linear(dim, dim)), LIF()
        self.head = TimeDistributed(nn.Linear(tokens * dim, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed_lif(self.embed(x)).transpose(-1, -2)  # [T, B, n, d]
        t, b, n, d = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.reshape(t, b, n, self.heads, d // self.heads).transpose(2, 3)

        q, k, v = (split(lif(f(x))) for f, lif in ((self.q, self.q_lif), (self.k, self.k_lif), (self.v, self.v_lif)))
        a = self.attn_lif((q @ k.transpose(-2, -1)) @ v * 0.25)
        g = self.gate_lif(a * v)
        y = self.proj_lif(self.proj(g.transpose(2, 3).reshape(t, b, n, d))) + x
        return self.head(y.flatten(2))  # [T, B, classes]: the readout averages over T


class BranchConcat(nn.Module):
    """Two conv branches concatenated along channels, then a conv and a readout."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = TimeDistributed(nn.Conv2d(2, 4, 3, padding=1)), TimeDistributed(nn.Conv2d(2, 3, 1))
        self.lif_a, self.lif_b, self.lif_c = LIF(), LIF(), LIF()
        self.c = TimeDistributed(nn.Conv2d(7, 2, 3))
        self.fc = TimeDistributed(nn.Linear(2 * 4 * 4, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lif_c(self.c(torch.cat([self.lif_a(self.a(x)), self.lif_b(self.b(x))], dim=2)))
        return self.fc(y.flatten(2))


def _sj_zoo(name: str) -> tuple[nn.Module, torch.Tensor]:
    pytest.importorskip("spikingjelly.activation_based")
    from sj_zoo import zoo_module

    if name == "spikformer":
        net = zoo_module("spikformer").Spikformer(T=2, in_channels=3, img_size_h=16, img_size_w=16, patch_size=4,
                                                  num_classes=5, embed_dims=32, num_heads=4, depths=1)
        return net, torch.rand(2, 3, 16, 16)
    net = zoo_module("spike_driven_transformer").SpikeDrivenTransformer(T=2, in_channels=3, num_classes=5,
                                                                          embed_dims=32, num_heads=4, depths=1)
    return net, torch.rand(2, 3, 32, 32)


MODELS = {
    "tiny-attention": lambda: (TinyAttention(), torch.rand(T, 2, 8, 4)),
    "branch-concat": lambda: (BranchConcat(), torch.rand(T, 2, 2, 6, 6)),
    "spikformer": lambda: _sj_zoo("spikformer"),
    "spike-driven-transformer": lambda: _sj_zoo("sdt"),
}


def _reset(model: nn.Module) -> None:
    try:
        from spikingjelly.activation_based import functional

        functional.reset_net(model)
    except ImportError:
        pass


def torch_forward_backward_macs(model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """torch's FLOP counter over one forward and one backward (the input needs no gradient): MACs = FLOPs / 2."""
    _reset(model)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        fwd = counter.get_total_flops()
        (out[0] if isinstance(out, tuple) else out).float().sum().backward()
    _reset(model)
    return fwd // 2, (counter.get_total_flops() - fwd) // 2


def _macs(task: Task) -> int:
    return sum(g.macs for g in task.gemms)


# ---------------------------------------------------------------- the vocabulary


def test_chain_layers_given_f_and_b_have_no_w_task() -> None:
    g = chain_graph([(5, 6, 7), (3, 4), (2, 2, 2), (8, 9)], edge_bytes=16)
    assert g.weightless_layers == (1, 3)
    assert [g.kinds(i) for i in range(4)] == [(F, B, W), (F, B), (F, B, W), (F, B)]
    assert [g.has_task(i, "W") for i in range(4)] == [True, False, True, False]
    assert [t.id for t in g.tasks_of(1)] == ["F1", "B1"] and [t.id for t in g.tasks_of(2)] == ["F2", "B2", "W2"]
    assert len(g.tasks) == 3 * 4 - 2 and not any(t.id in ("W1", "W3") for t in g.tasks)
    assert [s.kinds for s in g.layers] == [g.kinds(i) for i in range(4)]
    assert not any(v.startswith("W") and u in ("B1", "B3") for u, v, _ in g.edges)
    with pytest.raises(GraphError):
        chain_graph([(1, 2, 3, 4)])


def test_a_layer_with_weights_needs_its_w_task_and_one_without_may_gain_one() -> None:
    specs = [LayerSpec(0, "fc", "linear", (4,), (4,)), LayerSpec(1, "prod", "matmul", (1, 2, 2), (1, 2, 2),
                                                                 inputs=(0,))]
    tasks = [Task(task_id(k, layer), layer, k, cycles=3) for layer, ks in ((0, (F, B)), (1, (F, B))) for k in ks]
    edges = [("F0", "F1", 0), ("F1", "B1", 0), ("B1", "B0", 0)]
    with pytest.raises(GraphError, match="layer 0 .*no W task"):
        TaskGraph(specs, tasks, edges, batch=1, timesteps=1)
    ok = TaskGraph(specs, tasks + [Task("W0", 0, W, cycles=2)], edges + [("B0", "W0", 0)], batch=1, timesteps=1)
    assert ok.weightless_layers == (1,)
    # a local classifier on the product's output gives it weights to learn: a W task is allowed there
    more = TaskGraph(specs, [*ok.tasks, Task("W1", 1, W, cycles=2)], [*ok.edges, ("B1", "W1", 0)], batch=1,
                     timesteps=1)
    assert more.weightless_layers == () and more.kinds(1) == (F, B, W)


# ---------------------------------------------------------------- costs against torch


@pytest.mark.parametrize("name", sorted(MODELS))
def test_tasks_and_macs_follow_torch_forward_and_backward(name: str) -> None:
    model, x = MODELS[name]()
    traced = trace_model(model, x)
    t, b = traced.layout.timesteps, traced.layout.batch
    g = build_task_graph(traced.layers, batch=b, timesteps=t)
    weightless = [s.index for s in g.layers if not s.has_weights]
    assert weightless and g.weightless_layers == tuple(weightless)
    assert {(task.layer, task.kind) for task in g.tasks} == {
        (s.index, k) for s in g.layers for k in ((F, B, W) if s.has_weights else (F, B))}
    assert len(g.tasks) == 3 * g.num_layers - len(weightless)
    fwd, bwd = torch_forward_backward_macs(model, x)
    assert sum(_macs(task) for task in g.tasks if task.kind is F) == fwd
    # B (every operand's input gradient) and W (the weight gradient) together are torch's backward, exactly
    assert sum(_macs(task) for task in g.tasks if task.kind is not F) == bwd
    for s in g.layers:
        f = _macs(g.task(f"F{s.index}"))
        if s.op == "matmul":  # dA = dC B^T and dB = A^T dC: two GEMMs, each with F's MACs
            assert [gm.macs for gm in g.task(f"B{s.index}").gemms] == [f, f]
        elif s.has_weights:
            assert _macs(g.task(f"W{s.index}")) == f
        if not s.has_weights:
            assert g.weight_bytes(s.index) == 0 and not g.has_task(s.index, W)


# ---------------------------------------------------------------- every generator on such graphs


def attention_dag(layers: int, seed: int) -> TaskGraph:
    """A random layer DAG (bare cycles) in which every third layer is a product of two earlier layers' outputs:
    no W task, inputs from the layer before and one earlier layer."""
    rng = random.Random(seed)
    specs, tasks, edges = [], [], []
    for j in range(layers):
        product = j >= 2 and j % 3 == 2
        ins = (j - 1, rng.randrange(0, j - 1)) if product else (j - 1,)
        specs.append(LayerSpec(j, f"l{j}", "matmul" if product else "linear", (1, 1, 1) if product else (1,),
                               (1, 1, 1) if product else (1,), inputs=ins))
        for k in (F, B) if product else (F, B, W):
            tasks.append(Task(task_id(k, j), j, k, cycles=rng.randint(200, 4000)))
        for i in ins:
            if i >= 0:
                nbytes = rng.randint(0, 4096)
                edges += [(f"F{i}", f"F{j}", nbytes), (f"B{j}", f"B{i}", nbytes)]
        if not product:
            edges.append((f"B{j}", f"W{j}", 0))
    edges.append((f"F{layers - 1}", f"B{layers - 1}", 0))
    return TaskGraph(specs, tasks, edges, batch=8, timesteps=1, name=f"attention-dag{layers}s{seed}")


def _tiny_attention_graph() -> TaskGraph:
    torch.manual_seed(0)
    model, x = MODELS["tiny-attention"]()
    return build_task_graph(trace(model, x), batch=BATCH, timesteps=T, name="tiny-attention")


GRAPHS = {
    "chain": chain_graph([(3000, 2500, 2000), (1200, 2600), (2800, 2400, 1900), (900, 1800), (2500, 2200, 1500)],
                         edge_bytes=1024, batch=8),
    "attention-dag": attention_dag(9, seed=4),
    "tiny-attention": _tiny_attention_graph(),
}
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
    fr = frontier(g, c, slacks=(0.0, 0.2), options={"deterministic_time_s": 0.2, "workers": 1})
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


# ---------------------------------------------------------------- the command line


@pytest.fixture()
def attention_file(tmp_path):
    from pathlib import Path

    path = tmp_path / "attention.py"
    path.write_text(f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\nimport torch\n"
                    "from test_weightless import TinyAttention\n\n\ndef tiny():\n"
                    "    torch.manual_seed(0)\n    return TinyAttention(), torch.rand(3, 4, 8, 4)\n")
    return path


def _cli_json(capsys, *argv: str) -> dict:
    from spikepipe.cli import main

    assert main([*argv, "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    return json.loads(out[0])


def test_cli_tasks_simulate_and_schedule_files_without_w(attention_file, capsys, tmp_path) -> None:
    from spikepipe.cli import main

    net = f"{attention_file}:tiny"
    data = _cli_json(capsys, "tasks", "--network", net)
    weightless = [s["index"] for s in data["layers"] if not s["has_weights"]]
    assert weightless == [4, 5, 6]
    assert {(t["layer"], t["kind"]) for t in data["tasks"]} == {
        (s["index"], k) for s in data["layers"] for k in ("FBW" if s["has_weights"] else "FB")}
    assert not any(e["dst"] in {f"W{i}" for i in weightless} for e in data["edges"])
    assert main(["tasks", "--network", net]) == 0  # the table shows "-" for the missing W
    capsys.readouterr()
    out = tmp_path / "s.json"
    sim = _cli_json(capsys, "simulate", "--network", net, "-P", "3", "--schedule", "pipedream,gpipe,spikepipe",
                    "--time-limit", "1", "--schedule-out", str(out))
    assert not sim.get("errors") and len(sim["results"]) == 3
    for r in sim["results"]:
        assert len(r["gradient_delays"]) == len(data["layers"])
        assert all(r["gradient_delays"][i] == 0 for i in weightless)
        assert r["simulated_gradient_delays"] == r["gradient_delays"] and r["late_slots"] == 0
    files = sorted(tmp_path.glob("s*.json"))
    assert files
    for f in files:
        again = _cli_json(capsys, "simulate", "--network", net, "-P", "3", "--schedule-file", str(f))
        assert all(r["gradient_delays"][i] == 0 for r in again["results"] for i in weightless)
