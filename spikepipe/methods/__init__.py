"""Memory-saving SNN training methods: trainer modes and TaskGraph transforms.

Trainers (all spikepipe.train.bptt.TrainerBase subclasses, so `run_epoch(get_batch, n, progress)` and
`logits(x)` work as for PlainBPTT):
  CheckpointedBPTT  activation recomputation every c timesteps (exact BPTT gradients)
  Skipper           checkpointing whose backward skips s of every c timesteps
  TTL               gradients truncated to windows of k timesteps, blocks of layers with local classifiers
  BlocTrain         blocks trained one after another, deeper blocks on hard classes, early exit
Transforms: `transform(graph, method, **params)` and `aligned(graph, cluster, method, stages)`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from spikepipe.methods.bloctrain import BlocTrain
from spikepipe.methods.checkpoint import CheckpointedBPTT, Skipper
from spikepipe.methods.stepped import MethodError
from spikepipe.methods.transforms import METHODS as TRANSFORMS
from spikepipe.methods.transforms import aligned, transform
from spikepipe.methods.ttl import TTL
from spikepipe.train.optim import OptimConfig

TRAINER_METHODS = ("bptt", "checkpoint", "skipper", "ttl", "bloctrain")


def make_trainer(method: str, net: nn.Module, example: Any, optim: OptimConfig, *, total_steps: int,
                 epochs: int, checkpoint_every: int = 0, skip: int = -1, window: int = 2,
                 blocks: int | tuple[int, ...] = 2, hard_fraction: float = 0.5, seed: int = 0) -> Any:
    """The trainer for `spikepipe train --method NAME` (the CLI wiring is the lead's; this is what it calls).
    checkpoint_every 0 means ceil(sqrt(T)); skip -1 means half the interval."""
    import math

    from spikepipe.train import PlainBPTT

    t = int(example.shape[0])
    every = checkpoint_every or max(2, math.ceil(math.sqrt(t)))
    if method == "bptt":
        return PlainBPTT(net, optim, total_steps=total_steps)
    if method == "checkpoint":
        return CheckpointedBPTT(net, optim, total_steps=total_steps, checkpoint_every=every)
    if method == "skipper":
        return Skipper(net, optim, total_steps=total_steps, checkpoint_every=every,
                       skip=skip if skip >= 0 else every // 2)
    if method == "ttl":
        return TTL(net, optim, total_steps=total_steps, example=example, window=window, blocks=blocks, seed=seed)
    if method == "bloctrain":
        return BlocTrain(net, optim, total_steps=total_steps, example=example, epochs=epochs, blocks=blocks,
                         hard_fraction=hard_fraction, seed=seed)
    raise MethodError(f"unknown training method {method!r}; valid: {', '.join(TRAINER_METHODS)}")


__all__ = ["TRAINER_METHODS", "TRANSFORMS", "TTL", "BlocTrain", "CheckpointedBPTT", "MethodError", "Skipper",
           "aligned", "make_trainer", "transform"]
