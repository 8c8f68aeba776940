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
from spikingjelly.activation_based import functional, layer, neuron  # noqa: E402


class SnnTorchTutorialCNN(nn.Module):
    """snnTorch tutorial 6: static input [B, C, H, W], `num_steps` steps inside forward, pool before the neuron."""

    def __init__(self, channels: int, size: int, steps: int, neuron_cls: str = "Leaky") -> None:
        super().__init__()
        self.steps = steps
        make = {"Leaky": lambda: snn.Leaky(beta=0.5), "Synaptic": lambda: snn.Synaptic(alpha=0.8, beta=0.5),
                "Alpha": lambda: snn.Alpha(alpha=0.8, beta=0.5), "Lapicque": lambda: snn.Lapicque(beta=0.5)}[neuron_cls]
        self.conv1, self.lif1 = nn.Conv2d(channels, 12, 5), make()
        self.conv2, self.lif2 = nn.Conv2d(12, 16, 5), make()
        side = ((size - 4) // 2 - 4) // 2
        self.fc1, self.lif3 = nn.Linear(16 * side * side, 10), make()
        self.kind = neuron_cls

    def _init(self, lif: nn.Module) -> tuple:
        if self.kind == "Synaptic":
            return tuple(lif.init_synaptic())
        if self.kind == "Alpha":
            return tuple(lif.init_alpha())
        return (lif.init_lapicque() if self.kind == "Lapicque" else lif.init_leaky(),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lifs = (self.lif1, self.lif2, self.lif3)
        states = [self._init(lif) for lif in lifs]
        out = []
        for _ in range(self.steps):
            cur = nn.functional.max_pool2d(self.conv1(x), 2)
            for i, nxt in enumerate((lambda s: nn.functional.max_pool2d(self.conv2(s), 2),
                                     lambda s: self.fc1(s.flatten(1)), None)):
                spk, *rest = lifs[i](cur, *states[i])
                states[i] = tuple(rest)
                cur = nxt(spk) if nxt is not None else spk
            out.append(cur)
        return torch.stack(out)


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
    functional.set_step_mode(net, "m")
    lay = trace_model(net, torch.rand(8, 1, 1, 28, 28)).layout
    assert (lay.style, lay.timesteps, lay.batch) == ("multi-step", 8, 1)
