"""A SpikingJelly model-zoo network in the training-methods comparison (run.py --zoo NAME).

The network is the zoo's own module (spikingjelly.activation_based.model), multi-step, LIF neurons with ATan
surrogate, its first convolution given one input channel for Fashion-MNIST (1x28x28); nothing else changed. Our
methods run it through `spikepipe.methods.usernet.make_user_trainer` (one timestep at a time, as
`spikepipe train --method` does on a user's module); BPTT is PlainBPTT on the module's own multi-step forward.
SpikingJelly's memopt wraps the zoo's residual blocks (level 1: checkpointing, optionally spike compression).

The zoo imports torchvision for a URL loader only, and torchvision cannot load here: experiments/frontend_bench's
`sj_zoo` stands a module in for it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frontend_bench"))
from models import sj_zoo  # noqa: E402

from spikepipe.train.bptt import PlainBPTT  # noqa: E402
from spikepipe.train.model import ModelFn  # noqa: E402
from spikepipe.train.optim import OptimConfig  # noqa: E402

PREFIX = "sj-"
# name -> (zoo module, constructor, the residual block class memopt checkpoints)
ZOO = {"spiking_resnet18": ("spiking_resnet", "spiking_resnet18", "BasicBlock"),
       "sew_resnet18": ("sew_resnet", "sew_resnet18", "BasicBlock")}


def is_zoo(network: str) -> bool:
    return network.startswith(PREFIX)


def build(network: str, *, timesteps: int, batch: int, seed: int = 0) -> tuple[ModelFn, torch.Tensor]:
    """The zoo model `network` (PREFIX + a key of ZOO) as a ModelFn, and a [T, B, 1, 28, 28] example."""
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    from spikepipe.train.runner import trace_user_model

    mod, ctor, _ = ZOO[network[len(PREFIX):]]
    torch.manual_seed(seed)
    kw = {"cnf": "ADD"} if mod == "sew_resnet" else {}
    model = getattr(sj_zoo(mod), ctor)(num_classes=10, spiking_neuron=neuron.LIFNode,
                                       surrogate_function=surrogate.ATan(), detach_reset=True, **kw)
    model.conv1 = layer.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)  # grey images
    functional.set_step_mode(model, "m")
    ex = torch.rand(timesteps, batch, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    traced = trace_user_model(model, ex, timesteps)
    return ModelFn(model, traced.example, traced.layers, traced.layout), traced.example


class MemoptUser(PlainBPTT):
    """memopt level 1 on the zoo module: PlainBPTT's optimisers and schedule, the module's own forward/backward
    (memopt needs real module parameters), weights copied in before and gradients read out after each step."""

    mode = "memopt"

    def __init__(self, fn: ModelFn, optim: OptimConfig, *, total_steps: int, example: torch.Tensor,
                 target: type, compress: bool) -> None:
        from memopt_trainer import import_memopt

        super().__init__(fn, optim, total_steps=total_steps)
        self.model = fn.model
        self.named = dict(self.model.named_parameters())  # the same objects after wrapping
        self.target = target
        memopt = import_memopt()
        memopt.optimize_memory(self.model, target, lambda m: self._forward(m, example), level=1,
                               checkpoint_budget="memory", compress=compress)
        self.probe = None

    @staticmethod
    def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        from spikingjelly.activation_based import functional

        functional.reset_net(model)
        return model(x).mean(0)

    def _load(self) -> None:
        with torch.no_grad():
            for ws in self.weights:
                for k, w in ws.items():
                    self.named[k].copy_(w)
                    self.named[k].grad = None

    def grads(self, x: torch.Tensor, y: torch.Tensor):
        self._load()
        self.model.train()
        logits = self._forward(self.model, x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        loss.backward()
        grads = [{k: None if self.named[k].grad is None else self.named[k].grad.detach().clone() for k in ws}
                 for ws in self.weights]
        return loss.detach(), logits.detach(), grads

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        self._load()
        self.model.eval()
        return self._forward(self.model, x)


def make_memopt(fn: ModelFn, network: str, opt: OptimConfig, total: int, example: torch.Tensor,
                compress: bool) -> MemoptUser:
    mod, _, block = ZOO[network[len(PREFIX):]]
    return MemoptUser(fn, opt, total_steps=total, example=example, target=getattr(sj_zoo(mod), block),
                      compress=compress)


def memopt_user_kept_peak(tr: MemoptUser, x: torch.Tensor, y: torch.Tensor) -> int:
    """memopt_trainer.memopt_kept_peak's reconstruction for the zoo module: the hooks see what memopt stores in the
    forward but not the graph torch's checkpoint rebuilds in the backward. The zoo's residual blocks run in a
    chain, so block i's backward holds the stored inputs of blocks 0..i and its own rebuilt graph (measured by
    running the bare block under the meter on its recorded input)."""
    from spikingjelly.activation_based import functional

    from spikepipe.methods.memory import KeptBytes, kept_peak, trainer_parameters

    seen = kept_peak(tr, x, y)
    tr._load()
    wrapped = [m for m in tr.model.modules() if hasattr(m, "_checkpoint_wrapped_module")]
    inputs: dict[int, torch.Tensor] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, a, i=i: inputs.__setitem__(i, a[0].detach()))
             for i, m in enumerate(wrapped)]
    with torch.no_grad():
        tr._forward(tr.model, x)
    for h in hooks:
        h.remove()
    params = trainer_parameters(tr) + list(tr.named.values())
    stored, graphs = [], []
    for i, m in enumerate(wrapped):
        xin = inputs[i].requires_grad_()
        for fn_, acc in ((m, stored), (m._checkpoint_wrapped_module, graphs)):
            functional.reset_net(tr.model)
            with KeptBytes(exclude=params) as meter:
                out = fn_(xin)
            acc.append(meter.peak)
            del out
    prefix = [sum(stored[:i + 1]) for i in range(len(stored))]
    return seen - sum(stored) + max(p + g for p, g in zip(prefix, graphs, strict=True))
