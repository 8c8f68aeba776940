"""The same small CNN written three ways (our LIF, snnTorch's tutorial style, SpikingJelly's multi-step style)
must trace to equal LayerSpecs; neuron parameters are read from the user's neuron with its own semantics."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from spikepipe.frontend import trace
from spikepipe.ir import NeuronSpec
from spikepipe.snn import LIF, TimeDistributed

T, B = 3, 2
BETA = 0.5  # SpikingJelly: tau = 1 / (1 - beta) = 2


class OwnCNN(nn.Module):
    """Multi-step, written with our LIF and TimeDistributed, without the zoo's block structure."""

    def __init__(self, fire_on_equal: bool = False, reset: str = "subtract") -> None:
        super().__init__()
        kw = {"beta": BETA, "threshold": 1.0, "reset": reset, "fire_on_equal": fire_on_equal}
        self.conv1 = TimeDistributed(nn.Conv2d(1, 8, 3, padding=1))
        self.lif1 = LIF(**kw)
        self.pool1 = TimeDistributed(nn.MaxPool2d(2))
        self.conv2 = TimeDistributed(nn.Conv2d(8, 16, 3, padding=1))
        self.lif2 = LIF(**kw)
        self.pool2 = TimeDistributed(nn.MaxPool2d(2))
        self.fc1 = TimeDistributed(nn.Linear(16 * 7 * 7, 10))
        self.lif3 = LIF(**kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.lif1(self.conv1(x)))
        x = self.pool2(self.lif2(self.conv2(x)))
        return self.lif3(self.fc1(x.flatten(2)))


def snntorch_cnn(reset: str = "subtract") -> nn.Module:
    snn = pytest.importorskip("snntorch")
    from snntorch import surrogate

    class Net(nn.Module):  # as snnTorch's tutorial 6: the time loop inside forward, single-step neurons
        def __init__(self) -> None:
            super().__init__()
            grad = surrogate.atan()
            self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
            self.lif1 = snn.Leaky(beta=BETA, spike_grad=grad, reset_mechanism=reset)
            self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
            self.lif2 = snn.Leaky(beta=BETA, spike_grad=grad, reset_mechanism=reset)
            self.fc1 = nn.Linear(16 * 7 * 7, 10)
            self.lif3 = snn.Leaky(beta=BETA, spike_grad=grad, reset_mechanism=reset)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mem1, mem2, mem3 = self.lif1.init_leaky(), self.lif2.init_leaky(), self.lif3.init_leaky()
            spk_rec = []
            for step in range(x.size(0)):
                cur1 = nn.functional.max_pool2d(self.conv1(x[step]), 2)  # tutorial order: pool, then neuron
                spk1, mem1 = self.lif1(cur1, mem1)
                cur2 = nn.functional.max_pool2d(self.conv2(spk1), 2)
                spk2, mem2 = self.lif2(cur2, mem2)
                cur3 = self.fc1(spk2.view(spk2.size(0), -1))
                spk3, mem3 = self.lif3(cur3, mem3)
                spk_rec.append(spk3)
            return torch.stack(spk_rec)

    return Net()


def spikingjelly_cnn(reset: float | None = None) -> nn.Module:
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    def lif() -> nn.Module:
        return neuron.LIFNode(tau=1.0 / (1.0 - BETA), decay_input=False, v_reset=reset,
                              surrogate_function=surrogate.ATan())

    net = nn.Sequential(
        layer.Conv2d(1, 8, 3, padding=1), lif(), layer.MaxPool2d(2),
        layer.Conv2d(8, 16, 3, padding=1), lif(), layer.MaxPool2d(2),
        layer.Flatten(), layer.Linear(16 * 7 * 7, 10), lif(),
    )
    functional.set_step_mode(net, "m")
    return net


def unnamed(specs: list) -> list:
    """LayerSpecs without their module paths, which necessarily differ between the three ways of writing it."""
    return [replace(s, name="", modules=()) for s in specs]


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(T, B, 1, 28, 28)


def test_own_snntorch_spikingjelly_give_equal_layerspecs(x: torch.Tensor) -> None:
    own = trace(OwnCNN(), x)
    st = trace(snntorch_cnn(), x)
    assert unnamed(st) == unnamed(own)
    assert [s.name for s in st] == ['conv1', 'conv2', 'fc1']
    # SpikingJelly fires at v >= threshold: the only difference is that flag, which the front end keeps
    sj = trace(spikingjelly_cnn(), x)
    assert unnamed(sj) == unnamed(trace(OwnCNN(fire_on_equal=True), x))
    assert all(s.neuron is not None and s.neuron.fire_on_equal for s in sj)
    assert len(own) == 3 and [s.op for s in own] == ["conv", "conv", "linear"]
    assert [p.kind for p in own[1].post_ops] == ["maxpool", "flatten"]
    assert own[2].in_shape == (784,) and own[2].inputs == (1,)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_neuron_parameters_read_from_user_neuron(x: torch.Tensor, reset: str) -> None:
    st = trace(snntorch_cnn(reset=reset), x)
    assert st[0].neuron == NeuronSpec(beta=BETA, threshold=1.0, reset=reset, surrogate="atan", fire_on_equal=False)
    sj = trace(spikingjelly_cnn(reset=None if reset == "subtract" else 0.0), x)
    assert sj[0].neuron == NeuronSpec(beta=BETA, threshold=1.0, reset=reset, surrogate="atan", fire_on_equal=True)


def test_tracing_leaves_user_model_untouched(x: torch.Tensor) -> None:
    pytest.importorskip("spikingjelly")
    net = spikingjelly_cnn()
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    trace(net, x)
    assert net.training
    after = net.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    # stateful neurons still hold no membrane tensor from the trace
    assert all(not isinstance(getattr(m, "v", 0.0), torch.Tensor) for m in net.modules())


def test_snntorch_recurrent_neuron_is_refused_by_name(x: torch.Tensor) -> None:
    """A recurrent neuron's synapse (a GEMM per timestep, sequential in T) is not costed: refused, named."""
    snn = pytest.importorskip("snntorch")
    from spikepipe.frontend import UnsupportedLayerError

    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), snn.RLeaky(beta=0.8, linear_features=10,
                                                                     init_hidden=True))
    with pytest.raises(UnsupportedLayerError, match=r"module 2 \(snntorch.RLeaky\): recurrent"):
        trace(net, x[0])


def test_spikingjelly_decay_input_becomes_a_scaled_threshold(x: torch.Tensor) -> None:
    """decay_input=True divides the input by tau; in the potential scaled by tau that is our LIF with threshold
    tau * v_threshold. Checked on the spikes themselves, not only on the parameters."""
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import neuron

    node = neuron.LIFNode(tau=4.0, decay_input=True, v_reset=None, v_threshold=0.5, step_mode="m")
    spec = trace(nn.Sequential(nn.Linear(784, 6), node), x.flatten(2))[0].neuron
    assert spec is not None and (spec.beta, spec.threshold, spec.fire_on_equal) == (0.75, 2.0, True)
    torch.manual_seed(5)
    drive = torch.rand(12, 3, 6) * 3
    ours = LIF(beta=spec.beta, threshold=spec.threshold, reset=spec.reset, fire_on_equal=spec.fire_on_equal)
    assert torch.equal(ours(drive), node(drive))
