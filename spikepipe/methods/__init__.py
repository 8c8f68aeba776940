"""Memory-saving SNN training methods: trainer modes and TaskGraph transforms.

Trainers (all spikepipe.train.bptt.TrainerBase subclasses, so `run_epoch(get_batch, n, progress)` and
`logits(x)` work as for PlainBPTT):
  CheckpointedBPTT  activation recomputation every c timesteps (exact BPTT gradients)
  Skipper           checkpointing whose backward skips s of every c timesteps
  TTL               gradients truncated to windows of k timesteps, blocks of layers with local classifiers
  BlocTrain         blocks trained one after another, deeper blocks on hard classes, early exit
On a user's module (not the block protocol) the same trainers run it one timestep at a time with its neurons'
state carried (usernet.make_user_trainer).
Transforms: `transform(graph, method, **params)` and `aligned(graph, cluster, method, stages)`.
One definition of each method's parameters and defaults: registry.MethodOptions (used by trainers, transforms
and the CLI flags of simulate, train and sweep).
"""

from __future__ import annotations

import importlib
from typing import Any

from spikepipe.methods.registry import TRAINER_METHODS, MethodError, MethodOptions

# torch-backed names load on first use, so `spikepipe.methods.registry` (the CLI's flags) stays light
_LAZY = {"BlocTrain": "bloctrain", "CheckpointedBPTT": "checkpoint", "Skipper": "checkpoint", "TTL": "ttl",
         "aligned": "transforms", "transform": "transforms"}


def __getattr__(name: str) -> Any:
    if name == "TRANSFORMS":
        return importlib.import_module("spikepipe.methods.registry").TRANSFORM_METHODS
    if name in _LAZY:
        return getattr(importlib.import_module(f"spikepipe.methods.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'spikepipe.methods' has no attribute {name!r}")


def make_trainer(method: str | MethodOptions, net: Any, example: Any, optim: Any, *,
                 total_steps: int, epochs: int, seed: int = 0, **params: Any) -> Any:
    """The trainer for `spikepipe train --method NAME`. `params` are MethodOptions fields (checkpoint_every,
    skip, window, blocks, hard_fraction, skipper_gradient, exit_confidence); their defaults are MethodOptions' and nowhere else."""
    from spikepipe.methods.bloctrain import BlocTrain
    from spikepipe.methods.checkpoint import CheckpointedBPTT, Skipper
    from spikepipe.methods.ttl import TTL
    from spikepipe.train import PlainBPTT

    opts = method if isinstance(method, MethodOptions) else MethodOptions.of(method, **params)
    t = int(example.shape[0])
    if opts.name == "bptt":
        return PlainBPTT(net, optim, total_steps=total_steps)
    if opts.name == "checkpoint":
        return CheckpointedBPTT(net, optim, total_steps=total_steps, checkpoint_every=opts.every(t))
    if opts.name == "skipper":
        return Skipper(net, optim, total_steps=total_steps, checkpoint_every=opts.every(t), skip=opts.skipped(t),
                       carry=opts.skipper_gradient == "carry")
    if opts.name == "ttl":
        return TTL(net, optim, total_steps=total_steps, example=example, window=opts.window, blocks=opts.blocks,
                   seed=seed)
    if opts.name == "bloctrain":
        return BlocTrain(net, optim, total_steps=total_steps, example=example, epochs=epochs, blocks=opts.blocks,
                         hard_fraction=opts.hard_fraction, exit_confidence=opts.exit_confidence, seed=seed)
    raise MethodError(f"method {opts.name!r} has no trainer; valid: {', '.join(TRAINER_METHODS)}")


__all__ = ["TRAINER_METHODS", "TRANSFORMS", "TTL", "BlocTrain", "CheckpointedBPTT", "MethodError", "MethodOptions",
           "Skipper",
           "aligned", "make_trainer", "transform"]
