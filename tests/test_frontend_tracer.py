"""Two independent tracers (spikepipe.frontend.trace and the test-only oracle tests/oracle_tracer) must agree with each
other and across libraries: the zoo's snn-cnn architecture written with our LIF, in snnTorch's tutorial style
(time loop in forward, explicit mem or init_hidden=True) and in SpikingJelly's multi-step style gives equal
LayerSpecs except the neuron fields that truly differ. Unsupported modules and ops raise a clear error."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spikepipe import zoo
from spikepipe.frontend import UnsupportedLayerError, trace
from spikepipe.ir import LayerSpec
from spikepipe.snn import LIF, TimeDistributed
from oracle_tracer import trace_generic

T, B = 3, 2


def _frontend(model: nn.Module, x: torch.Tensor) -> list[LayerSpec]:
    """The product's trace without LayerSpec.modules, which the oracle does not record."""
    return [replace(s, modules=()) for s in trace(model, x)]


TRACERS = {"frontend": _frontend, "tracer": trace_generic}


def _nameless(layers: list[LayerSpec], keep_neuron: bool = True) -> list[LayerSpec]:
    return [replace(s, name="", neuron=s.neuron if keep_neuron else None, modules=()) for s in layers]


def _zoo_cnn() -> tuple[nn.Module, torch.Tensor]:
    return zoo.build("snn-cnn", timesteps=T, batch=B)


class OwnCNN(nn.Module):
    """snn-cnn's architecture with our LIF, written as a plain module (not an SNNNet)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = TimeDistributed(nn.Conv2d(1, 32, 3, padding=1, bias=False))
        self.b1 = TimeDistributed(nn.BatchNorm2d(32))
        self.l1 = LIF(beta=0.9)
        self.c2 = TimeDistributed(nn.Conv2d(32, 64, 3, padding=1, bias=False))
        self.b2 = TimeDistributed(nn.BatchNorm2d(64))
        self.l2 = LIF(beta=0.9)
        self.f1 = nn.Linear(64 * 7 * 7, 256, bias=False)
        self.l3 = LIF(beta=0.9)
        self.f2 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[:2]
        y = self.l1(self.b1(self.c1(x)))
        y = F.max_pool2d(y.flatten(0, 1), 2).reshape(t, b, 32, 14, 14)
        y = self.l2(self.b2(self.c2(y)))
        y = F.max_pool2d(y.flatten(0, 1), 2).reshape(t, b, -1)
        return self.f2(self.l3(self.f1(y))).mean(0)


def snntorch_cnn(init_hidden: bool) -> nn.Module:
    snn = pytest.importorskip("snntorch")

    class Net(nn.Module):  # snnTorch tutorial style: time loop in forward(), single-step Leaky
        def __init__(self) -> None:
            super().__init__()
            kw = {"beta": 0.9, "init_hidden": init_hidden}
            self.conv1, self.bn1, self.lif1 = nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), \
                snn.Leaky(**kw)
            self.conv2, self.bn2, self.lif2 = nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), \
                snn.Leaky(**kw)
            self.fc1, self.lif3 = nn.Linear(64 * 7 * 7, 256, bias=False), snn.Leaky(**kw)
            self.fc2 = nn.Linear(256, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not init_hidden:
                mem1, mem2, mem3 = self.lif1.init_leaky(), self.lif2.init_leaky(), self.lif3.init_leaky()
            out = []
            for step in range(x.size(0)):
                if init_hidden:
                    s1 = self.lif1(self.bn1(self.conv1(x[step])))
                    s2 = self.lif2(self.bn2(self.conv2(F.max_pool2d(s1, 2))))
                    s3 = self.lif3(self.fc1(F.max_pool2d(s2, 2).view(x.size(1), -1)))
                else:
                    s1, mem1 = self.lif1(self.bn1(self.conv1(x[step])), mem1)
                    s2, mem2 = self.lif2(self.bn2(self.conv2(F.max_pool2d(s1, 2))), mem2)
                    s3, mem3 = self.lif3(self.fc1(F.max_pool2d(s2, 2).view(x.size(1), -1)), mem3)
                out.append(self.fc2(s3))
            return torch.stack(out).mean(0)

    return Net()


def spikingjelly_cnn(container: bool, decay_input: bool = False) -> nn.Module:
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    def lif() -> nn.Module:  # tau = 10 <=> beta = 0.9; decay_input=False keeps the threshold at 1
        return neuron.LIFNode(tau=10.0, decay_input=decay_input, v_reset=None, surrogate_function=surrogate.ATan())

    if container:  # SeqToANNContainer wrapping plain torch layers
        net = nn.Sequential(
            layer.SeqToANNContainer(nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32)), lif(),
            layer.SeqToANNContainer(nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1, bias=False),
                                    nn.BatchNorm2d(64)), lif(),
            layer.SeqToANNContainer(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 7 * 7, 256, bias=False)), lif(),
            layer.SeqToANNContainer(nn.Linear(256, 10)))
    else:  # SpikingJelly's own stateless wrappers, switched to multi-step with functional.set_step_mode
        net = nn.Sequential(
            layer.Conv2d(1, 32, 3, padding=1, bias=False), layer.BatchNorm2d(32), lif(), layer.MaxPool2d(2),
            layer.Conv2d(32, 64, 3, padding=1, bias=False), layer.BatchNorm2d(64), lif(), layer.MaxPool2d(2),
            layer.Flatten(), layer.Linear(64 * 7 * 7, 256, bias=False), lif(), layer.Linear(256, 10))
    functional.set_step_mode(net, "m")
    return net


VARIANTS = {
    "own": lambda: OwnCNN(),
    "snntorch-explicit-mem": lambda: snntorch_cnn(False),
    "snntorch-init-hidden": lambda: snntorch_cnn(True),
    "spikingjelly-layers": lambda: spikingjelly_cnn(False),
    "spikingjelly-container": lambda: spikingjelly_cnn(True),
}


def _example() -> torch.Tensor:
    return (torch.rand(T, B, 1, 28, 28) < 0.3).float()


@pytest.mark.parametrize("tracer", TRACERS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_library_versions_give_the_zoo_layers(variant: str, tracer: str) -> None:
    ref = _nameless(trace(*_zoo_cnn()))
    got = _nameless(TRACERS[tracer](VARIANTS[variant](), _example()))
    assert _nameless(got, keep_neuron=False) == _nameless(ref, keep_neuron=False)
    for g, r in zip(got, ref, strict=True):
        if r.neuron is None:
            assert g.neuron is None
            continue
        assert (g.neuron.beta, g.neuron.threshold, g.neuron.reset, g.neuron.surrogate) == (0.9, 1.0, "subtract",
                                                                                          "atan")
        # the user's neuron semantics are kept: SpikingJelly fires at u >= threshold
        assert g.neuron.fire_on_equal is variant.startswith("spikingjelly")


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_two_tracers_agree(variant: str) -> None:
    model = VARIANTS[variant]()
    assert _frontend(model, _example()) == trace_generic(model, _example())


@pytest.mark.parametrize("name", zoo.names())
def test_generic_trace_of_an_snnnet_equals_frontend(name: str) -> None:
    model, x = zoo.build(name, batch=1, timesteps=2)
    assert trace_generic(model, x) == _frontend(model, x)


def test_tracing_leaves_the_model_untouched() -> None:
    model, x = _zoo_cnn()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trace_generic(model, x)
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm running stats did not move


@pytest.mark.parametrize("decay_input", [False, True])
@pytest.mark.parametrize("v_reset", [None, 0.0])
def test_spikingjelly_lif_mapping_reproduces_its_spikes(decay_input: bool, v_reset: float | None) -> None:
    """Oracle: our LIF with the NeuronSpec read from a LIFNode fires exactly when the LIFNode does."""
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional, neuron

    from oracle_tracer import neuron_spec_of

    sj = neuron.LIFNode(tau=2.0, decay_input=decay_input, v_threshold=0.75, v_reset=v_reset, step_mode="m")
    spec = neuron_spec_of(sj, "lif")
    ours = LIF(beta=spec.beta, threshold=spec.threshold, reset=spec.reset, fire_on_equal=spec.fire_on_equal)
    torch.manual_seed(0)
    x = torch.rand(16, 4, 50) * 1.5
    with torch.no_grad():
        want = sj(x)
        functional.reset_net(sj)
        got = ours(x)
    assert want.sum() > 0
    assert torch.equal(got, want)


def test_snntorch_leaky_parameters_are_read() -> None:
    snn = pytest.importorskip("snntorch")
    from snntorch import surrogate

    from oracle_tracer import neuron_spec_of

    spec = neuron_spec_of(snn.Leaky(beta=0.8, threshold=0.5, reset_mechanism="zero", learn_beta=True,
                                    spike_grad=surrogate.fast_sigmoid()), "lif")
    assert (spec.beta, spec.threshold, spec.reset, spec.surrogate, spec.learn_beta, spec.fire_on_equal) == (
        0.8, 0.5, "zero", "fast-sigmoid", True, False)


# ---------------------------------------------------------------- structure


class Residual(nn.Module):
    """A residual block written with functional ops: x + y, F.avg_pool2d, flatten; a time loop over a Conv2d."""

    def __init__(self) -> None:
        super().__init__()
        self.c0, self.n0 = nn.Conv2d(3, 8, 3, padding=1), LIF()
        self.c1, self.n1 = nn.Conv2d(8, 8, 3, padding=1), LIF()
        self.c2, self.n2 = nn.Conv2d(8, 8, 3, padding=1), LIF()
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def td(m: nn.Module, v: torch.Tensor) -> torch.Tensor:  # a python time loop over a stateless module
            return torch.stack([m(v[t]) for t in range(v.shape[0])])

        a = self.n0(td(self.c0, x))
        b = self.n1(td(self.c1, a))
        c = self.n2(td(self.c2, b) + a)
        p = torch.stack([F.avg_pool2d(c[t], 2) for t in range(c.shape[0])])
        return self.fc(p.flatten(2)).mean(0)


@pytest.mark.parametrize("tracer", TRACERS)
def test_functional_residual_and_time_loop(tracer: str) -> None:
    x = torch.rand(T, B, 3, 8, 8)
    layers = TRACERS[tracer](Residual(), x)
    assert [s.name for s in layers] == ["c0", "c1", "c2", "fc"]  # one layer per conv despite T calls
    assert [s.inputs for s in layers] == [(-1,), (0,), (1,), (2,)]
    assert layers[0].in_shape == (3, 8, 8) and layers[0].out_shape == (8, 8, 8)
    kinds = [(p.kind, p.source) for p in layers[2].post_ops]
    assert kinds[0] == ("add", 0) and kinds[1][0] == "avgpool"
    assert layers[2].skip_sources == (0,)
    assert layers[3].in_shape == (128,)


class _Wrap(nn.Module):
    def __init__(self, inner: nn.Module, fn=None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.inner = inner
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.flatten(0, 1))
        return self.fn(self, y) if self.fn else self.inner(y)


def _gru_net() -> tuple[nn.Module, torch.Tensor]:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(6, 6)
            self.rnn = nn.GRU(6, 6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.rnn(self.fc(x))[0]

    return Net(), torch.rand(T, B, 6)


UNSUPPORTED = {
    "gru": (_gru_net, "rnn", "GRU"),
    "convtranspose": (lambda: (_Wrap(nn.ConvTranspose2d(4, 4, 3)), torch.rand(T, B, 1, 8, 8)), "inner", "ConvTranspose2d"),
    "relu": (lambda: (_Wrap(nn.ReLU()), torch.rand(T, B, 1, 8, 8)), "relu", "inner"),
    "concat": (lambda: (_Wrap(nn.Conv2d(4, 4, 1), lambda s, y: torch.cat([y, s.inner(y)], 1)),
                        torch.rand(T, B, 1, 8, 8)), "cat", "_Wrap"),
}


@pytest.mark.parametrize("tracer", TRACERS)
@pytest.mark.parametrize("case", UNSUPPORTED)
def test_unsupported_module_gives_a_clear_error(case: str, tracer: str) -> None:
    build, *needles = UNSUPPORTED[case]
    model, x = build()
    with pytest.raises(UnsupportedLayerError) as err:
        TRACERS[tracer](model, x)
    msg = str(err.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg


@pytest.mark.parametrize("tracer", TRACERS)
def test_unsupported_library_neurons_are_named(tracer: str) -> None:
    snn = pytest.importorskip("snntorch")
    model = nn.Sequential(nn.Linear(4, 4), snn.RSynaptic(alpha=0.9, beta=0.8, linear_features=4, init_hidden=True))
    with pytest.raises(UnsupportedLayerError, match=r"1.*RSynaptic"):
        TRACERS[tracer](model, torch.rand(T, B, 4))


def test_weight_sharing_is_refused() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.n = nn.Linear(4, 4), LIF()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.n(self.fc(x)))

    with pytest.raises(UnsupportedLayerError, match="fc"):
        trace_generic(Shared(), torch.rand(T, B, 4))


@pytest.mark.parametrize("tracer", TRACERS)
def test_spikingjelly_default_decay_input_scales_the_threshold(tracer: str) -> None:
    layers = TRACERS[tracer](spikingjelly_cnn(False, decay_input=True), _example())
    assert layers[0].neuron is not None and layers[0].neuron.threshold == pytest.approx(10.0)
    assert layers[0].neuron.beta == pytest.approx(0.9)


class _EarlyTap(nn.Module):
    """A later layer reads layer c0's spikes before c0's pooling: a branch inside a layer, which LayerSpec (one
    output per layer) cannot express. (The same pooling written twice is one node, and is accepted.)"""

    def __init__(self, via_add: bool) -> None:
        super().__init__()
        self.via_add = via_add
        self.c0, self.n0 = TimeDistributed(nn.Conv2d(1, 4, 3, padding=1)), LIF()
        self.c1, self.n1 = TimeDistributed(nn.Conv2d(4, 4, 3, padding=1)), LIF()
        self.c2 = TimeDistributed(nn.Conv2d(4, 4, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.n0(self.c0(x))
        p = torch.stack([F.max_pool2d(a[t], 2) for t in range(a.shape[0])])
        b = self.n1(self.c1(p))
        if self.via_add:  # a second, different pooling of the same spikes, added to layer c1
            return b + F.avg_pool2d(a.flatten(0, 1), 2).reshape(b.shape)
        return self.c2(a) if b is not None else b


@pytest.mark.parametrize("via_add", [False, True])
def test_reading_a_layer_before_its_post_ops_is_refused(via_add: bool) -> None:
    with pytest.raises(UnsupportedLayerError, match="c0"):
        trace_generic(_EarlyTap(via_add), torch.rand(T, B, 1, 8, 8))
