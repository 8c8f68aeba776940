"""Real SNNs as their authors write them, for the front end's table (real_models.py) and its tests.

Each entry builds (model, example input) the way the library's documentation or model zoo does: SpikingJelly's
zoo models (multi-step, [T, B, ...]), snnTorch tutorial models (time loop in forward over a static [B, ...]
input), a SpikingJelly single-step network looped in forward, and NIR graphs (built with the `nir` package, T and B
given). Sizes are small (CIFAR / MNIST shapes, narrow widths where the zoo allows) so the table runs in minutes.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass

import torch
from token_models import sj_linear_vit, snntorch_linear_vit
from torch import nn


def stand_in_torchvision() -> None:
    """SpikingJelly's zoo imports torchvision only for `load_state_dict_from_url` (pretrained weights, unused
    here), and torchvision cannot load beside the CPU torch in this environment: stand a module in for it."""
    if "torchvision" in sys.modules:
        return
    try:
        importlib.import_module("torchvision")
        return
    except Exception:  # noqa: BLE001 - any failure to import means: use the stand-in
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]

    def load_state_dict_from_url(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("pretrained weights are not available offline")

    root, models, utils = (types.ModuleType(n) for n in ("torchvision", "torchvision.models",
                                                          "torchvision.models.utils"))
    utils.load_state_dict_from_url = load_state_dict_from_url  # type: ignore[attr-defined]
    root.models, models.utils = models, utils  # type: ignore[attr-defined]
    sys.modules.update({"torchvision": root, "torchvision.models": models, "torchvision.models.utils": utils})


def sj_zoo(name: str) -> types.ModuleType:
    stand_in_torchvision()
    return importlib.import_module(f"spikingjelly.activation_based.model.{name}")


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    build: Callable[[], tuple[nn.Module, torch.Tensor]]
    timesteps: int | None = None  # given (NIR graphs); None: read from the model
    batch: int | None = None


def _multi_step(net: nn.Module) -> nn.Module:
    from spikingjelly.activation_based import functional

    functional.set_step_mode(net, "m")
    return net


def _sj_kwargs() -> dict:
    from spikingjelly.activation_based import neuron, surrogate

    return {"spiking_neuron": neuron.IFNode, "surrogate_function": surrogate.ATan(), "detach_reset": True}


def spiking_resnet18() -> tuple[nn.Module, torch.Tensor]:
    return _multi_step(sj_zoo("spiking_resnet").spiking_resnet18(num_classes=10, **_sj_kwargs())), \
        torch.rand(4, 2, 3, 32, 32)


def sew_resnet18() -> tuple[nn.Module, torch.Tensor]:
    return _multi_step(sj_zoo("sew_resnet").sew_resnet18(cnf="ADD", num_classes=10, **_sj_kwargs())), \
        torch.rand(4, 2, 3, 32, 32)


def spiking_vgg11_bn() -> tuple[nn.Module, torch.Tensor]:
    from spikingjelly.activation_based import neuron, surrogate

    net = sj_zoo("spiking_vgg").spiking_vgg11_bn(num_classes=10, spiking_neuron=neuron.LIFNode,
                                                 surrogate_function=surrogate.ATan(), detach_reset=True)
    return _multi_step(net), torch.rand(4, 2, 3, 32, 32)


def plif_fashion_mnist() -> tuple[nn.Module, torch.Tensor]:
    from spikingjelly.activation_based import neuron, surrogate

    net = sj_zoo("parametric_lif_net").FashionMNISTNet(channels=32, spiking_neuron=neuron.ParametricLIFNode,
                                                       surrogate_function=surrogate.ATan(), detach_reset=True)
    return _multi_step(net), torch.rand(4, 2, 1, 28, 28)


def plif_dvs_gesture() -> tuple[nn.Module, torch.Tensor]:
    from spikingjelly.activation_based import neuron, surrogate

    net = sj_zoo("parametric_lif_net").DVSGestureNet(channels=16, spiking_neuron=neuron.ParametricLIFNode,
                                                     surrogate_function=surrogate.ATan(), detach_reset=True)
    return _multi_step(net), torch.rand(4, 2, 2, 128, 128)


def ms_resnet18() -> tuple[nn.Module, torch.Tensor]:
    net = sj_zoo("ms_resnet").ms_resnet18(T=4, in_channels=3, num_classes=10)
    return net, torch.rand(2, 3, 32, 32)


def spikformer() -> tuple[nn.Module, torch.Tensor]:
    net = sj_zoo("spikformer").Spikformer(T=4, in_channels=3, img_size_h=32, img_size_w=32, patch_size=4,
                                          num_classes=10, embed_dims=128, num_heads=8, depths=2)
    return net, torch.rand(2, 3, 32, 32)


def spike_driven_transformer() -> tuple[nn.Module, torch.Tensor]:
    mod = sj_zoo("spike_driven_transformer")
    net = mod.SpikeDrivenTransformer(T=4, in_channels=3, num_classes=10, embed_dims=128, num_heads=8, depths=2)
    return net, torch.rand(2, 3, 32, 32)


class SnnTorchTutorialCNN(nn.Module):
    """snnTorch tutorial 6 (convolutional SNN): static input, `steps` steps in forward, pool before the neuron."""

    def __init__(self, channels: int, size: int, steps: int = 8, kind: str = "Leaky") -> None:
        super().__init__()
        import snntorch as snn
        from snntorch import surrogate

        grad = surrogate.fast_sigmoid(slope=25)
        make = {"Leaky": lambda: snn.Leaky(beta=0.5, spike_grad=grad),
                "Synaptic": lambda: snn.Synaptic(alpha=0.9, beta=0.5, spike_grad=grad),
                "Alpha": lambda: snn.Alpha(alpha=0.9, beta=0.5, spike_grad=grad),
                "Lapicque": lambda: snn.Lapicque(beta=0.5, spike_grad=grad)}[kind]
        self.steps, self.kind = steps, kind
        self.conv1, self.lif1 = nn.Conv2d(channels, 12, 5), make()
        self.conv2, self.lif2 = nn.Conv2d(12, 64, 5), make()
        side = ((size - 4) // 2 - 4) // 2
        self.fc1, self.lif3 = nn.Linear(64 * side * side, 10), make()

    def _init(self, lif: nn.Module) -> tuple:
        if self.kind == "Synaptic":
            return tuple(lif.init_synaptic())
        if self.kind == "Alpha":
            return tuple(lif.init_alpha())
        return (lif.init_lapicque() if self.kind == "Lapicque" else lif.init_leaky(),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lifs = (self.lif1, self.lif2, self.lif3)
        states = [self._init(lif) for lif in lifs]
        spk_rec = []
        for _ in range(self.steps):
            cur = nn.functional.max_pool2d(self.conv1(x), 2)
            for i, nxt in enumerate((lambda s: nn.functional.max_pool2d(self.conv2(s), 2),
                                     lambda s: self.fc1(s.flatten(1)), None)):
                spk, *rest = lifs[i](cur, *states[i])
                states[i] = tuple(rest)
                cur = nxt(spk) if nxt is not None else spk
            spk_rec.append(cur)
        return torch.stack(spk_rec)


class SingleStepLooped(nn.Module):
    """A SpikingJelly single-step network run T times in forward over a static input (its tutorials' style)."""

    def __init__(self, steps: int = 4) -> None:
        super().__init__()
        from spikingjelly.activation_based import layer, neuron

        self.steps = steps
        self.net = nn.Sequential(layer.Conv2d(1, 16, 3, padding=1), layer.BatchNorm2d(16), neuron.IFNode(),
                                 layer.MaxPool2d(2), layer.Conv2d(16, 32, 3, padding=1), layer.BatchNorm2d(32),
                                 neuron.LIFNode(), layer.MaxPool2d(2), layer.Flatten(),
                                 layer.Linear(32 * 7 * 7, 10), neuron.LIFNode())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from spikingjelly.activation_based import functional

        out = torch.stack([self.net(x) for _ in range(self.steps)]).mean(0)
        functional.reset_net(self.net)
        return out


def klif_conv1d() -> tuple[nn.Module, torch.Tensor]:
    """Multi-step audio-style net: Conv1d, LayerNorm, KLIFNode (a BaseNode the front end measures), pooling."""
    from spikingjelly.activation_based import layer, neuron

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = layer.SeqToANNContainer(nn.Conv1d(2, 16, 5, padding=2), nn.BatchNorm1d(16))
            self.sn1 = neuron.KLIFNode(step_mode="m")
            self.pool = layer.SeqToANNContainer(nn.AvgPool1d(2))
            self.conv2 = layer.SeqToANNContainer(nn.Conv1d(16, 32, 3, padding=1))
            self.norm = nn.LayerNorm(64)
            self.sn2 = neuron.KLIFNode(step_mode="m")
            self.fc = layer.Linear(32 * 64, 20, step_mode="m")
            self.sn3 = neuron.LIFNode(step_mode="m")
            self.vote = layer.VotingLayer(2, step_mode="m")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.pool(self.sn1(self.conv1(x)))
            x = self.sn2(self.norm(self.conv2(x)))
            return self.vote(self.sn3(self.fc(x.flatten(2))))

    return Net(), torch.rand(6, 3, 2, 128)


def _snntorch(channels: int, size: int, batch: int, kind: str = "Leaky") -> Callable:
    return lambda: (SnnTorchTutorialCNN(channels, size, 8, kind), torch.rand(batch, channels, size, size))


CASES: tuple[Case, ...] = (
    Case("sj-spiking-resnet18", "SpikingJelly zoo spiking_resnet18, IFNode, multi-step", spiking_resnet18),
    Case("sj-sew-resnet18", "SpikingJelly zoo sew_resnet18 (ADD), IFNode, multi-step", sew_resnet18),
    Case("sj-spiking-vgg11-bn", "SpikingJelly zoo spiking_vgg11_bn, LIFNode, multi-step", spiking_vgg11_bn),
    Case("sj-plif-fashion-mnist", "SpikingJelly zoo PLIF FashionMNISTNet (channels 32)", plif_fashion_mnist),
    Case("sj-plif-dvs-gesture", "SpikingJelly zoo PLIF DVSGestureNet (channels 16), VotingLayer", plif_dvs_gesture),
    Case("sj-ms-resnet18", "SpikingJelly zoo ms_resnet18, T=4 inside", ms_resnet18),
    Case("sj-spikformer", "SpikingJelly zoo Spikformer (dim 128, 8 heads, depth 2), T=4 inside", spikformer),
    Case("sj-spike-driven-transformer", "SpikingJelly zoo SpikeDrivenTransformer (dim 128, depth 2)",
         spike_driven_transformer),
    Case("sj-single-step-looped", "SpikingJelly single-step net looped 4x in forward", lambda: (
        SingleStepLooped(4), torch.rand(8, 1, 28, 28))),
    Case("sj-klif-conv1d", "Conv1d + LayerNorm + KLIFNode + AvgPool1d + VotingLayer, multi-step", klif_conv1d),
    Case("snntorch-leaky-1ch", "snnTorch tutorial 6 CNN, Leaky, 1 channel, 8 steps", _snntorch(1, 28, 32)),
    Case("snntorch-leaky-3ch", "snnTorch tutorial 6 CNN, Leaky, 3 channels, 8 steps", _snntorch(3, 32, 16)),
    Case("snntorch-synaptic", "snnTorch tutorial CNN, Synaptic", _snntorch(1, 28, 16, "Synaptic")),
    Case("snntorch-alpha", "snnTorch tutorial CNN, Alpha", _snntorch(1, 28, 16, "Alpha")),
    Case("snntorch-lapicque", "snnTorch tutorial CNN, Lapicque", _snntorch(1, 28, 16, "Lapicque")),
    Case("sj-linear-vit", "spiking ViT with per-token nn.Linear (64 tokens, dim 64, depth 2), SpikingJelly "
         "LIFNode multi-step [T, B, N, P]", sj_linear_vit),
    Case("snntorch-linear-vit", "the same ViT, snnTorch Leaky, 4 steps inside forward over [B, N, P]",
         snntorch_linear_vit),
)
