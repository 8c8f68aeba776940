"""Front end against independent oracles: torch's FLOP counter on the real modules, shapes seen by plain forward
hooks on the real model, the zoo's declared skip structure, and clear errors for anything unsupported."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from spikepipe import zoo
from spikepipe.costs import build_task_graph
from spikepipe.frontend import TraceError, UnsupportedLayerError, trace
from spikepipe.ir import SpikePipeError
from spikepipe.snn import LIF, TimeDistributed

T, B = 2, 1


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


class OddConvs(nn.Module):
    """Grouped, dilated, strided, non-square and 'same'-padded convolutions, plus a functional conv."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(4, 8, (3, 5), stride=(2, 1), padding=(1, 2), groups=2)
        self.lif_a = LIF()
        self.b = nn.Conv2d(8, 8, 3, padding="same", dilation=2, groups=8, bias=True)
        self.lif_b = LIF()
        self.w = nn.Parameter(torch.randn(6, 8, 1, 1))
        self.lif_c = LIF()
        self.fc = nn.Linear(6 * 4 * 6, 5, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[:2]
        y = self.a(x.flatten(0, 1))
        y = self.lif_a(y.view(t, b, *y.shape[1:]))
        y = self.b(y.flatten(0, 1))
        y = self.lif_b(y.view(t, b, *y.shape[1:]))
        y = F.conv2d(y.flatten(0, 1), self.w, stride=2)
        y = self.lif_c(y.view(t, b, *y.shape[1:]))
        return self.fc(y.flatten(2))


def _cases() -> list[tuple[str, nn.Module, torch.Tensor]]:
    out = []
    for name in zoo.names():
        model, x = zoo.build(name, timesteps=T, batch=B)
        out.append((name, model, x))
    torch.manual_seed(0)
    out.append(("odd-convs", OddConvs(), torch.rand(T, B, 4, 16, 12)))
    return out


_SLOW = {"vgg16", "resnet18"}  # over ~5 s on a shared 2-core machine; `pytest -m slow` runs them
CASES = [pytest.param(*c, id=c[0], marks=[pytest.mark.slow] if c[0] in _SLOW else []) for c in _cases()]


def _real_modules(model: nn.Module, layers) -> list[tuple[nn.Module | None, torch.Tensor | None]]:
    """The module of each layer (None for functional convs, priced through their weight)."""
    mods = []
    for s in layers:
        try:
            mods.append((model.get_submodule(s.name), None))
        except AttributeError:
            mods.append((None, dict(model.named_parameters())[s.name]))
    return mods


@pytest.mark.parametrize(("name", "model", "x"), CASES)
def test_traced_shapes_equal_what_modules_produce(name: str, model: nn.Module, x: torch.Tensor) -> None:
    layers = trace(model, x)
    seen: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    hooks = []
    for s in layers:
        try:
            mod = model.get_submodule(s.name)
        except AttributeError:
            continue
        nd = 3 if s.op == "conv" else 1

        def hook(_m, args, out, key=s.name, nd=nd) -> None:
            seen[key] = (tuple(args[0].shape[-nd:]), tuple(out.shape[-nd:]))

        hooks.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    assert seen, "no module hooks fired"
    for s in layers:
        if s.name in seen:
            assert (s.in_shape, s.out_shape) == seen[s.name], s.name
    # what a layer hands on has as many elements as its consumer reads
    for s in layers:
        for src in s.inputs:
            if src >= 0:
                assert layers[src].output_shape == s.in_shape


@pytest.mark.parametrize(("name", "model", "x"), CASES)
def test_gemm_lowering_reproduces_torch_flop_count(name: str, model: nn.Module, x: torch.Tensor) -> None:
    layers = trace(model, x)
    graph = build_task_graph(layers, batch=B, timesteps=T)
    for s, (mod, weight) in zip(layers, _real_modules(model, layers), strict=True):
        inp = torch.rand(T * B, *s.in_shape, requires_grad=True)
        if s.groups > 1:
            # torch's counter ignores `groups` in the weight gradient of a convolution; run the grouped conv as
            # its `groups` ungrouped convolutions on channel slices, which it counts exactly
            w = (mod.weight if mod is not None else weight).detach().clone().requires_grad_(True)
            cin, cout = s.in_shape[0] // s.groups, s.out_shape[0] // s.groups

            def fwd(w=w, inp=inp, s=s, cin=cin, cout=cout) -> torch.Tensor:
                return torch.cat([F.conv2d(inp[:, g * cin:(g + 1) * cin], w[g * cout:(g + 1) * cout],
                                           stride=s.stride, padding=s.padding, dilation=s.dilation)
                                  for g in range(s.groups)], dim=1)
        elif mod is not None:
            def fwd(mod=mod, inp=inp) -> torch.Tensor:
                return mod(inp)
        else:
            def fwd(weight=weight, inp=inp, s=s) -> torch.Tensor:
                return F.conv2d(inp, weight, stride=s.stride, padding=s.padding, dilation=s.dilation)
        f_task, b_task, w_task = (graph.task(f"{k}{s.index}") for k in "FBW")
        assert 2 * sum(g.macs for g in f_task.gemms) == _flops(fwd), f"F{s.index} ({s.name})"
        out = fwd()
        assert tuple(out.shape[1:]) == s.out_shape
        # backward: the input gradient (B) unless the layer reads only the network input, and the weight
        # gradient (W); torch counts exactly the gradients that autograd asks for
        inp.requires_grad_(bool(b_task.gemms))
        out = fwd()
        grad = torch.ones_like(out)
        bwd = _flops(lambda out=out, grad=grad: out.backward(grad))
        assert 2 * sum(g.macs for g in (*b_task.gemms, *w_task.gemms)) == bwd, f"B/W{s.index} ({s.name})"


def test_resnet18_graph_has_its_skip_edges() -> None:
    model, x = zoo.build("resnet18", timesteps=T, batch=B)
    layers = trace(model, x)
    graph = build_task_graph(layers, batch=4, timesteps=T)
    edges = {(u, v) for u, v, _ in graph.edges}
    residual_pairs = [(r, i) for i, r in enumerate(model.residuals) if r is not None]
    assert len(residual_pairs) == 8  # one per basic block
    for src, dst in residual_pairs:
        assert (f"F{src}", f"F{dst}") in edges
        assert (f"B{dst}", f"B{src}") in edges
    for i, src in enumerate(model.sources):
        if src >= 0:
            assert (f"F{src}", f"F{i}") in edges and (f"B{i}", f"B{src}") in edges
    projections = [i for i, blk in enumerate(model.blocks) if blk.neuron is None and i != len(model.blocks) - 1]
    assert len(projections) == 3 and all(layers[i].kernel == (1, 1) for i in projections)
    assert sum(1 for s in layers if s.skip_sources) >= 8


def test_generic_residual_network_with_functional_ops() -> None:
    class Res(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = TimeDistributed(nn.Conv2d(3, 8, 3, padding=1))
            self.n1 = LIF()
            self.c2 = TimeDistributed(nn.Conv2d(8, 8, 3, padding=1))
            self.bn2 = TimeDistributed(nn.BatchNorm2d(8))
            self.n2 = LIF()
            self.fc = nn.Linear(8 * 4 * 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = self.n1(self.c1(x))
            y = self.n2(self.bn2(self.c2(a)) + a)
            t, b = y.shape[:2]
            y = F.avg_pool2d(y.flatten(0, 1), 2)
            return self.fc(y.flatten(1)).view(t, b, -1).mean(0)

    layers = trace(Res(), torch.rand(2, 1, 3, 8, 8))
    assert [s.name for s in layers] == ["c1.module", "c2.module", "fc"]
    kinds = [(p.kind, p.source) for p in layers[1].post_ops]
    assert kinds == [("batchnorm", None), ("add", 0), ("avgpool", None), ("flatten", None)]
    assert layers[1].post_ops[2].kernel == (2, 2) and layers[1].output_shape == (128,)
    assert layers[1].skip_sources == (0,) and layers[1].inputs == (0,)


class _Seq(nn.Module):
    def __init__(self, middle: nn.Module) -> None:
        super().__init__()
        self.conv = TimeDistributed(nn.Conv2d(1, 4, 3, padding=1))
        self.middle = middle
        self.lif = LIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif(self.middle(self.conv(x)))


class _Squarer(nn.Module):  # x * 2 is a supported scale; x * x (one layer times itself) is not
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


@pytest.mark.parametrize(("middle", "pattern"), [
    (TimeDistributed(nn.ReLU()), r"middle\.module \(ReLU\).*'relu'"),
    (TimeDistributed(nn.ConvTranspose2d(4, 4, 3)), r"middle\.module \(ConvTranspose2d\) has "
                                                   r"weights.*supported: Conv1d, Conv2d"),
    (nn.LSTM(4, 4), r"middle \(LSTM\) has weights"),
    (_Squarer(), r"middle \(_Squarer\).*'mul'"),
    (TimeDistributed(nn.GroupNorm(2, 4)), r"middle\.module \(GroupNorm\) has "
                                          r"weights"),
])
def test_unsupported_modules_give_a_clear_error(middle: nn.Module, pattern: str) -> None:
    with pytest.raises(UnsupportedLayerError, match=pattern) as info:
        trace(_Seq(middle), torch.rand(2, 1, 1, 6, 6))
    assert isinstance(info.value, SpikePipeError)
    assert "\n" not in str(info.value)


def test_joining_branches_other_than_by_add_is_refused() -> None:
    class Cat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)
            self.lif = LIF()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lif(torch.cat([self.a(x), self.b(x)], dim=-1))

    with pytest.raises(UnsupportedLayerError, match="combines the outputs of layers a, b"):
        trace(Cat(), torch.rand(2, 1, 4))


def test_model_that_fails_on_its_input_is_a_trace_error() -> None:
    model = nn.Sequential(nn.Linear(5, 3), LIF())
    with pytest.raises(TraceError, match=r"example input of shape \(2, 1, 4\)"):
        trace(model, torch.rand(2, 1, 4))
    with pytest.raises(TraceError, match="nn.Module"):
        trace(object(), torch.rand(2))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", zoo.names())
def test_layer_modules_cover_every_parameter_once(name):
    """LayerSpec.modules names the modules of each layer: together they own every parameter of the model
    (the trainer groups parameters per layer from them), and no module belongs to two layers."""
    model, x = zoo.build(name, timesteps=T, batch=B)
    layers = trace(model, x)
    owned = [p for s in layers for p in s.modules]
    assert len(owned) == len(set(owned))
    for s in layers:
        assert s.modules[0] == s.name
    params = {n for n, _ in model.named_parameters()}
    covered = {n for n in params if any(n.startswith(m + ".") for m in owned)}
    assert covered == params
