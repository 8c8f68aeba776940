"""Models as people write them, for `spikepipe train --network experiments/train_user_models/models.py:NAME`.

    spikingjelly_cnn   SpikingJelly 2.0 nn.Sequential in multi-step mode; input [T, B, 1, 28, 28]
    snntorch_cnn       snnTorch 1.0 tutorial style: input [B, 1, 28, 28], the time loop (T = 4) inside forward,
                       single-step Leaky neurons, returns (spk_rec, mem_rec) stacked over T
Both are a small snn-cnn shape for Fashion-MNIST (conv 16, pool, conv 32, pool, linear 10; SpikingJelly's with
BatchNorm after each conv). Nothing in spikepipe knows
these files: they go through the same front end and trainer as any user's model.
"""

from __future__ import annotations

import torch
from torch import nn

T = 4


def spikingjelly_cnn() -> tuple[nn.Module, torch.Tensor]:
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    torch.manual_seed(0)

    def lif() -> nn.Module:
        return neuron.LIFNode(tau=2.0, decay_input=False, surrogate_function=surrogate.ATan(), detach_reset=False)

    net = nn.Sequential(  # as SpikingJelly's conv Fashion-MNIST tutorial: conv, BatchNorm, neuron, pool
        layer.Conv2d(1, 16, 3, padding=1, bias=False), layer.BatchNorm2d(16), lif(), layer.MaxPool2d(2),
        layer.Conv2d(16, 32, 3, padding=1, bias=False), layer.BatchNorm2d(32), lif(), layer.MaxPool2d(2),
        layer.Flatten(), layer.Linear(32 * 7 * 7, 10), lif(),
    )
    functional.set_step_mode(net, "m")
    return net, torch.zeros(T, 1, 1, 28, 28)


class SnnTorchCNN(nn.Module):
    """snnTorch tutorial 6's convolutional SNN: the same static image enters every step."""

    # beta 0.9 and threshold 0.5: with the tutorial's 0.5 / 1.0 and PyTorch's default init no spike reaches
    # the last layer at T = 4, so nothing learns (the loss sits at ln 10 in plain autograd too)
    def __init__(self, num_steps: int = T, beta: float = 0.9, threshold: float = 0.5) -> None:
        super().__init__()
        import snntorch as snn
        from snntorch import surrogate

        grad = surrogate.atan()
        self.num_steps = num_steps
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.lif1 = snn.Leaky(beta=beta, threshold=threshold, spike_grad=grad)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.lif2 = snn.Leaky(beta=beta, threshold=threshold, spike_grad=grad)
        self.fc1 = nn.Linear(32 * 7 * 7, 10)
        self.lif3 = snn.Leaky(beta=beta, threshold=threshold, spike_grad=grad)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mem1, mem2, mem3 = self.lif1.init_leaky(), self.lif2.init_leaky(), self.lif3.init_leaky()
        spk_rec, mem_rec = [], []
        for _ in range(self.num_steps):
            spk1, mem1 = self.lif1(self.conv1(x), mem1)
            spk2, mem2 = self.lif2(self.conv2(nn.functional.max_pool2d(spk1, 2)), mem2)
            spk3, mem3 = self.lif3(self.fc1(nn.functional.max_pool2d(spk2, 2).flatten(1)), mem3)
            spk_rec.append(spk3)
            mem_rec.append(mem3)
        return torch.stack(spk_rec), torch.stack(mem_rec)


def snntorch_cnn() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return SnnTorchCNN(), torch.zeros(1, 1, 28, 28)
