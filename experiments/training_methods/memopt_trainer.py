"""SpikingJelly 2.0's memopt (Huang et al., ICLR 2026) as a trainer beside ours, on the same zoo networks.

`spikingjelly.activation_based.memopt.optimize_memory(level=1)` wraps every candidate module (here each
SpikingBlock) in gradient checkpointing and, with `compress=True`, stores a block's input compactly when its probe
found it strictly binary (spikes as bits). Levels 2-4 search spatial/temporal splits by measuring peak CUDA memory
and refuse to run without CUDA, so on this CPU level 1 is what can be compared (stated in the README).

The trainer keeps our per-layer optimisers and learning-rate schedule (TrainerBase) so that only the memory
method differs from `PlainBPTT`: before each step the current weights are copied into the module, the module runs
forward and backward itself (memopt needs real module parameters, not spikepipe's functional weights), and the
module's gradients go to the same optimisers (PlainBPTT's loop, with `grads` replaced).
"""

from __future__ import annotations

import sys
import types

import torch
import torch.nn.functional as F

from spikepipe.train.bptt import PlainBPTT
from spikepipe.train.optim import OptimConfig
from spikepipe.zoo import SpikingBlock


def import_memopt():
    """spikingjelly.activation_based.memopt; a stand-in for torchvision when it cannot load (the zoo imports it)."""
    try:
        from spikingjelly.activation_based import memopt
    except (ImportError, RuntimeError):  # torchvision's compiled ops missing: give the zoo an empty module
        sys.modules.setdefault("torchvision", types.ModuleType("torchvision"))
        from spikingjelly.activation_based import memopt
    return memopt


class MemoptBPTT(PlainBPTT):
    mode = "memopt"

    def __init__(self, net: torch.nn.Module, optim: OptimConfig, *, total_steps: int, example: torch.Tensor,
                 compress: bool) -> None:
        super().__init__(net, optim, total_steps=total_steps)
        self.params = [dict(b.named_parameters()) for b in net.blocks]  # the same objects after wrapping
        self.compress = compress
        memopt = import_memopt()
        memopt.optimize_memory(net, SpikingBlock, lambda m: m(example), level=1, checkpoint_budget="memory",
                               compress=compress)
        self.probe = None  # nothing held outside autograd (the kept-bytes meter needs no report)

    def _load(self) -> None:
        with torch.no_grad():
            for ps, ws in zip(self.params, self.weights, strict=True):
                for k, p in ps.items():
                    p.copy_(ws[k])
                    p.grad = None

    def grads(self, x: torch.Tensor, y: torch.Tensor):
        self._load()
        self.net.train()
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        grads = [{k: None if p.grad is None else p.grad.detach().clone() for k, p in ps.items()}
                 for ps in self.params]
        return loss.detach(), logits.detach(), grads

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        self._load()
        self.net.train()  # batch statistics, as PlainBPTT's functional forward uses them
        return self.net(x)


def memopt_kept_peak(tr: MemoptBPTT, x: torch.Tensor, y: torch.Tensor) -> int:
    """Peak bytes kept for the backward by memopt, reconstructed where the hooks cannot see.

    saved_tensors_hooks see what memopt stores in the forward (every checkpointed block's input, compressed to
    bits when memopt compresses it, and the loss) but not the graph torch's checkpoint recomputes during the
    backward: it stores those tensors in its own frame. Block i's backward needs the inputs of blocks 0..i (the
    later ones are freed) and its own recomputed graph, measured by running the bare block under the meter:
        peak = seen - sum_j in_j + max_i (sum_{j<=i} in_j + graph_i)."""
    from spikepipe.methods.memory import KeptBytes, kept_peak, trainer_parameters

    seen = kept_peak(tr, x, y)
    tr._load()
    params = trainer_parameters(tr) + [p for ps in tr.params for p in ps.values()]
    net = tr.net
    outs: list[torch.Tensor] = []
    stored, graphs = [], []
    for i, wrapped in enumerate(net.blocks):
        src, res = net.sources[i], net.residuals[i]
        xin = x if src == -1 else outs[src].detach().requires_grad_()
        rin = None if res is None else (x if res == -1 else outs[res].detach().requires_grad_())
        kw = {} if rin is None else {"residual": rin}
        with KeptBytes(exclude=params) as m:
            out = wrapped(xin, **kw)
        stored.append(m.peak)
        del out
        with KeptBytes(exclude=params) as m:
            out = wrapped._checkpoint_wrapped_module(xin, **kw)
        graphs.append(m.peak)
        outs.append(out.detach())
        del out
    prefix = [sum(stored[:i + 1]) for i in range(len(stored))]
    return seen - sum(stored) + max(p + g for p, g in zip(prefix, graphs, strict=True))
