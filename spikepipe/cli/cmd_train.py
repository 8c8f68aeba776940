"""`spikepipe train`: train a network on real data with plain BPTT or with exactly a schedule's gradient delays."""

from __future__ import annotations

import argparse
from typing import Any

from spikepipe.cli.cmd_simulate import add_period_slack
from spikepipe.cli.common import Result, add_hardware, add_json, add_network, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train on your data, digits or Fashion-MNIST, plain BPTT or with a schedule's "
                                     "delays")
    add_network(p)
    p.add_argument("--dataset", default="digits", metavar="NAME|FILE.npz|DIR",
                   help="digits: scikit-learn's bundled 8x8 digits (tiny); fashion-mnist: the original IDX files; "
                        "FILE.npz: your data (x_train, y_train, x_test, y_test, optional x_val, y_val; samples "
                        "shaped like one sample of the model's input, or [T, ...] binned events); DIR: IDX files "
                        "in Fashion-MNIST's layout")
    p.add_argument("--data-dir", default=None, help="directory with the Fashion-MNIST IDX files "
                   "(default /usr/share/datasets/fashion-mnist)")
    p.add_argument("--schedule", default="none",
                   help="'none' for plain BPTT, or a schedule name (see `spikepipe simulate`) solved for "
                        "--processors; its per-layer gradient delays are trained exactly")
    p.add_argument("--processors", "-P", type=positive_int, default=4, help="processors the schedule is solved for")
    p.add_argument("--schedule-file", default=None, metavar="S.json|S.txt",
                   help="train with a saved or hand-written schedule (see `simulate --schedule-out`), validated "
                        "against the network and --hardware/--processors at load; instead of --schedule")
    add_period_slack(p)
    add_hardware(p)
    p.add_argument("--epochs", type=positive_int, default=5)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="adam, or sgd with momentum 0.9")
    p.add_argument("--lr-schedule", choices=("cosine", "step", "constant"), default="cosine")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--encoder", choices=("direct", "rate"), default="direct",
                   help="direct: the analog input repeated over T; rate: seeded Bernoulli spikes")
    p.add_argument("--stash", action=argparse.BooleanOptionalAction, default=True,
                   help="weight stashing: B uses the weights F used (default); --no-stash recomputes the layer "
                        "with the weights current at B time")
    p.add_argument("--compensation", choices=("none", "spectrain", "pipemare"), default="none",
                   help="delay compensation: SpecTrain weight prediction or PipeMare learning-rate scaling")
    p.add_argument("--mode", choices=("exact", "queue"), default="exact",
                   help="exact: execute the schedule's F/B/W events; queue: APPROXIMATION, gradients at current "
                        "weights applied d_l updates later")
    p.add_argument("--backend", choices=("emulate", "gloo", "nccl"), default="emulate",
                   help="emulate: the schedule in one process; gloo (CPU) or nccl (GPU): on --processors "
                        "torch.distributed ranks, with the same final weights (spikepipe.distributed)")
    from spikepipe.cli.method_args import add_method_arguments
    from spikepipe.methods.registry import TRAINER_METHODS

    add_method_arguments(p, TRAINER_METHODS)  # needs --schedule none unless bptt
    p.add_argument("--limit-train", type=positive_int, default=None, help="use only the first N training samples")
    p.add_argument("--limit-val", type=positive_int, default=None,
                   help="validate each epoch on only the first N validation samples")
    p.add_argument("--limit-test", type=positive_int, default=None,
                   help="test on only the first N test samples (reported as test_samples)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (results depend on it)")
    p.add_argument("--out", default=None, help="directory for checkpoint, metrics.json/csv, curves.png, result.json")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out, bit-identically")
    p.add_argument("--activity-out", default=None, metavar="FILE.json",
                   help="write the spike activity per layer measured after every epoch on the validation split "
                        "(for simulate --activity)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json(p)
    p.set_defaults(handler=run)


class _Bar:
    """A progress bar on stderr (stdout stays clean for --json), driven by the API's progress events; it draws
    nothing until the first minibatch, so an error before training is the only line on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=Console(stderr=True), transient=False)
        self.task: Any = None

    def __call__(self, ev: Any) -> None:
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task(ev.description, total=ev.total)
        self.progress.update(self.task, completed=ev.completed, total=ev.total, description=ev.description)

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.progress.stop()


def run(args: argparse.Namespace) -> Result:
    from spikepipe.api.ops import train_network
    from spikepipe.cli.common import CliError
    from spikepipe.io import check_writable

    if args.out:
        check_writable(f"{args.out}/result.json")
    if args.activity_out:
        check_writable(args.activity_out)
    if args.array or args.dataflow:
        raise CliError("train takes --hardware for the schedule's cluster; --array/--dataflow are not supported here")
    given = _schedule_from_file(args)
    kwargs = {k: getattr(args, k) for k in (
        "dataset", "processors", "hardware", "epochs", "batch", "timesteps", "lr", "optimizer", "lr_schedule",
        "weight_decay", "seed", "encoder", "stash", "compensation", "mode", "period_slack", "method",
        "checkpoint_every", "skip", "window", "blocks", "hard_fraction", "skipper_gradient", "backend", "data_dir",
        "limit_train", "limit_val", "limit_test", "exit_confidence", "threads", "out", "resume", "activity_out")}
    schedule = given if given is not None else args.schedule
    if args.no_progress:
        res = train_network(args.network, schedule=schedule, **kwargs)
    else:
        with _Bar() as bar:
            res = train_network(args.network, schedule=schedule, **kwargs, progress=bar)
    data = res.to_dict()

    def render() -> None:
        print(f"{data['network']} on {data['dataset']}, schedule {data['schedule']} "
              f"({data['trainer']}, delays {data['gradient_delays']}): test accuracy "
              f"{100 * data['test_accuracy']:.2f}% after {data['epochs']} epochs")
        if args.out:
            print(f"metrics, curves, checkpoint and the trained model (model.pt) in {args.out}")

    return Result(data, render)


def _schedule_from_file(args: argparse.Namespace):
    """The --schedule-file schedule for the network as train builds it, validated; None without the option."""
    if not getattr(args, "schedule_file", None):
        return None
    from spikepipe.cli.cmd_simulate import load_schedule_file
    from spikepipe.cli.common import CliError

    if args.schedule != "none":
        raise CliError("give --schedule or --schedule-file, not both")
    from hwmodels.config import load_cluster
    from spikepipe.workload import load_workload

    graph = load_workload(args.network, batch=args.batch or 32, timesteps=args.timesteps)
    return load_schedule_file(args.schedule_file, graph, load_cluster(args.hardware, processors=args.processors), args)
