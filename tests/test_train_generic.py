"""The whole-model exact trainer on users' own modules (SpikingJelly multi-step, snnTorch time loops) against two
independent oracles: the block-wise reference trainer (tests/pipeline_reference.py) running the same network cut
into blocks by hand, and plain autograd + torch.optim at zero delay."""

from __future__ import annotations

import copy

import pytest
import torch
from pipeline_reference import BlockwisePipeline
from test_train_pipeline import _generated, layerpipe_hand, sequential_lag0
from torch import nn

from spikepipe.frontend import trace
from spikepipe.train.bptt import PlainBPTT
from spikepipe.train.model import ModelFn, reset_state
from spikepipe.train.optim import OptimConfig
from spikepipe.train.pipelined import ExactPipeline

T, B, CLASSES = 3, 4, 5


def _sj_modules() -> list[nn.Module]:
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import layer, neuron, surrogate

    torch.manual_seed(0)

    def lif() -> nn.Module:
        return neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=0.5, surrogate_function=surrogate.ATan(),
                              step_mode="m")

    return [layer.Conv2d(1, 4, 3, padding=1, step_mode="m"), lif(), layer.MaxPool2d(2, step_mode="m"),
            layer.Conv2d(4, 6, 3, padding=1, step_mode="m"), lif(), layer.MaxPool2d(2, step_mode="m"),
            layer.Flatten(step_mode="m"), layer.Linear(6 * 2 * 2, CLASSES, step_mode="m"), lif()]


class _Fresh(nn.Module):
    """A slice of a multi-step model as one block of the block protocol; neurons reset on every call."""

    def __init__(self, *mods: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        reset_state(self.body)
        return self.body(x)


class _Blocks(nn.Module):
    def __init__(self, blocks: list[nn.Module], residuals: tuple[int | None, ...] | None = None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.sources = tuple(range(-1, len(blocks) - 1))
        self.residuals = residuals or (None,) * len(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        for i, b in enumerate(self.blocks):
            r = self.residuals[i]
            outs.append(b(outs[-1] if outs else x) if r is None else b(outs[-1], residual=outs[r]))
        return outs[-1].mean(0)


class _FreshAdd(nn.Module):
    """A synaptic op, then + the residual, then a neuron: one block of the block protocol (neuron reset per call)."""

    def __init__(self, syn: nn.Module, lif: nn.Module) -> None:
        super().__init__()
        self.syn, self.lif = syn, lif

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        reset_state(self.lif)
        return self.lif(self.syn(x) + residual)


def _sj_lif() -> nn.Module:
    from spikingjelly.activation_based import neuron, surrogate

    return neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=0.5, surrogate_function=surrogate.ATan(),
                          step_mode="m")


def sj_residual_pair() -> tuple[nn.Module, nn.Module]:
    """A SpikingJelly multi-step module whose middle layer adds the first layer's spikes before its neuron (a
    residual add inside a layer, not at a module boundary), and the same modules as blocks with a residual."""
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import layer

    torch.manual_seed(0)
    lif = _sj_lif

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.flat = layer.Flatten(step_mode="m")
            self.fc0, self.lif0 = layer.Linear(64, 16, step_mode="m"), lif()
            self.fc1, self.lif1 = layer.Linear(16, 16, step_mode="m"), lif()
            self.fc2, self.lif2 = layer.Linear(16, CLASSES, step_mode="m"), lif()
            with torch.no_grad():
                self.fc0.weight.mul_(2.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h0 = self.lif0(self.fc0(self.flat(x)))
            return self.lif2(self.fc2(self.lif1(self.fc1(h0) + h0)))

    user = Net()
    r = copy.deepcopy(user)
    return user, _Blocks([_Fresh(r.flat, r.fc0, r.lif0), _FreshAdd(r.fc1, r.lif1), _Fresh(r.fc2, r.lif2)],
                         residuals=(None, 0, None))


def sj_pair() -> tuple[nn.Module, nn.Module]:
    """SpikingJelly nn.Sequential in multi-step mode, and the same modules cut by hand at its synaptic ops."""
    mods = _sj_modules()
    user = nn.Sequential(*mods)
    ref = copy.deepcopy(mods)
    return user, _Blocks([_Fresh(*ref[0:3]), _Fresh(*ref[3:7]), _Fresh(*ref[7:9])])


class _StLayer(nn.Module):
    """One layer of the snnTorch model below, run over all T (layer-major instead of the model's time-major)."""

    def __init__(self, syn: nn.Module, lif: nn.Module, pool: bool, flatten: bool) -> None:
        super().__init__()
        self.syn, self.lif, self.pool, self.flatten = syn, lif, pool, flatten

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        mem = self.lif.init_leaky()
        out = []
        for t in range(x.shape[0]):
            xt = x[t].flatten(1) if self.flatten else x[t]
            spk, mem = self.lif(self.syn(xt), mem)
            out.append(nn.functional.max_pool2d(spk, 2) if self.pool else spk)
        return torch.stack(out)


def st_pair() -> tuple[nn.Module, nn.Module]:
    """An snnTorch tutorial-style model (time loop in forward, single-step Leaky), and the same modules as blocks."""
    snn = pytest.importorskip("snntorch")
    from snntorch import surrogate

    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            grad = surrogate.atan()
            self.conv1, self.lif1 = nn.Conv2d(1, 4, 3, padding=1), snn.Leaky(beta=0.6, threshold=0.5,
                                                                             spike_grad=grad)
            self.conv2, self.lif2 = nn.Conv2d(4, 6, 3, padding=1), snn.Leaky(beta=0.6, threshold=0.5,
                                                                             spike_grad=grad)
            self.fc, self.lif3 = nn.Linear(6 * 2 * 2, CLASSES), snn.Leaky(beta=0.6, threshold=0.5, spike_grad=grad)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m1, m2, m3 = self.lif1.init_leaky(), self.lif2.init_leaky(), self.lif3.init_leaky()
            rec = []
            for t in range(x.size(0)):
                s1, m1 = self.lif1(self.conv1(x[t]), m1)
                s2, m2 = self.lif2(self.conv2(nn.functional.max_pool2d(s1, 2)), m2)
                s3, m3 = self.lif3(self.fc(nn.functional.max_pool2d(s2, 2).flatten(1)), m3)
                rec.append(s3)
            return torch.stack(rec), m3

    user = Net()
    r = copy.deepcopy(user)
    # block l: synaptic op l, its neuron, and the pooling before the next synaptic op
    blocks = [_StLayer(r.conv1, r.lif1, True, False), _StLayer(r.conv2, r.lif2, True, False),
              _StLayer(r.fc, r.lif3, False, True)]
    return user, _Blocks(blocks)


class _FnLayer(nn.Module):
    """A functional synaptic op on its own weight (and bias), then a neuron, as one block."""

    def __init__(self, w: nn.Parameter, b: nn.Parameter | None, lif: nn.Module, flatten: bool) -> None:
        super().__init__()
        self.w, self.b, self.lif, self.flatten = w, b, lif, flatten

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        reset_state(self.lif)
        return self.lif(nn.functional.linear(x.flatten(2) if self.flatten else x, self.w, self.b))


def sj_functional_pair() -> tuple[nn.Module, nn.Module]:
    """A SpikingJelly multi-step module whose first and last synaptic ops are functional calls on its own
    parameters (no entry module), and the same as blocks."""
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import layer

    torch.manual_seed(0)
    lif = _sj_lif

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w0, self.lif0 = nn.Parameter(torch.randn(16, 64) * 0.3), lif()
            self.fc1, self.lif1 = layer.Linear(16, 16, step_mode="m"), lif()
            self.w2, self.b2, self.lif2 = nn.Parameter(torch.randn(CLASSES, 16) * 0.3), nn.Parameter(
                torch.zeros(CLASSES)), lif()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.lif1(self.fc1(self.lif0(nn.functional.linear(x.flatten(2), self.w0))))
            return self.lif2(nn.functional.linear(h, self.w2, self.b2))

    user = Net()
    r = copy.deepcopy(user)
    return user, _Blocks([_FnLayer(r.w0, None, r.lif0, True), _Fresh(r.fc1, r.lif1),
                          _FnLayer(r.w2, r.b2, r.lif2, False)])


PAIRS = {"spikingjelly": sj_pair, "snntorch": st_pair, "spikingjelly-residual": sj_residual_pair,
         "spikingjelly-functional": sj_functional_pair}


def data(n: int, seed: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(T, B, 1, 8, 8, generator=g) * 1.5, torch.randint(0, CLASSES, (B,), generator=g))
            for _ in range(n)]


def model_fn(user: nn.Module) -> ModelFn:
    ex = torch.rand(T, 2, 1, 8, 8)
    return ModelFn(user, ex, trace(_plif_as_lif(user), ex[:, :1]))


def _plif_as_lif(model: nn.Module) -> nn.Module:
    """The same module paths with PLIF swapped for LIF, for a front end that does not cost PLIF yet: the layer
    map needs only where the synaptic ops are."""
    if not any(type(m).__name__ == "ParametricLIFNode" for m in model.modules()):
        return model
    from spikingjelly.activation_based import neuron

    twin = copy.deepcopy(model)
    for name, m in list(twin.named_children()):
        if type(m).__name__ == "ParametricLIFNode":
            setattr(twin, name, neuron.LIFNode(step_mode="m"))
    return twin


def _values(weights: list[dict]) -> list[torch.Tensor]:
    return [w for ws in weights for w in ws.values()]


SCHEDULES = {"layerpipe-hand": lambda: layerpipe_hand(3), "pipedream-3": lambda: _generated("pipedream", 3, 3),
             "spikepipe-2": lambda: _generated("spikepipe", 2, 3), "spikepipe-3": lambda: _generated("spikepipe", 3, 3)}


@pytest.mark.parametrize("lib", sorted(PAIRS))
@pytest.mark.parametrize("sched_name", sorted(SCHEDULES))
@pytest.mark.parametrize("stash,compensation", [(True, "none"), (False, "none"), (True, "spectrain"),
                                                (False, "pipemare")])
def test_user_model_equals_blockwise_reference(lib, sched_name, stash, compensation):
    user, blocks = PAIRS[lib]()
    sched = SCHEDULES[sched_name]()
    n = 2 * sched.max_lag + 4
    batches = data(n)
    cfg = OptimConfig(name="adam", lr=5e-3)
    fn = model_fn(user)
    assert fn.num_layers == 3
    got = ExactPipeline(fn, cfg, sched, total_steps=n, stash=stash, compensation=compensation)
    ref = BlockwisePipeline(blocks, cfg, sched, total_steps=n, stash=stash, compensation=compensation)
    s_got = got.run_epoch(lambda i: batches[i], n)
    s_ref = ref.run_epoch(lambda i: batches[i], n)
    assert got.measured_delays == ref.measured_delays == sched.gradient_delays
    assert s_got.losses == pytest.approx(s_ref.losses, rel=1e-5, abs=1e-6)
    moved = 0
    for a, b, w0 in zip(_values(got.weights), _values(ref.weights), _values(fn.initial_weights()), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        moved += int(not torch.equal(a, w0))
    assert moved > 0  # the runs trained: equality is not two untouched models


@pytest.mark.parametrize("sched_name", ["layerpipe-hand", "spikepipe-2"])
@pytest.mark.parametrize("stash", [True, False])
def test_builtin_network_equals_blockwise_reference(sched_name, stash):
    from spikepipe import zoo

    net, _ = zoo.build("snn-mlp", timesteps=3, batch=B, num_classes=10, seed=0)
    layers = len(net.blocks)
    sched = layerpipe_hand(layers) if sched_name == "layerpipe-hand" else _generated("spikepipe", 2, layers)
    n = 2 * sched.max_lag + 3
    g = torch.Generator().manual_seed(5)
    batches = [(torch.rand(3, B, 64, generator=g), torch.randint(0, 10, (B,), generator=g)) for _ in range(n)]
    cfg = OptimConfig(name="sgd", lr=0.05)
    got = ExactPipeline(copy.deepcopy(net), cfg, sched, total_steps=n, stash=stash)
    ref = BlockwisePipeline(copy.deepcopy(net), cfg, sched, total_steps=n, stash=stash)
    got.run_epoch(lambda i: batches[i], n)
    ref.run_epoch(lambda i: batches[i], n)
    assert got.measured_delays == ref.measured_delays
    for a, b in zip(_values(got.weights), _values(ref.weights), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _torch_optim_run(model: nn.Module, batches: list, opt_name: str) -> list[float]:
    opt = (torch.optim.Adam(model.parameters(), lr=5e-3) if opt_name == "adam"
           else torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    losses = []
    for x, y in batches:
        reset_state(model)
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        logits = out.mean(0) if out.dim() == 3 else out
        loss = nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def plif_bn_model() -> nn.Module:
    """SpikingJelly with BatchNorm and PLIF (a learnable tau outside every synaptic op)."""
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    torch.manual_seed(1)
    net = nn.Sequential(layer.Conv2d(1, 4, 3, padding=1), layer.BatchNorm2d(4),
                        neuron.ParametricLIFNode(surrogate_function=surrogate.ATan(), v_threshold=0.5),
                        layer.MaxPool2d(2), layer.Flatten(), layer.Linear(4 * 4 * 4, CLASSES),
                        neuron.ParametricLIFNode(surrogate_function=surrogate.ATan(), v_threshold=0.5))
    functional.set_step_mode(net, "m")
    return net


MODELS = {"spikingjelly": lambda: sj_pair()[0], "snntorch": lambda: st_pair()[0], "plif-bn": plif_bn_model}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("trainer", ["bptt", "lag0"])
def test_zero_delay_equals_torch_optim(name, opt, trainer):
    user = MODELS[name]()
    ref_model = copy.deepcopy(user)
    batches = data(5)
    fn = model_fn(user)
    cfg = (OptimConfig(name="adam", lr=5e-3, schedule="constant") if opt == "adam"
           else OptimConfig(name="sgd", lr=0.05, momentum=0.9, schedule="constant"))
    tr = (PlainBPTT(fn, cfg, total_steps=5) if trainer == "bptt"
          else ExactPipeline(fn, cfg, sequential_lag0(fn.num_layers), total_steps=5))
    stats = tr.run_epoch(lambda i: batches[i], 5)
    want = _torch_optim_run(ref_model, batches, opt)
    assert stats.losses == pytest.approx(want, rel=1e-5, abs=1e-6)
    fn.load_into(tr.weights)
    ref_state = ref_model.state_dict()
    for k, v in user.state_dict().items():  # parameters and BatchNorm statistics alike
        if v.is_floating_point():
            torch.testing.assert_close(v, ref_state[k], rtol=1e-5, atol=1e-6, msg=k)


def test_plif_tau_and_batchnorm_follow_their_layer_and_train():
    user = plif_bn_model()
    fn = model_fn(user)
    assert fn.map.params == (("0.weight", "0.bias", "1.weight", "1.bias", "2.w"), ("5.weight", "5.bias", "6.w"))
    before = float(user[2].w.detach())
    tr = ExactPipeline(fn, OptimConfig(name="adam", lr=1e-2), _generated("spikepipe", 2, 2), total_steps=8)
    batches = data(8)
    tr.run_epoch(lambda i: batches[i], 8)
    assert float(tr.weights[0]["2.w"]) != before
