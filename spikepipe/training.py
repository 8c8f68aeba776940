"""A whole training run as `spikepipe train`, the API's `train_network` and the sweep start it: the core loop
(spikepipe.train.runner.run) with the trainer picked for the config and the spike activity recorded per epoch.

This module sits above spikepipe.train, spikepipe.methods, spikepipe.distributed and spikepipe.activity: the
methods and the distributed backend build on train's core (TrainerBase, OptimConfig, netfn), so the dispatch
between them cannot live inside train without an import cycle (docs/design.md section 8).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spikepipe.ir import LayerSpec, Schedule
from spikepipe.train.bptt import TrainerBase
from spikepipe.train.data import DATASETS, Dataset, DatasetError, Split
from spikepipe.train.inputs import InputPlan
from spikepipe.train.model import ModelFn, has_blocks
from spikepipe.train.pipelined import TrainerError
from spikepipe.train.runner import ProgressHook, TrainConfig, check_mode, schedule_trainer, trace_layers
from spikepipe.train.runner import run as run_loop

ACTIVITY_SAMPLES = 256  # validation samples the activity of every epoch is measured on


class TrainConfigError(TrainerError, ValueError):
    """Options of a training run that contradict each other, refused before anything is loaded or solved."""


def check_config(cfg: TrainConfig, *, dataset_given: bool = False, schedule_given: bool = False) -> None:
    """The option conflicts of a training run, in one place: `spikepipe train`, the API's train_network and a
    sweep's training points refuse the same combinations with the same message (the CLI only parses and
    prints). `dataset_given`/`schedule_given`: the caller passes a Dataset or a Schedule instead of a name."""
    check_mode(cfg)
    if not dataset_given and cfg.dataset not in DATASETS and not cfg.dataset.endswith(".npz") \
            and not Path(cfg.dataset).is_dir():
        raise DatasetError(f"argument --dataset: invalid choice: {cfg.dataset!r} (choose {', '.join(DATASETS)}, a "
                           f"FILE.npz or a directory of IDX files)")
    if cfg.period_slack and cfg.schedule != "spikepipe":
        raise TrainConfigError(f"--period-slack applies to --schedule spikepipe only, not {cfg.schedule!r}")
    if cfg.backend != "emulate":
        from spikepipe.distributed.launch import check_options

        check_options(cfg, scheduled=schedule_given or cfg.schedule != "none")


def make_trainer(cfg: TrainConfig, fn: ModelFn, schedule: Schedule | None, total: int,
                 steps_per_epoch: int, example: torch.Tensor | None = None) -> TrainerBase:
    opt = cfg.optim()
    net = fn.model
    check_mode(cfg)
    if cfg.backend != "emulate":  # the same schedule run for real on torch.distributed ranks
        from spikepipe.distributed import make_trainer as distributed_trainer

        return distributed_trainer(cfg, fn, schedule, total, steps_per_epoch)
    if cfg.method != "bptt":
        if schedule is not None and schedule.kind != "flush":
            # the memory-saving methods run synchronously; their effect on a pipeline is modelled by
            # `spikepipe simulate --method`, not trained here
            raise TrainerError(f"--method {cfg.method} trains without gradient delays; use --schedule none "
                               f"(see `spikepipe simulate --method {cfg.method}` for its pipelined cost)")
        from spikepipe.methods import make_trainer
        from spikepipe.methods.usernet import make_user_trainer

        params = dict(checkpoint_every=cfg.checkpoint_every, skip=cfg.skip, window=cfg.window, blocks=cfg.blocks,
                      hard_fraction=cfg.hard_fraction, skipper_gradient=cfg.skipper_gradient,
                      exit_confidence=cfg.exit_confidence, seed=cfg.seed)
        if not has_blocks(net):  # a user's module, stepped one timestep at a time (spikepipe.methods.usernet)
            return make_user_trainer(cfg.method, fn, opt, total_steps=total, epochs=cfg.epochs, **params)
        return make_trainer(cfg.method, net, example, opt, total_steps=total, epochs=cfg.epochs, **params)
    return schedule_trainer(cfg, fn, schedule, total, steps_per_epoch, example)


class ActivityRecorder:
    """--activity-out: spike activity after every epoch, on the validation split, written once at the end."""

    def __init__(self, cfg: TrainConfig, net: nn.Module, layers: list[LayerSpec] | None, example: torch.Tensor,
                 plan: InputPlan, val: Split) -> None:
        # once, not per epoch: the traced layers and (up to) 256 validation inputs, built as the trainer builds
        # its inputs (the same seeds every epoch, so the epochs are compared on one input)
        self.cfg, self.net, self.plan = cfg, net, plan
        self.layers = layers if layers is not None else trace_layers(net, example, cfg.timesteps)
        head = val.head(ACTIVITY_SAMPLES)
        self.inputs = [plan.make(head.x[i:i + cfg.batch], seed=cfg.seed + i)
                       for i in range(0, len(head), cfg.batch)]
        self.epochs: list = []

    def epoch_end(self, epoch: int, trainer: TrainerBase) -> None:
        from spikepipe.activity import measure

        self.epochs.append(measure(self.net, self.layers, self.inputs, model_name=self.cfg.network,
                                   dataset=self.cfg.dataset, epoch=epoch, forward=trainer.logits,
                                   time_major=self.plan.time_major))

    def finish(self) -> None:
        if self.epochs:
            from spikepipe.activity import with_history, write_report

            write_report(self.cfg.activity_out, with_history(self.epochs))


def run(cfg: TrainConfig, *, model: tuple[nn.Module, torch.Tensor] | None = None,
        schedule: Schedule | None = None, dataset: Dataset | None = None,
        progress: ProgressHook | None = None) -> dict[str, Any]:
    """Train and evaluate; returns the result row. `model`, `schedule` and `dataset` override what cfg names."""
    check_config(cfg, dataset_given=dataset is not None, schedule_given=schedule is not None)
    return run_loop(cfg, model=model, schedule=schedule, dataset=dataset, progress=progress,
                    make_trainer=make_trainer, observe=ActivityRecorder)


def run_from_options(point: dict[str, Any]) -> dict[str, Any]:
    """One training run described by a flat dict (a sweep point): keys are TrainConfig fields (network, dataset,
    schedule, processors, epochs, batch, timesteps, seed, lr, optimizer, stash, compensation, data_dir,
    limit_train, ...); unknown keys are ignored. Returns a flat dict of results (no per-epoch history):
    test_accuracy, test_loss, val_accuracy, gradient_delays, measured_delays, epochs, step_seconds, wall_s, ..."""
    from dataclasses import fields

    names = {f.name for f in fields(TrainConfig)}
    opts = {k: v for k, v in point.items() if k in names and v is not None}
    for key in ("processors", "epochs", "batch", "timesteps", "seed", "limit_train", "limit_val", "limit_test",
                "threads", "checkpoint_every", "skip", "window", "blocks"):
        if key in opts:
            opts[key] = int(opts[key])
    for key in ("lr", "period_slack", "hard_fraction", "exit_confidence"):
        if key in opts:
            opts[key] = float(opts[key])
    if isinstance(opts.get("stash"), str):
        opts["stash"] = opts["stash"].strip().lower() not in ("0", "false", "no", "off")
    cfg = TrainConfig(**opts)
    t0 = time.perf_counter()
    result = run(cfg)
    flat = {k: v for k, v in result.items() if k != "history"}
    flat["final_train_loss"] = result["history"][-1]["train_loss"] if result["history"] else None
    flat["wall_s"] = round(time.perf_counter() - t0, 3)
    return flat
