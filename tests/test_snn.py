"""Our multi-step LIF against a hand-written loop, snnTorch's Leaky and SpikingJelly's LIFNode."""

from __future__ import annotations

import math

import pytest
import torch

from spikepipe.snn import LIF, NeuronConfigError, TimeDistributed, spike, surrogate_grad


def reference_lif(x: torch.Tensor, beta: float, thr: float, reset: str, fire_on_equal: bool) -> torch.Tensor:
    u = [0.0] * x[0].numel()
    out = []
    for t in range(x.shape[0]):
        row = []
        for i, v in enumerate(x[t].flatten().tolist()):
            u[i] = beta * u[i] + v
            s = 1.0 if (u[i] >= thr if fire_on_equal else u[i] > thr) else 0.0
            u[i] = u[i] - s * thr if reset == "subtract" else u[i] * (1 - s)
            row.append(s)
        out.append(row)
    return torch.tensor(out).reshape(x.shape)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("fire_on_equal", [False, True])
def test_lif_matches_hand_loop(reset: str, beta: float, fire_on_equal: bool) -> None:
    torch.manual_seed(1)
    x = torch.randint(0, 5, (6, 3, 4)).float() * 0.25  # multiples of 1/4 hit u == threshold exactly
    got = LIF(beta=beta, reset=reset, fire_on_equal=fire_on_equal)(x)
    assert torch.equal(got, reference_lif(x, beta, 1.0, reset, fire_on_equal))


def test_no_state_between_calls() -> None:
    lif = LIF(beta=0.8)
    x = torch.rand(5, 2, 3) * 2
    assert torch.equal(lif(x), lif(x))
    assert not any(isinstance(v, torch.Tensor) and v.shape == x.shape[1:] for v in vars(lif).values())


@pytest.mark.parametrize("kind", ["atan", "fast-sigmoid", "sigmoid", "triangle"])
def test_surrogate_gradient_flows_through_spike(kind: str) -> None:
    x = torch.linspace(-1.5, 1.5, 13, requires_grad=True)
    spike(x, kind, 2.0).sum().backward()
    assert torch.allclose(x.grad, surrogate_grad(kind, x.detach(), 2.0))
    assert x.grad.max() == x.grad[6]  # peaked at the threshold


def test_atan_surrogate_value() -> None:
    x = torch.tensor([0.0, 0.5])
    expect = torch.tensor([1.0, 1.0 / (1 + (math.pi / 2 * 2 * 0.5) ** 2)])
    assert torch.allclose(surrogate_grad("atan", x, 2.0), expect)


def test_learnable_beta_gets_a_gradient() -> None:
    lif = LIF(beta=0.7, learn_beta=True)
    (lif(torch.rand(4, 2, 3) * 1.5).sum()).backward()
    assert lif.beta.grad is not None and lif.beta.grad.abs() > 0


@pytest.mark.parametrize(("kw", "match"), [({"reset": "none"}, "reset"), ({"surrogate": "x"}, "surrogate"),
                                           ({"beta": 1.5}, "beta")])
def test_bad_options_are_typed_errors(kw: dict, match: str) -> None:
    with pytest.raises(NeuronConfigError, match=match):
        LIF(**kw)


def test_time_distributed_equals_per_step() -> None:
    conv = torch.nn.Conv2d(2, 3, 3)
    x = torch.rand(4, 2, 2, 6, 6)
    got = TimeDistributed(conv)(x)
    assert torch.allclose(got, torch.stack([conv(x[t]) for t in range(4)]))


def test_same_spikes_as_snntorch_leaky() -> None:
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(2)
    x = torch.rand(8, 4, 5) * 1.2
    for reset in ("subtract", "zero"):
        leaky = snn.Leaky(beta=0.6, reset_mechanism=reset, reset_delay=False)  # same-step reset, as ours
        mem = leaky.init_leaky()
        ref = []
        for t in range(x.shape[0]):
            s, mem = leaky(x[t], mem)
            ref.append(s)
        assert torch.equal(LIF(beta=0.6, reset=reset)(x), torch.stack(ref)), reset


def test_same_spikes_as_spikingjelly_lifnode() -> None:
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import neuron

    torch.manual_seed(3)
    x = torch.rand(8, 4, 5) * 1.2
    node = neuron.LIFNode(tau=2.0, decay_input=False, v_reset=None, step_mode="m")
    assert torch.equal(LIF(beta=0.5, fire_on_equal=True)(x), node(x))
