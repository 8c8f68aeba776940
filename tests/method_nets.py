"""Users' models for the trainer's method tests (spikepipe train --method ... on a user's module): single-step
and multi-step nets of SpikingJelly and snnTorch, a loop-in-forward model, and `TwinLIF`, a stateful neuron with
spikepipe.snn.LIF's arithmetic, so a user's nn.Sequential can mirror a built-in network weight for weight."""

from __future__ import annotations

import torch
from torch import nn

from spikepipe.snn import spike


def _sj():
    from spikingjelly.activation_based import base, layer, neuron, surrogate

    return base, layer, neuron, surrogate


def st_seq_digits() -> tuple[nn.Module, torch.Tensor]:
    """snnTorch init_hidden nn.Sequential (single-step: one call is one timestep), 64 inputs, 10 classes."""
    import snntorch as snn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 24), snn.Leaky(beta=0.8, threshold=0.5, init_hidden=True),
                        nn.Linear(24, 10), snn.Leaky(beta=0.8, threshold=0.5, init_hidden=True, output=True))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
    return net, torch.zeros(1, 64)


def sj_single_digits() -> tuple[nn.Module, torch.Tensor]:
    """SpikingJelly nn.Sequential in step mode 's' (single-step), 64 inputs, 10 classes."""
    _, layer, neuron, surrogate = _sj()
    torch.manual_seed(0)
    net = nn.Sequential(layer.Linear(64, 24), neuron.LIFNode(tau=2.0, v_threshold=0.5,
                                                             surrogate_function=surrogate.ATan()),
                        layer.Linear(24, 10))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
    return net, torch.zeros(1, 64)


def sj_multi_digits() -> tuple[nn.Module, torch.Tensor]:
    """SpikingJelly multi-step nn.Sequential with BatchNorm, 64 inputs, 10 classes; example [T=3, B=1, 64]."""
    _, layer, neuron, surrogate = _sj()
    from spikingjelly.activation_based import functional

    torch.manual_seed(0)
    net = nn.Sequential(layer.Linear(64, 24), layer.BatchNorm1d(24),
                        neuron.LIFNode(tau=2.0, v_threshold=0.5, surrogate_function=surrogate.ATan()),
                        layer.Linear(24, 16), neuron.LIFNode(tau=2.0, v_threshold=0.5,
                                                             surrogate_function=surrogate.ATan()),
                        layer.Linear(16, 10))
    functional.set_step_mode(net, "m")
    return net, torch.zeros(3, 1, 64)


class LoopInForward(nn.Module):
    """snnTorch tutorial style: [B, 64] in, the time loop (3 steps) and the neuron state inside forward."""

    def __init__(self) -> None:
        super().__init__()
        import snntorch as snn

        self.fc1, self.lif1 = nn.Linear(64, 24), snn.Leaky(beta=0.8)
        self.fc2, self.lif2 = nn.Linear(24, 10), snn.Leaky(beta=0.8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m1, m2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        out = []
        for _ in range(3):
            s1, m1 = self.lif1(self.fc1(x), m1)
            s2, m2 = self.lif2(self.fc2(s1), m2)
            out.append(s2)
        return torch.stack(out)


def loop_in_forward_digits() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return LoopInForward(), torch.zeros(1, 64)


def twin_lif_class():
    """A SpikingJelly neuron (a BaseNode, so the front end reads it) with spikepipe.snn.LIF's update (u = beta u
    + x; spike; subtract or zero reset), multi-step ([T, B, ...] per call) or single-step; its membrane `v` is
    carried between calls as any SpikingJelly neuron's."""
    from spikingjelly.activation_based import neuron

    class TwinLIF(neuron.BaseNode):
        def __init__(self, lif: nn.Module, step_mode: str = "m") -> None:
            super().__init__(v_threshold=lif.threshold, v_reset=None, step_mode=step_mode)
            self.lif = lif  # the built-in network's neuron (its beta and firing rule)

        def neuronal_charge(self, x: torch.Tensor) -> None:  # BaseNode's abstract step; unused here
            raise NotImplementedError

        def single_step_forward(self, x: torch.Tensor) -> torch.Tensor:
            n = self.lif
            u = torch.zeros_like(x) if isinstance(self.v, float) else self.v
            u = n.beta * u + x
            s = spike(u - n.threshold, n.surrogate, n.alpha, n.fire_on_equal)
            r = s.detach() if n.detach_reset else s
            self.v = u - r * n.threshold if n.reset == "subtract" else u * (1.0 - r)
            return s

        def multi_step_forward(self, x_seq: torch.Tensor) -> torch.Tensor:
            return torch.stack([self.single_step_forward(x) for x in x_seq])

    return TwinLIF


def zoo_twin(net: nn.Module, step_mode: str = "m") -> nn.Sequential:
    """A user's nn.Sequential computing what the chain network `net` (spikepipe.zoo, synapse + neuron blocks
    without norm or pool) computes, sharing no tensors with it: the same weights, copied."""
    import copy

    _, layer, _, _ = _sj()
    twin = twin_lif_class()
    mods: list[nn.Module] = []
    for b in net.blocks:
        if b.flatten_input or b.norm is not None or b.pool is not None:
            raise ValueError("zoo_twin mirrors synapse + neuron chains only")
        lin = layer.Linear(b.synapse.in_features, b.synapse.out_features, bias=b.synapse.bias is not None,
                           step_mode=step_mode)
        lin.load_state_dict(b.synapse.state_dict())
        mods.append(lin)
        if b.neuron is not None:
            mods.append(twin(copy.deepcopy(b.neuron), step_mode))
    return nn.Sequential(*mods)
