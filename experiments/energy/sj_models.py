"""A SpikingJelly zoo model without torchvision: its zoo imports torchvision only for a URL loader of pretrained
ImageNet weights, and torchvision cannot load beside the CPU torch here; a stand-in module gives it the name."""

from __future__ import annotations

import sys
import types

import torch


def _stand_in_torchvision() -> None:
    if "torchvision" in sys.modules:
        return

    def load_state_dict_from_url(*_a, **_k):
        raise RuntimeError("pretrained weights are not available offline (torchvision stand-in)")

    tv = types.ModuleType("torchvision")
    models = types.ModuleType("torchvision.models")
    utils = types.ModuleType("torchvision.models.utils")
    utils.load_state_dict_from_url = load_state_dict_from_url
    tv.models, models.utils = models, utils
    sys.modules.update({"torchvision": tv, "torchvision.models": models, "torchvision.models.utils": utils})


def spiking_vgg11_bn(timesteps: int = 2, batch: int = 2, num_classes: int = 10, seed: int = 0):
    """SpikingJelly's spiking_vgg11_bn (LIF neurons, multi-step), CIFAR-shaped input [T, B, 3, 32, 32]."""
    _stand_in_torchvision()
    from spikingjelly.activation_based import functional, neuron
    from spikingjelly.activation_based.model import spiking_vgg

    torch.manual_seed(seed)
    model = spiking_vgg.spiking_vgg11_bn(spiking_neuron=neuron.LIFNode, num_classes=num_classes)
    functional.set_step_mode(model, "m")
    model.eval()
    x = torch.rand(timesteps, batch, 3, 32, 32)
    return model, x
