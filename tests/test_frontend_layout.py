"""Time and batch as the model really runs them, and the forward MACs against torch's own FLOP counter.

Models are written the way snnTorch's and SpikingJelly's documentation writes them: the time loop inside forward
over a static [B, ...] input (snnTorch tutorials), a loop over dim 0 of [T, B, ...], a SpikingJelly single-step
network looped n times, multi-step [T, B, ...] networks, and a model that repeats its [B, ...] input T times
(as Spikformer does). The oracle is torch.utils.flop_counter on the real model and the user's own example:
F MACs = FLOPs / 2 (conv and matmul), exactly; B and W MACs follow from F (input-gradient GEMM: the same MACs
except for the first layer, which needs no input gradient; weight-gradient GEMM: the same MACs).
"""

from __future__ import annotations

import pytest
import torch
from frontend_oracle import check_oracle
from torch import nn

from spikepipe.frontend import LayoutError, trace_model
from spikepipe.snn import LIF, TimeDistributed

snn = pytest.importorskip("snntorch")
sj = pytest.importorskip("spikingjelly.activation_based")
from sj_zoo import SnnTorchTutorialCNN  # noqa: E402  (snnTorch tutorial 6: static input, steps in forward)
from spikingjelly.activation_based import functional, layer, neuron  # noqa: E402


@pytest.mark.parametrize(("channels", "size", "batch", "steps"), [(1, 28, 32, 8), (3, 32, 16, 8), (2, 28, 1, 5),
                                                                  (1, 28, 8, 1), (4, 20, 3, 3)])
def test_snntorch_tutorial_loop_in_forward(channels: int, size: int, batch: int, steps: int) -> None:
    model, x = SnnTorchTutorialCNN(channels, size, steps), torch.rand(batch, channels, size, size)
    if steps == 1:  # one call on [B, ...] is a single step: T cannot be read from the example
        with pytest.raises(LayoutError, match="--timesteps"):
            trace_model(model, x)
        check_oracle(model, x, 1, batch, timesteps=1)
        return
    check_oracle(model, x, steps, batch)
    lay = trace_model(model, x).layout
    assert lay.style == "loop-in-forward" and lay.time_fixed and "8" in lay.timesteps_source or steps != 8
    with pytest.raises(LayoutError, match="fixes T"):
        trace_model(model, x, timesteps=steps + 1)
    assert trace_model(model, x, batch=batch + 7).layout.batch == batch + 7  # B scales, T stays


@pytest.mark.parametrize("kind", ["Leaky", "Synaptic", "Alpha", "Lapicque"])
def test_snntorch_neurons_in_a_loop(kind: str) -> None:
    model, x = SnnTorchTutorialCNN(1, 28, 4, kind), torch.rand(6, 1, 28, 28)
    check_oracle(model, x, 4, 6)
    spec = trace_model(model, x).layers[0].neuron
    assert spec is not None and spec.kind == kind.lower().replace("leaky", "lif")
    assert spec.state_vars == {"Leaky": 1, "Lapicque": 1, "Synaptic": 2, "Alpha": 3}[kind]


class LoopOverInput(nn.Module):
    """snnTorch style with the time in the input: forward loops over dim 0 of [T, B, ...]."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 6, 3, padding=1)
        self.lif1 = snn.Leaky(beta=0.9, init_hidden=True)
        self.fc = nn.Linear(6 * 8 * 8, 5)
        self.lif2 = snn.Leaky(beta=0.9, init_hidden=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.lif1.reset_hidden()
        self.lif2.reset_hidden()
        return torch.stack([self.lif2(self.fc(self.lif1(self.conv(x[t])).flatten(1))) for t in range(x.shape[0])])


@pytest.mark.parametrize(("t", "b", "c"), [(5, 3, 1), (2, 7, 3), (4, 1, 1), (1, 4, 2)])
def test_loop_over_input(t: int, b: int, c: int) -> None:
    model, x = LoopOverInput(c), torch.rand(t, b, c, 8, 8)
    check_oracle(model, x, t, b)
    assert trace_model(model, x, timesteps=100).layout.timesteps == 100  # the loop follows the input


def _sj_net(channels: int, node: type = neuron.IFNode) -> nn.Sequential:
    return nn.Sequential(layer.Conv2d(channels, 8, 3, padding=1), layer.BatchNorm2d(8), node(), layer.MaxPool2d(2),
                         layer.Flatten(), layer.Linear(8 * 14 * 14, 10), node())


class SingleStepLooped(nn.Module):
    """A SpikingJelly single-step network run T times over a static [B, ...] input."""

    def __init__(self, channels: int, steps: int) -> None:
        super().__init__()
        self.net, self.steps = _sj_net(channels), steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.stack([self.net(x) for _ in range(self.steps)]).mean(0)
        functional.reset_net(self.net)
        return out


@pytest.mark.parametrize(("b", "c", "steps"), [(8, 1, 4), (3, 3, 2), (1, 2, 6)])
def test_spikingjelly_single_step_looped(b: int, c: int, steps: int) -> None:
    model, x = SingleStepLooped(c, steps), torch.rand(b, c, 28, 28)
    check_oracle(model, x, steps, b)
    assert trace_model(model, x).layout.style == "loop-in-forward"


@pytest.mark.parametrize("node", [neuron.IFNode, neuron.LIFNode, neuron.ParametricLIFNode, neuron.KLIFNode])
@pytest.mark.parametrize(("t", "b"), [(4, 8), (3, 1), (1, 5)])
def test_spikingjelly_multi_step(node: type, t: int, b: int) -> None:
    net = _sj_net(1, node)
    functional.set_step_mode(net, "m")
    check_oracle(net, torch.rand(t, b, 1, 28, 28), t, b)


class RepeatsInput(nn.Module):
    """Repeats a [B, ...] input T times inside forward and runs multi-step (Spikformer's _to_sequence)."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps
        self.conv = TimeDistributed(nn.Conv2d(3, 4, 3))
        self.lif = LIF()
        self.fc = TimeDistributed(nn.Linear(4 * 6 * 6, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.unsqueeze(0).repeat(self.steps, 1, 1, 1, 1)
        return self.fc(self.lif(self.conv(seq)).flatten(2)).mean(0)


@pytest.mark.parametrize(("b", "steps"), [(4, 3), (1, 2), (2, 1)])
def test_time_repeated_in_forward(b: int, steps: int) -> None:
    model, x = RepeatsInput(steps), torch.rand(b, 3, 8, 8)
    if steps == 1:
        with pytest.raises(LayoutError, match="--timesteps"):
            trace_model(model, x)
        return
    check_oracle(model, x, steps, b)
    assert trace_model(model, x).layout.style == "time-in-forward"


class ReadoutOutsideLoop(nn.Module):
    """A readout on spikes summed over time (Spike-driven Transformer's head on the mean over T)."""

    def __init__(self, every: int = 1) -> None:
        super().__init__()
        self.fc1, self.lif, self.fc2 = nn.Linear(4, 6), snn.Leaky(beta=0.5, init_hidden=True), nn.Linear(6, 2)
        self.every = every

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.lif.reset_hidden()
        spikes = torch.stack([self.lif(self.fc1(x)) for _ in range(6)])
        if self.every > 1:  # a layer run on every other step only
            return torch.stack([self.fc2(s) for s in spikes[::self.every]])
        return self.fc2(spikes.sum(0))  # the readout runs once per sample, not per step


def test_a_readout_after_a_sum_over_time_runs_once_per_sample() -> None:
    traced = check_oracle(ReadoutOutsideLoop(), torch.rand(5, 4), 6, 5)
    assert [s.per_step for s in traced.layers] == [True, False]
    assert traced.layout.once_per_sample == ("fc2",)


def test_a_layer_on_some_steps_only_is_refused_by_name() -> None:
    with pytest.raises(LayoutError, match="module fc2 runs 15 sample-steps.*fc1 runs 30"):
        trace_model(ReadoutOutsideLoop(every=2), torch.rand(5, 4))


def test_an_undecidable_example_asks_for_timesteps_and_batch() -> None:
    model = nn.Sequential(nn.Flatten(0, 2), nn.Linear(4, 3), LIF())  # [a, b, c, 4] flattened into one dim
    x = torch.rand(2, 3, 2, 4)
    with pytest.raises(LayoutError, match="--timesteps and --batch"):
        trace_model(model, x)
    assert (trace_model(model, x, timesteps=6, batch=2).layout.timesteps_source) == "--timesteps"
    with pytest.raises(LayoutError, match="= 10"):
        trace_model(model, x, timesteps=5, batch=2)


def test_one_call_of_a_single_step_network_asks_for_t_and_multi_step_batch_one_does_not() -> None:
    """A neuron that receives [B, ...] steps once per call: [8, 1, 28, 28] is 8 samples, not T=8 and B=1."""
    net = _sj_net(1)
    with pytest.raises(LayoutError, match="single-step"):
        trace_model(net, torch.rand(8, 1, 28, 28))
    assert trace_model(net, torch.rand(8, 1, 28, 28), timesteps=6).layout.timesteps == 6
    flat = nn.Sequential(nn.Flatten(), layer.Linear(16, 4), neuron.IFNode())  # [B, 1, 4, 4]: not batch-first T=1
    with pytest.raises(LayoutError, match="single-step"):
        trace_model(flat, torch.rand(5, 1, 4, 4))
    functional.set_step_mode(net, "m")
    lay = trace_model(net, torch.rand(8, 1, 1, 28, 28)).layout
    assert (lay.style, lay.timesteps, lay.batch) == ("multi-step", 8, 1)


class Tutorial5(nn.Module):
    """snnTorch tutorial 5: a fully connected net, 25 steps over a flat [B, 784] input, spikes and membranes out."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(784, 100), snn.Leaky(beta=0.95)
        self.fc2, self.lif2 = nn.Linear(100, 10), snn.Leaky(beta=0.95)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spikes, mems = [], []
        for _ in range(25):
            spk1, mem1 = self.lif1(self.fc1(x), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spikes.append(spk2)
            mems.append(mem2)
        return torch.stack(spikes, dim=0), torch.stack(mems, dim=0)


def _tutorial7_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 8, 5), nn.MaxPool2d(2), snn.Leaky(beta=0.5, init_hidden=True),
                         nn.Conv2d(8, 16, 5), nn.MaxPool2d(2), snn.Leaky(beta=0.5, init_hidden=True), nn.Flatten(),
                         nn.Linear(16 * 4 * 4, 10), snn.Leaky(beta=0.5, init_hidden=True, output=True))


class Tutorial7(nn.Module):
    """snnTorch tutorial 7: an nn.Sequential with init_hidden neurons, looped over dim 0 of [T, B, ...] data."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _tutorial7_net()

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        from snntorch import utils

        utils.reset(self.net)
        return torch.stack([self.net(data[step])[0] for step in range(data.size(0))])


class RateCoded(nn.Module):
    """Rate coding inside forward (snntorch.spikegen.rate), then the tutorial-7 net over the generated steps."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.net, self.steps = _tutorial7_net(), steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from snntorch import spikegen, utils

        data = spikegen.rate(x, num_steps=self.steps)
        utils.reset(self.net)
        return torch.stack([self.net(data[t])[0] for t in range(self.steps)])


class MultiStepForward(nn.Module):
    """SpikingJelly's functional.multi_step_forward of a single-step net over [T, B, ...]."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(layer.Conv2d(1, 8, 3, padding=1), neuron.LIFNode(), layer.Flatten(),
                                 layer.Linear(8 * 28 * 28, 10), neuron.LIFNode())

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        out = functional.multi_step_forward(x_seq, self.net)
        functional.reset_net(self.net)
        return out.mean(0)


@pytest.mark.parametrize(("build", "x", "t", "b", "style"), [
    (Tutorial5, torch.rand(16, 784), 25, 16, "loop-in-forward"),
    (Tutorial7, torch.rand(10, 4, 1, 28, 28), 10, 4, "loop-over-input"),
    (lambda: RateCoded(6), torch.rand(4, 1, 28, 28), 6, 4, "loop-in-forward"),
    (MultiStepForward, torch.rand(5, 3, 1, 28, 28), 5, 3, "loop-over-input"),
], ids=["tutorial5-fc", "tutorial7-sequential", "rate-coded-in-forward", "sj-multi-step-forward"])
def test_documentation_style_models(build, x: torch.Tensor, t: int, b: int, style: str) -> None:
    assert check_oracle(build(), x, t, b).layout.style == style


class BatchFirstLoop(nn.Module):
    """Audio / SHD style: [B, T, F] with forward looping over x[:, t]."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(20, 16), snn.Leaky(beta=0.9, init_hidden=True)
        self.fc2, self.lif2 = nn.Linear(16, 4), snn.Leaky(beta=0.9, init_hidden=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.lif1.reset_hidden()
        self.lif2.reset_hidden()
        return torch.stack([self.lif2(self.fc2(self.lif1(self.fc1(x[:, t])))) for t in range(x.shape[1])], 1)


@pytest.mark.parametrize(("b", "t"), [(3, 7), (5, 2), (4, 4)])
def test_batch_first_loop_over_input(b: int, t: int) -> None:
    lay = check_oracle(BatchFirstLoop(), torch.rand(b, t, 20), t, b).layout
    assert lay.style == "loop-over-input" and (lay.timesteps, lay.batch) == (t, b)
