"""`spikepipe activity`: measure a network's spike activity per layer on real data, without training it."""

from __future__ import annotations

import argparse
from math import prod
from typing import Any

from spikepipe.cli.common import CliError, Result, add_json, add_network, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("activity", help="measure spike activity per layer on real data (for simulate --activity)")
    add_network(p)
    p.add_argument("--dataset", default="digits", metavar="digits|fashion-mnist|FILE.npz",
                   help="digits (bundled 8x8), fashion-mnist (IDX files) or a .npz with x_train, y_train, x_test, "
                        "y_test")
    p.add_argument("--data-dir", default=None, help="directory with the Fashion-MNIST IDX files")
    p.add_argument("--split", choices=("train", "val", "test"), default="test", help="which split to run on")
    p.add_argument("--samples", type=positive_int, default=256, help="samples to run (default 256)")
    p.add_argument("--weights", default=None, metavar="MODEL.pt",
                   help="a state_dict (train --out DIR writes DIR/model.pt); default: the untrained initialisation")
    p.add_argument("--encoder", choices=("direct", "rate"), default="direct")
    p.add_argument("--resize", action="store_true",
                   help="resample the images to the network's input shape (e.g. Fashion-MNIST for a CIFAR-shaped "
                        "VGG: bilinear to H x W, channels repeated); the file records it")
    p.add_argument("--calibrate-bn", action="store_true",
                   help="an untrained model: set every batch norm's statistics from the measured samples first "
                        "(its defaults leave most neurons silent); the file records it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, metavar="FILE.json", help="write the activity file here")
    add_json(p)
    p.set_defaults(handler=run)


def load_split(dataset: str, data_dir: str | None, split: str) -> Any:
    """The samples of one split, [N, ...] floats in [0, 1]."""
    from spikepipe.train.data import load_dataset

    if dataset.endswith(".npz"):
        from spikepipe.train import data as data_mod

        loader = getattr(data_mod, "load_npz", None)
        if loader is None:
            raise CliError("this build reads .npz data sets only in `spikepipe train`; use digits or fashion-mnist")
        ds = loader(dataset)
    else:
        ds = load_dataset(dataset, data_dir)
    return getattr(ds, split).x


def fit_shape(x: Any, shape: tuple[int, ...], resize: bool, dataset: str) -> Any:
    import torch.nn.functional as F

    n = x.shape[0]
    if tuple(x.shape[1:]) == tuple(shape):
        return x
    if x[0].numel() == prod(shape):
        return x.reshape(n, *shape)
    if not resize or len(shape) != 3:
        raise CliError(f"{dataset} samples have shape {tuple(x.shape[1:])}, the network takes {tuple(shape)}; "
                       "pick a network built for it or pass --resize")
    img = x.reshape(n, -1, *x.shape[-2:]) if x.dim() >= 3 else None
    if img is None:
        raise CliError(f"--resize needs image samples, {dataset} has shape {tuple(x.shape[1:])}")
    img = F.interpolate(img, size=shape[1:], mode="bilinear", align_corners=False)
    return img.repeat(1, -(-shape[0] // img.shape[1]), 1, 1)[:, :shape[0]]


def run(args: argparse.Namespace) -> Result:
    import torch

    from spikepipe.activity import measure_split
    from spikepipe.io import check_writable
    from spikepipe.workload import load_model

    if args.out:
        check_writable(args.out)
    x = load_split(args.dataset, args.data_dir, args.split)
    model, example = load_model(args.network, batch=args.batch, timesteps=args.timesteps, seed=args.seed)
    if args.weights:
        try:
            state = torch.load(args.weights, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except FileNotFoundError:
            raise CliError(f"weights file {args.weights} not found") from None
        except (RuntimeError, OSError, KeyError, TypeError) as exc:
            raise CliError(f"weights file {args.weights} does not fit {args.network}: "
                           f"{str(exc).splitlines()[0]}") from None
    x = fit_shape(x[:args.samples], tuple(example.shape[2:]), args.resize, args.dataset)
    name = args.dataset + (" (resized)" if args.resize else "")
    report = measure_split(model, example, x, encoder=args.encoder, seed=args.seed, model_name=args.network,
                           dataset=name, samples=args.samples, calibrate=args.calibrate_bn)
    data: dict[str, Any] = {**report.to_dict(), "split": args.split, "encoder": args.encoder,
                            "weights": args.weights, "calibrated_batchnorm": args.calibrate_bn}
    if args.out:
        from spikepipe.io import write_json

        data["file"] = str(write_json(args.out, data))

    def render() -> None:
        from rich.console import Console
        from rich.table import Table

        tab = Table(title=f"{args.network} on {name} ({report.samples} samples, T={report.timesteps}): spike activity")
        for col in ("layer", "name", "input activity", "binary input", "output activity"):
            tab.add_column(col, justify="left" if col == "name" else "right")
        for la in report.layers:
            tab.add_row(str(la.index), la.name, f"{la.input_activity:.4f}", "yes" if la.input_binary else "no",
                        "-" if la.output_activity is None else f"{la.output_activity:.4f}")
        console = Console()
        console.print(tab)
        if args.out:
            console.print(f"activity file: {data['file']}")

    return Result(data, render)
