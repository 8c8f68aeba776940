"""A whole training run: data, model, schedule, epochs, evaluation, checkpoints, metrics and the result row."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from spikepipe.ir import LayerSpec, Schedule
from spikepipe.train import checkpoint
from spikepipe.train.bptt import NonFiniteLossError, PlainBPTT, TrainerBase
from spikepipe.train.data import Dataset, Split, batch_order, load_dataset
from spikepipe.train.inputs import InputPlan, plan_inputs
from spikepipe.train.metrics import write_metrics
from spikepipe.train.model import ModelFn, has_blocks
from spikepipe.train.optim import OptimConfig, lr_at
from spikepipe.train.pipelined import ExactPipeline, GradientQueue, TrainerError

log = logging.getLogger(__name__)
MODES = ("exact", "queue")
HOLDOUT_SAMPLES = 1000  # validation samples a method may hold out for its own choices (BlocTrain's hard classes)


@dataclass(frozen=True)
class TrainConfig:
    network: str = "snn-mlp"
    dataset: str = "digits"
    schedule: str = "none"  # "none": plain BPTT; otherwise a schedule name solved for `processors`
    processors: int = 4
    period_slack: float = 0.0  # spikepipe only: a longer period (0.1 = 10%) for less gradient delay
    hardware: str | None = None
    epochs: int = 5
    batch: int = 32
    timesteps: int | None = None  # network default if None
    optimizer: str = "adam"
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0
    encoder: str = "direct"
    stash: bool = True
    compensation: str = "none"
    mode: str = "exact"  # exact schedule execution, or the gradient-queue approximation
    backend: str = "emulate"  # emulate: one process; gloo|nccl: the schedule on P ranks (spikepipe.distributed)
    data_dir: str | None = None
    limit_train: int | None = None  # use only the first N training samples (quick runs)
    limit_val: int | None = None  # evaluate per epoch on only the first N validation samples
    limit_test: int | None = None  # test on only the first N test samples (quick runs; reported as test_samples)
    eval_batch: int = 256
    threads: int = 1
    out: str | None = None
    resume: bool = False
    method: str = "bptt"  # bptt | checkpoint | skipper | ttl | bloctrain (spikepipe.methods)
    # method parameters; None: the method's default (spikepipe.methods.registry.MethodOptions, the one definition)
    checkpoint_every: int | None = None  # checkpoint/skipper interval in timesteps (0: ceil(sqrt(T)))
    skip: int | None = None  # skipper: timesteps skipped per interval (-1: half the interval)
    window: int | None = None  # ttl: truncation window in timesteps
    blocks: int | None = None  # ttl/bloctrain: local-loss blocks
    hard_fraction: float | None = None  # bloctrain
    skipper_gradient: str | None = None  # skipper: "drop" or "carry"
    activity_out: str | None = None  # write measured spike activity per layer and epoch here (spikepipe.activity)
    exit_confidence: float | None = None  # bloctrain

    def optim(self) -> OptimConfig:
        return OptimConfig(name=self.optimizer, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                           schedule=self.lr_schedule)


class ProgressHook(Protocol):
    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None: ...
    def batch_done(self) -> None: ...
    def epoch_end(self, row: dict[str, Any]) -> None: ...


def set_determinism(seed: int, threads: int) -> None:
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(seed)


def _from_file(spec: str) -> tuple[nn.Module, torch.Tensor]:
    """A user's file.py:function, loaded with the same checks (and one-line errors) as every other command."""
    from spikepipe.workload import _from_file as load_user_file

    return load_user_file(spec)


def _with_timesteps(example: torch.Tensor, timesteps: int) -> torch.Tensor:
    reps = -(-timesteps // example.shape[0])
    return example.repeat(reps, *([1] * (example.dim() - 1)))[:timesteps]


def build_model(cfg: TrainConfig, num_classes: int) -> tuple[nn.Module, torch.Tensor]:
    if ".py:" in cfg.network:
        return _from_file(cfg.network)
    try:
        from spikepipe import zoo
    except ImportError as exc:
        raise TrainerError(f"the model zoo is not available ({exc}); pass a model to spikepipe.train.runner.run") \
            from None

    return zoo.build(cfg.network, timesteps=cfg.timesteps, batch=cfg.batch, num_classes=num_classes, seed=cfg.seed)


@dataclass(frozen=True)
class TracedUserModel:
    """A user's module as the trainer feeds it: its example input (at --timesteps steps where given), the front
    end's layers and its layout (how the model uses time)."""
    example: torch.Tensor
    layers: list[LayerSpec]
    layout: Any


def trace_user_model(model: nn.Module, example: torch.Tensor, timesteps: int | None = None) -> TracedUserModel:
    """The example, layers and layout of a user's module, traced once by the front end (spikepipe.frontend.trace_model:
    the one reading of how it uses time). `timesteps` (--timesteps) is checked by the front end against the model
    (refused where its forward fixes T); a [T, B, ...] example is repeated to that many steps."""
    from spikepipe.frontend import trace_model

    traced = trace_model(model, example, timesteps=timesteps)
    lay = traced.layout
    if timesteps is not None and lay.batch_source == "input dim 1" and example.shape[0] != timesteps:
        example = _with_timesteps(example, timesteps)
    return TracedUserModel(example, traced.layers, lay)


def trace_layers(model: nn.Module, example: torch.Tensor, timesteps: int | None = None) -> list[LayerSpec]:
    """The front end's layers of the model, traced on its example input."""
    return trace_user_model(model, example, timesteps).layers


def build_schedule(cfg: TrainConfig, timesteps: int, layers: list[LayerSpec] | None = None) -> Schedule:
    """The schedule named by cfg for the network (the built-in one, or the given traced layers of a user's)."""
    import schedules
    from hwmodels.config import load_cluster
    from spikepipe.workload import load_workload

    if layers is not None:
        from spikepipe.costs import build_task_graph

        processor = load_cluster(None, processors=1).processors[0]  # costed as load_workload does
        path, _, func = cfg.network.rpartition(":")
        graph = build_task_graph(layers, batch=cfg.batch, timesteps=timesteps, processor=processor,
                                 name=f"{Path(path).stem}:{func}" if path else cfg.network)
    else:
        graph = load_workload(cfg.network, batch=cfg.batch, timesteps=timesteps)
    cluster = load_cluster(cfg.hardware, processors=cfg.processors)
    options = {"period_slack": cfg.period_slack} if cfg.period_slack else {}
    return schedules.generate(cfg.schedule, graph, cluster, **options)


@dataclass(frozen=True)
class SplitScore:
    """The trainer's mean cross-entropy and accuracy (a fraction, 0..1) on one split."""

    loss: float
    accuracy: float


@torch.no_grad()
def evaluate(trainer: TrainerBase, split: Split, cfg: TrainConfig, plan: InputPlan) -> SplitScore:
    loss_sum, correct = 0.0, 0
    for i in range(0, len(split), cfg.eval_batch):
        xb, yb = split.take(slice(i, i + cfg.eval_batch)), split.y[i:i + cfg.eval_batch]
        logits = trainer.logits(plan.make(xb, seed=cfg.seed * 7 + 99991 + i))
        loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    return SplitScore(loss=loss_sum / max(1, len(split)), accuracy=correct / max(1, len(split)))


def check_mode(cfg: TrainConfig) -> None:
    if cfg.mode not in MODES:
        raise TrainerError(f"unknown trainer mode {cfg.mode!r}; valid: {', '.join(MODES)}")


def schedule_trainer(cfg: TrainConfig, fn: ModelFn, schedule: Schedule | None, total: int,
                     steps_per_epoch: int, example: torch.Tensor | None = None) -> TrainerBase:
    """The emulation's trainer for plain BPTT or a schedule's delays. spikepipe.training.make_trainer picks
    this one or a method's or the distributed backend's: the dispatch sits above spikepipe.train."""
    check_mode(cfg)
    if cfg.backend != "emulate" or cfg.method != "bptt":
        raise TrainerError(f"--backend {cfg.backend} --method {cfg.method} is trained by spikepipe.training.run; "
                           f"spikepipe.train.runner.run alone runs plain BPTT and a schedule's delays")
    opt = cfg.optim()
    if schedule is None or schedule.kind == "flush":  # flush schedules have no delays: plain BPTT
        return PlainBPTT(fn, opt, total_steps=total)
    if cfg.mode == "queue":
        return GradientQueue(fn, opt, tuple(schedule.gradient_delays), total_steps=total)
    return ExactPipeline(fn, opt, schedule, total_steps=total, stash=cfg.stash, compensation=cfg.compensation,
                         anneal_steps=steps_per_epoch)


class EpochObserver(Protocol):
    """Watches the trained model after every epoch (spikepipe.training's spike-activity recorder)."""

    def epoch_end(self, epoch: int, trainer: TrainerBase) -> None: ...
    def finish(self) -> None: ...


TrainerFactory = Callable[[TrainConfig, ModelFn, "Schedule | None", int, int, "torch.Tensor | None"], TrainerBase]
ObserverFactory = Callable[[TrainConfig, nn.Module, "list[LayerSpec] | None", torch.Tensor, InputPlan, Split],
                           EpochObserver]


def run(cfg: TrainConfig, *, model: tuple[nn.Module, torch.Tensor] | None = None,
        schedule: Schedule | None = None, dataset: Dataset | None = None,
        progress: ProgressHook | None = None, make_trainer: TrainerFactory = schedule_trainer,
        observe: ObserverFactory | None = None) -> dict[str, Any]:
    """Train and evaluate; returns the result row. `model`, `schedule` and `dataset` override what cfg names.
    `make_trainer` picks the trainer and `observe` (given cfg.activity_out) watches every epoch: spikepipe.training
    passes both (methods, distributed backends, spike activity), this core loop knows none of them."""
    set_determinism(cfg.seed, cfg.threads)
    data = dataset or load_dataset(cfg.dataset, cfg.data_dir,
                                   **({"limit_train": cfg.limit_train} if cfg.dataset == "fashion-mnist" else {}))
    if cfg.limit_train is not None and cfg.dataset != "fashion-mnist":
        data = Dataset(data.name, data.train.head(cfg.limit_train), data.val, data.test, data.num_classes,
                       data.sample_shape)
    if cfg.limit_val is not None or cfg.limit_test is not None:
        data = Dataset(data.name, data.train, data.val.head(cfg.limit_val), data.test.head(cfg.limit_test),
                       data.num_classes, data.sample_shape)
    net, example = model if model is not None else build_model(cfg, data.num_classes)
    # a built-in network is its blocks; a user's module is read through the front end's layers and layout
    layers, layout = None, None
    if not has_blocks(net):
        traced = trace_user_model(net, example, cfg.timesteps)
        example, layers, layout = traced.example, traced.layers, traced.layout
    fn = ModelFn(net, example, layers, layout)
    plan = plan_inputs(fn, data, cfg.encoder, fn.timesteps)
    timesteps = plan.timesteps
    if schedule is None and cfg.schedule != "none":
        schedule = build_schedule(cfg, timesteps, layers)
    if schedule is not None and len(schedule.gradient_delays) != fn.num_layers:
        raise TrainerError(f"schedule {schedule.name} covers {len(schedule.gradient_delays)} layers but the network "
                           f"has {fn.num_layers}")
    order0 = batch_order(len(data.train), cfg.batch, seed=cfg.seed, epoch=0)
    steps_per_epoch = len(order0)
    total = steps_per_epoch * cfg.epochs
    trainer = make_trainer(cfg, fn, schedule, total, steps_per_epoch, example)
    if hasattr(trainer, "set_holdout") and len(data.val):  # BlocTrain: hard classes from held-out accuracy
        hold = data.val.head(HOLDOUT_SAMPLES)
        trainer.set_holdout(plan.make(hold.take(slice(None)), seed=cfg.seed), hold.y)
    # where activity goes is no part of the training: --resume may add or change --activity-out
    config = {k: v for k, v in asdict(cfg).items() if k != "activity_out"} | {"timesteps": timesteps}
    out = Path(cfg.out) if cfg.out else None
    ck_path = out / "checkpoint.pt" if out else None
    history: list[dict] = []
    start = 0
    if cfg.resume:
        if ck_path is None:
            raise checkpoint.CheckpointError("--resume needs --out DIR (where the checkpoint is)")
        ck = checkpoint.load(ck_path, config)
        trainer.load_state_dict(ck["trainer"])
        history, start = list(ck["history"]), int(ck["epoch"])
    train = data.train
    observer = None
    if cfg.activity_out:
        if observe is None:
            raise TrainerError("--activity-out is recorded by spikepipe.training.run, not the core loop alone")
        observer = observe(cfg, net, layers, example, plan, data.val)
    for epoch in range(start, cfg.epochs):
        torch.manual_seed(cfg.seed * 7919 + epoch)  # dropout etc.: a function of (seed, epoch), so resume matches
        order = batch_order(len(train), cfg.batch, seed=cfg.seed, epoch=epoch)

        def get_batch(n: int, order: list = order, epoch: int = epoch) -> tuple[torch.Tensor, torch.Tensor]:
            idx = order[n]
            x = plan.make(train.take(idx), seed=(cfg.seed * 1_000_003 + epoch) * 100_003 + n)
            return x, train.y[idx]

        if progress:
            progress.epoch_start(epoch, cfg.epochs, len(order))
        t0 = time.perf_counter()
        try:
            stats = trainer.run_epoch(get_batch, len(order), progress.batch_done if progress else None)
        except NonFiniteLossError as exc:
            where = (f"last good checkpoint {ck_path} (after epoch {len(history)})"
                     if ck_path and history else "no checkpoint written")
            raise NonFiniteLossError(f"{exc}; stopped in epoch {epoch + 1}, {where}") from None
        seconds = time.perf_counter() - t0
        val = evaluate(trainer, data.val, cfg, plan)
        if observer is not None:
            observer.epoch_end(epoch + 1, trainer)
        row = {"epoch": epoch + 1, "train_loss": stats.loss, "train_accuracy": stats.accuracy,
               "val_loss": val.loss, "val_accuracy": val.accuracy,
               "lr": lr_at(cfg.optim(), trainer.step - 1, total), "seconds": round(seconds, 3),
               "step_seconds": round(seconds / max(1, stats.minibatches), 5)}
        history.append(row)
        if progress:
            progress.epoch_end(row)
        if out is not None:
            checkpoint.save(ck_path, config=config, epoch=epoch + 1, trainer_state=trainer.state_dict(),
                            history=history)
            write_metrics(out, history, f"{cfg.network} on {cfg.dataset}, schedule {cfg.schedule}")
    if observer is not None:
        observer.finish()
    if isinstance(trainer, ExactPipeline):
        trainer.check_delays()
    test = evaluate(trainer, data.test, cfg, plan)
    delays = list(schedule.gradient_delays) if schedule is not None and schedule.kind == "periodic" else \
        [0] * fn.num_layers
    measured = list(getattr(trainer, "measured_delays", [0] * fn.num_layers))
    result = {
        "network": cfg.network, "dataset": cfg.dataset,
        "schedule": cfg.schedule if schedule is None else schedule.name,
        "processors": cfg.processors if schedule is not None else 1,
        "period_cycles": schedule.period_cycles if schedule is not None else None,
        "period_slack": cfg.period_slack,
        "trainer": trainer.mode, "backend": cfg.backend, "stash": cfg.stash, "compensation": cfg.compensation,
        "seed": cfg.seed, "epochs": cfg.epochs, "batch": cfg.batch, "timesteps": timesteps,
        **_layout_words(layout, plan, cfg),
        "optimizer": cfg.optimizer, "lr": cfg.lr, "encoder": cfg.encoder,
        "train_samples": len(data.train), "val_samples": len(data.val), "test_samples": len(data.test),
        "test_accuracy": test.accuracy, "test_loss": test.loss,
        "val_accuracy": history[-1]["val_accuracy"] if history else None,
        "gradient_delays": delays, "measured_delays": measured,
        "step_seconds": history[-1]["step_seconds"] if history else None,
        "history": history,
    }
    _load_trained(trainer, fn)
    if out is not None:
        from spikepipe.io import write_json

        checkpoint.save_model(out / "model.pt", net)
        write_json(out / "result.json", result)
    return result


def _load_trained(trainer: TrainerBase, fn: ModelFn) -> None:
    """Hand the trained weights back to the user's module (its state_dict is the trained model)."""
    if trainer.fn is not None or not has_blocks(fn.model):  # per layer, by parameter path
        fn.load_into(trainer.weights)
    else:  # a method's trainer holds block-relative weights
        from spikepipe.train import netfn

        netfn.load_into(fn.model, trainer.weights)



def _layout_words(layout: Any, plan: InputPlan, cfg: TrainConfig) -> dict[str, str]:
    """How the trainer feeds the model and where T and B came from, in the front end's words (as tasks and
    simulate state them; `layout` is the front end's reading, None for a built-in network); B is always the
    training minibatch (--batch)."""
    batch_source = "the training minibatch (--batch, default 32)"
    if plan.events:
        return {"layout": "multi-step", "timesteps_source": "the data set's binned events [T, ...]",
                "batch_source": batch_source}
    if layout is None:
        return {"layout": "multi-step", "timesteps_source": "--timesteps" if cfg.timesteps else
                f"network default ({cfg.network})", "batch_source": batch_source}
    return {"layout": layout.style, "timesteps_source": layout.timesteps_source, "batch_source": batch_source}
