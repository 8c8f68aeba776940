"""Forward AC and MAC counts side by side with SpikingJelly 2.0's op counters (ACCounter, MACCounter) on the same
model and input: equal for the synaptic ops (conv, linear), where the two define them alike."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from spikepipe import zoo
from spikepipe.activity import measure
from spikepipe.costs import build_task_graph, graph_ops_split
from spikepipe.frontend import trace

op_counter = pytest.importorskip("spikingjelly.activation_based.op_counter")
aten = torch.ops.aten
SYNAPTIC = {aten.convolution.default, aten.mm.default, aten.addmm.default}


def sj_synaptic_counts(model, x) -> tuple[int, int]:
    """(ACs, MACs) SpikingJelly counts for the convolutions and matrix products of one forward."""
    ac, mac = op_counter.ACCounter(), op_counter.MACCounter()
    with torch.no_grad(), op_counter.DispatchCounterMode([ac, mac]):
        model(x)
    pick = lambda c: sum(v for f, v in c.get_counts().get("Global", {}).items() if f in SYNAPTIC)  # noqa: E731
    return pick(ac), pick(mac)


def ours(model, x, name) -> tuple[float, int]:
    layers = trace(model, x[:, :1])
    rep = measure(model, layers, [x], model_name=name, dataset="test")
    graph = build_task_graph(layers, batch=x.shape[1], timesteps=x.shape[0], name=name)
    split = graph_ops_split(graph, rep.operand_activities(), kinds="F")
    return split.acs, split.macs


def stand_in_torchvision(monkeypatch) -> None:
    """SpikingJelly's zoo imports torchvision for a URL loader only; torchvision cannot load here."""
    tv, models, utils = (types.ModuleType(n) for n in ("torchvision", "torchvision.models", "torchvision.models.utils"))
    utils.load_state_dict_from_url = lambda *a, **k: None
    tv.models, models.utils = models, utils
    for n, m in (("torchvision", tv), ("torchvision.models", models), ("torchvision.models.utils", utils)):
        monkeypatch.setitem(sys.modules, n, m)


@pytest.mark.parametrize("seed", [0, 1])
def test_snn_cnn_counts_equal_spikingjelly(seed):
    torch.manual_seed(seed)
    model, _ = zoo.build("snn-cnn", batch=3, timesteps=3, seed=seed)
    x = torch.rand(3, 3, 1, 28, 28) * 2  # analog input: the first layer is dense MACs for both
    model.eval()
    sj_ac, sj_mac = sj_synaptic_counts(model, x)
    our_ac, our_mac = ours(model, x, "snn-cnn")
    assert sj_ac > 0 and sj_mac > 0
    assert our_mac == sj_mac
    assert our_ac == pytest.approx(sj_ac, rel=1e-9)


def test_spikingjelly_zoo_vgg_counts_equal(monkeypatch):
    stand_in_torchvision(monkeypatch)
    from spikingjelly.activation_based import functional, neuron
    from spikingjelly.activation_based.model import spiking_vgg

    torch.manual_seed(0)
    model = spiking_vgg.spiking_vgg11_bn(spiking_neuron=neuron.LIFNode, num_classes=10)
    functional.set_step_mode(model, "m")
    model.eval()
    x = torch.rand(2, 1, 3, 32, 32) * 4
    sj_ac, sj_mac = sj_synaptic_counts(model, x)
    functional.reset_net(model)
    our_ac, our_mac = ours(model, x, "spiking_vgg11_bn")
    assert sj_ac > 0
    assert our_mac == sj_mac
    assert our_ac == pytest.approx(sj_ac, rel=1e-9)


@pytest.mark.filterwarnings("ignore:Lemaire formulas do not support:RuntimeWarning")
def test_forward_energy_against_lemaire_arithmetic(monkeypatch):
    """SpikingJelly's Lemaire profiler and SpikePipe's forward energy under the same per-operation energies: the
    arithmetic terms differ by exactly what the two count differently (Lemaire: whole-kernel synops per spike,
    one MAC per LIF update, one AC per output spike and bias add)."""
    stand_in_torchvision(monkeypatch)
    from dataclasses import replace

    from spikingjelly.activation_based import functional, neuron
    from spikingjelly.activation_based.model import spiking_vgg
    from spikingjelly.activation_based.op_counter import LemaireEnergyConfig, estimate_lemaire_energy

    from hwmodels import EnergyTable
    from spikepipe.activity import calibrate_batchnorm
    from spikepipe.energy import forward_energy

    torch.manual_seed(0)
    model = spiking_vgg.spiking_vgg11_bn(spiking_neuron=neuron.LIFNode, num_classes=10)
    functional.set_step_mode(model, "m")
    x = torch.rand(2, 2, 3, 32, 32) * 2
    calibrate_batchnorm(model, [x])
    rep = estimate_lemaire_energy(model, x, config=LemaireEnergyConfig(strict=False))
    functional.reset_net(model)
    layers = trace(model, x[:, :1])
    functional.reset_net(model)
    act = measure(model, layers, [x], model_name="vgg", dataset="rand").operand_activities()
    graph = build_task_graph(layers, batch=2, timesteps=2)
    c = rep.config.cost_config
    proc = replace(graph.reference, energy=EnergyTable(mac_pj=c.e_mul_pj + c.e_add_pj, ac_pj=c.e_add_pj))
    ours = forward_energy(graph, proc, act)
    split = graph_ops_split(graph, act, kinds="F")
    counts = rep.counts
    assert counts["synop"] > split.acs > 0  # whole kernels per spike count the padding taps too
    extra_mac = counts["mac"] - split.macs  # Lemaire's LIF updates: one MAC per neuron and step
    lif_updates = sum(int(torch.tensor(s.out_shape).prod()) for s in layers if s.neuron is not None) * 2 * 2
    assert extra_mac == lif_updates
    gap = rep.breakdown_pj["ops_pj"] - (ours["mac"] + ours["ac"]) / 1e-12
    expect = ((counts["ac"] - split.acs) * c.e_add_pj + extra_mac * (c.e_mul_pj + c.e_add_pj))
    assert gap == pytest.approx(expect, rel=1e-9)
