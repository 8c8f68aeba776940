"""Layers without weights (products of two activations as in spiking self-attention, element-wise products,
concatenations) have an F and a B task and no W task (docs/design.md section 4.1): the vocabulary says so, the cost
model's MACs follow torch's FLOP counter forward and backward, and the command line lists, simulates and writes
schedule files for such a model. What consumes such graphs (generators, replay, trainer, methods) is tested in
tests/test_weightless_schedules.py."""

from __future__ import annotations

import json

import pytest
from weightless_nets import (
    MODELS,
    B,
    F,
    W,
    task_macs,
    torch_forward_backward_macs,
)

from spikepipe.costs import build_task_graph
from spikepipe.frontend import trace_model
from spikepipe.ir import GraphError, LayerSpec, Task, TaskGraph, chain_graph, task_id

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
    assert sum(task_macs(task) for task in g.tasks if task.kind is F) == fwd
    # B (every operand's input gradient) and W (the weight gradient) together are torch's backward, exactly
    assert sum(task_macs(task) for task in g.tasks if task.kind is not F) == bwd
    for s in g.layers:
        f = task_macs(g.task(f"F{s.index}"))
        if s.op == "matmul":  # dA = dC B^T and dB = A^T dC: two GEMMs, each with F's MACs
            assert [gm.macs for gm in g.task(f"B{s.index}").gemms] == [f, f]
        elif s.has_weights:
            assert task_macs(g.task(f"W{s.index}")) == f
        if not s.has_weights:
            assert g.weight_bytes(s.index) == 0 and not g.has_task(s.index, W)



# ---------------------------------------------------------------- the command line


@pytest.fixture()
def attention_file(tmp_path):
    from pathlib import Path

    path = tmp_path / "attention.py"
    path.write_text(f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\nimport torch\n"
                    "from weightless_nets import TinyAttention\n\n\ndef tiny():\n"
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

