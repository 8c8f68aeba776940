"""`spikepipe activity`: measure a network's spike activity per layer on real data, without training it."""

from __future__ import annotations

import argparse

from spikepipe.cli.common import Result, add_json, add_network, positive_int


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


def run(args: argparse.Namespace) -> Result:
    from spikepipe.api.measure import measure_activity

    res = measure_activity(args.network, dataset=args.dataset, data_dir=args.data_dir, split=args.split,
                           samples=args.samples, weights=args.weights, encoder=args.encoder, resize=args.resize,
                           calibrate_bn=args.calibrate_bn, seed=args.seed, batch=args.batch,
                           timesteps=args.timesteps, out=args.out)
    report, data = res.report, res.to_dict()
    name = report.dataset

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
