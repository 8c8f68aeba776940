"""NIR graphs built with the `nir` package read as networks: the same layers and MACs as the torch model they
describe, every supported node, T and B from the command line, and unsupported nodes refused by name."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from spikepipe.cli import main
from spikepipe.costs import build_task_graph
from spikepipe.frontend import trace_model
from spikepipe.snn import LIF, TimeDistributed

nir = pytest.importorskip("nir")
from spikepipe.nir_import import NIRError, trace_graph  # noqa: E402


def _lif(shape: tuple[int, ...]) -> object:
    return nir.LIF(tau=np.full(shape, 2.0), r=np.ones(shape), v_leak=np.zeros(shape), v_threshold=np.ones(shape))


def _neuron(kind: str, shape: tuple[int, ...]) -> object:
    ones, zeros = np.ones(shape), np.zeros(shape)
    return {"lif": lambda: _lif(shape),
            "cubalif": lambda: nir.CubaLIF(tau_syn=ones * 2, tau_mem=ones * 4, r=ones, v_leak=zeros,
                                           v_threshold=ones),
            "if": lambda: nir.IF(r=ones, v_threshold=ones),
            "li": lambda: nir.LI(tau=ones * 2, r=ones, v_leak=zeros),
            "i": lambda: nir.I(r=ones),
            "threshold": lambda: nir.Threshold(threshold=ones)}[kind]()


def cnn_graph(c: int, size: int, hidden: int, neuron: str = "lif", pool: str = "avg") -> object:
    """Conv2d -> neuron -> pool -> Flatten -> Affine -> neuron -> Linear, per-sample input (c, size, size)."""
    conv_out, pooled = (8, size, size), (8, size // 2, size // 2)
    pool_node = (nir.AvgPool2d if pool == "avg" else nir.SumPool2d)(
        kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    flat = int(np.prod(pooled))
    nodes = {
        "input": nir.Input(input_type={"input": np.array([c, size, size])}),
        "conv": nir.Conv2d(input_shape=(size, size), weight=np.zeros((8, c, 3, 3)), stride=1, padding=1,
                           dilation=1, groups=1, bias=np.zeros(8)),
        "n1": _neuron(neuron, conv_out), "pool": pool_node,
        "flat": nir.Flatten(input_type={"input": np.array(pooled)}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=np.zeros((hidden, flat)), bias=np.zeros(hidden)),
        "n2": _neuron(neuron, (hidden,)), "scale": nir.Scale(scale=np.full((hidden,), 0.5)),
        "out_fc": nir.Linear(weight=np.zeros((10, hidden))),
        "output": nir.Output(output_type={"output": np.array([10])}),
    }
    order = ["input", "conv", "n1", "pool", "flat", "fc", "n2", "scale", "out_fc", "output"]
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order, order[1:], strict=False)))


def cnn_torch(c: int, size: int, hidden: int, pool: str = "avg") -> nn.Module:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.n1 = TimeDistributed(nn.Conv2d(c, 8, 3, padding=1)), LIF()
            self.pool = TimeDistributed(nn.AvgPool2d(2) if pool == "avg" else nn.AvgPool2d(2, divisor_override=1))
            self.fc, self.n2 = TimeDistributed(nn.Linear(8 * (size // 2) ** 2, hidden)), LIF()
            self.out = TimeDistributed(nn.Linear(hidden, 10, bias=False))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.n2(self.fc(self.pool(self.n1(self.conv(x))).flatten(2))) * 0.5)

    return Net()


def _structure(layers: list) -> list:
    """Layers without names, module paths and neuron parameters (NIR's tau / r are not our beta)."""
    return [replace(s, name="", modules=(), neuron=None if s.neuron is None else "neuron") for s in layers]


@pytest.mark.parametrize(("c", "size", "hidden", "pool"), [(1, 8, 16, "avg"), (3, 12, 32, "sum"), (2, 4, 5, "avg")])
@pytest.mark.parametrize(("t", "b"), [(4, 2), (1000, 64)])
def test_nir_graph_and_torch_model_give_the_same_layers_and_macs(c, size, hidden, pool, t, b) -> None:
    from_nir = trace_graph(cnn_graph(c, size, hidden, pool=pool), timesteps=t, batch=b)
    model = cnn_torch(c, size, hidden, pool)
    from_torch = trace_model(model, torch.rand(2, 1, c, size, size), timesteps=t, batch=b)
    assert _structure(from_nir.layers) == _structure(from_torch.layers)
    assert (from_nir.layout.timesteps, from_nir.layout.batch) == (t, b)
    macs = [sum(g.macs for task in build_task_graph(tr.layers, batch=b, timesteps=t).tasks for g in task.gemms)
            for tr in (from_nir, from_torch)]
    assert macs[0] == macs[1] > 0


@pytest.mark.parametrize(("neuron", "kind", "states"), [("lif", "lif", 1), ("cubalif", "synaptic", 2),
                                                         ("if", "if", 1), ("li", "li", 1),
                                                         ("i", "integrator", 1), ("threshold", "threshold", 1)])
def test_every_nir_neuron_is_read(neuron: str, kind: str, states: int) -> None:
    layers = trace_graph(cnn_graph(1, 8, 16, neuron), timesteps=3, batch=2).layers
    assert [s.neuron.kind for s in layers[:2]] == [kind, kind] and layers[0].neuron.state_vars == states
    g = build_task_graph(layers, batch=2, timesteps=3)
    assert any(v.op == f"{kind}_fwd" for v in g.task("F0").vector)


def test_conv1d_and_a_residual_add() -> None:
    shape = (4, 16)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2, 16])}),
        "c1": nir.Conv1d(input_shape=16, weight=np.zeros((4, 2, 3)), stride=1, padding=1, dilation=1, groups=1,
                         bias=np.zeros(4)),
        "n1": _lif(shape),
        "c2": nir.Conv1d(input_shape=16, weight=np.zeros((4, 4, 3)), stride=1, padding=1, dilation=1, groups=1,
                         bias=np.zeros(4)),
        "n2": _lif(shape),
        "flat": nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=np.zeros((5, 64)), bias=np.zeros(5)),
        "output": nir.Output(output_type={"output": np.array([5])}),
    }
    edges = [("input", "c1"), ("c1", "n1"), ("n1", "c2"), ("c2", "n2"), ("n2", "flat"), ("n1", "flat"),
             ("flat", "fc"), ("fc", "output")]
    layers = trace_graph(nir.NIRGraph(nodes=nodes, edges=edges), timesteps=2, batch=3).layers
    assert [s.op for s in layers] == ["conv", "conv", "linear"]
    assert layers[0].in_shape == (2, 1, 16) and layers[0].kernel == (1, 3)
    assert layers[1].skip_sources == (0,)  # n1 + n2 feeds the flatten: a residual add on layer 1


def test_unsupported_node_is_named() -> None:
    g = cnn_graph(1, 8, 16)
    g.nodes["n1"] = nir.Delay(delay=np.ones((8, 8, 8)))
    with pytest.raises(NIRError, match=r"NIR node 'n1' \(Delay\) is not supported; supported: Input"):
        trace_graph(g, timesteps=2, batch=1)


def test_cli_reads_a_nir_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "net.nir"
    nir.write(str(path), cnn_graph(1, 8, 16))
    assert main(["tasks", "--network", str(path), "--timesteps", "100000", "--batch", "32", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["timesteps"], data["batch"], data["layout"]) == (100000, 32, "nir")
    assert main(["tasks", "--network", str(path), "--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--timesteps and --batch" in err[0]
