"""Blocks of layers with local classifiers: the partition, the heads, and their optimisers (TTL and BlocTrain).

A local classifier reads the last layer of a block of layers: the output averaged over the timesteps it covers,
average-pooled to 2x2 when it is a feature map, then one linear layer to the classes. Gradients never cross a
block border: the next block reads the detached output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spikepipe.methods.stepped import MethodError, run_chunk
from spikepipe.train.optim import LayerOptimizer, OptimConfig

HEAD_POOL = 2  # feature maps are pooled to HEAD_POOL x HEAD_POOL before the local linear classifier
# BlocTrain's classifiers and detectors decide alone (early exit, routing), so they read the map pooled to at most
# 7x7 (the whole map of a 28x28 network's second stage): at 2x2 block 0's classifier of snn-cnn reached 69%, at 7x7
# 83% (experiments/README.md section 7)
BLOCTRAIN_HEAD_POOL = 7


def partition(num_layers: int, blocks: int | Sequence[int]) -> list[tuple[int, int]]:
    """Contiguous layer ranges [a, b). `blocks` is a count (near-equal layer counts) or the first layer of every
    block after the first (e.g. (2,) splits 4 layers into [0, 2) and [2, 4))."""
    if isinstance(blocks, int):
        if not 1 <= blocks <= num_layers:
            raise MethodError(f"cannot split {num_layers} layers into {blocks} blocks; give 1..{num_layers}")
        cuts = [round(num_layers * k / blocks) for k in range(1, blocks)]
    else:
        cuts = list(blocks)
    bounds = [0, *cuts, num_layers]
    if any(b <= a for a, b in zip(bounds, bounds[1:], strict=False)):
        raise MethodError(f"block borders {cuts} must be increasing layer indices inside 1..{num_layers - 1}")
    return list(zip(bounds, bounds[1:], strict=False))


def head_features(shape: Sequence[int], pool: int = HEAD_POOL) -> int:
    """Input width of the local classifier for a block output of per-sample shape `shape` (maps pooled to at
    most `pool` x `pool`)."""
    if len(shape) == 3:
        return shape[0] * min(pool, shape[1]) * min(pool, shape[2])
    return int(torch.Size(shape).numel())


def head_input_shape(layer: object) -> tuple[int, ...]:
    """Per-sample shape of a LayerSpec's output as the local classifier reads it: after its post ops except a
    trailing flatten (the next block flattens its input; the classifier pools the map first)."""
    shape = tuple(layer.out_shape)  # type: ignore[attr-defined]
    for p in layer.post_ops:  # type: ignore[attr-defined]
        if p.kind != "flatten":
            shape = tuple(p.out_shape)
    return shape


def head_logits(head: dict[str, torch.Tensor], out: torch.Tensor, pool: int = HEAD_POOL) -> torch.Tensor:
    """Local classifier on a block output [c, B, ...]: time mean, average pool of maps to at most pool x pool,
    linear."""
    m = out.mean(0)
    if m.dim() == 4:
        m = F.adaptive_avg_pool2d(m, (min(pool, m.shape[2]), min(pool, m.shape[3])))
    return F.linear(m.flatten(1), head["weight"], head["bias"])


def block_output_shapes(net: nn.Module, weights: Sequence[dict[str, torch.Tensor]],
                        example: torch.Tensor) -> list[tuple[int, ...]]:
    """Per-sample output shape of every block (one short no-grad run on two samples and one step: batch
    normalisation on 1x1 maps needs more than one value per channel)."""
    probe = example[:1, :1].expand(1, 2, *example.shape[2:])
    with torch.no_grad():
        outs, _ = run_chunk(net, weights, probe, None)
    return [() if o is None else tuple(o.shape[2:]) for o in outs]  # None: a user's module run whole (usernet)


class Heads:
    """Local classifiers (one per block end except the network's last layer) with their optimisers."""

    def __init__(self, ends: Sequence[int], shapes: Sequence[Sequence[int]], outputs: int, optim: OptimConfig,
                 seed: int = 0, out_features: int | None = None, pool: int = HEAD_POOL) -> None:
        self.pool = pool
        gen = torch.Generator().manual_seed(seed + 4242)
        self.params: dict[int, dict[str, torch.Tensor]] = {}
        for e in ends:
            fin = head_features(shapes[e], pool)
            bound = 1.0 / fin ** 0.5  # nn.Linear's default initialisation range
            n_out = out_features or outputs
            self.params[e] = {
                "weight": (torch.rand(n_out, fin, generator=gen) * 2 - 1) * bound,
                "bias": (torch.rand(n_out, generator=gen) * 2 - 1) * bound,
            }
        self.opts = {e: LayerOptimizer(optim, p) for e, p in self.params.items()}

    def logits(self, head: dict[str, torch.Tensor], out: torch.Tensor) -> torch.Tensor:
        """`head_logits` at these heads' pooling."""
        return head_logits(head, out, self.pool)

    def leaves(self, e: int) -> dict[str, torch.Tensor]:
        return {k: v.detach().requires_grad_() for k, v in self.params[e].items()}

    def apply(self, e: int, grads: dict[str, torch.Tensor | None], lr: float) -> None:
        self.params[e] = self.opts[e].step(self.params[e], grads, lr)

    def weight_bytes(self) -> int:
        return sum(v.numel() * v.element_size() for p in self.params.values() for v in p.values())

    def state_dict(self) -> dict:
        return {"params": self.params, "opts": {e: o.state_dict() for e, o in self.opts.items()}}

    def load_state_dict(self, d: dict) -> None:
        self.params = {int(e): dict(p) for e, p in d["params"].items()}
        for e, s in d["opts"].items():
            self.opts[int(e)].load_state_dict(s)
