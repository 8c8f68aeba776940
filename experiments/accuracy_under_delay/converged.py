"""The long runs: snn-cnn on the full Fashion-MNIST at T=4 with a cosine schedule, as BPTT and with the spikepipe
P=4 schedule's delays. Training is `spikepipe train` itself (commands below, one per run, side by side); this
script reads their --out folders, evaluates the test accuracy of the newest checkpoint (also of a run that is
still going, whose cosine schedule has not finished), and draws both validation curves into one figure.

    spikepipe train --network snn-cnn --dataset fashion-mnist --schedule none --epochs 12 --batch 64 \\
        --timesteps 4 --lr 2e-3 --optimizer adam --lr-schedule cosine --threads 1 --seed 0 --out R/bptt
    spikepipe train ... --schedule spikepipe --processors 4 ... --out R/spikepipe4
    .venv/bin/python experiments/accuracy_under_delay/converged.py R/bptt R/spikepipe4 \\
        --figure experiments/figures/converged_curves.png

Prints one JSON object: per run the epochs done, the validation curve, the test accuracy at the newest checkpoint
and the training wall time so far.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from spikepipe.io import save_figure
from spikepipe.train.bptt import PlainBPTT
from spikepipe.train.checkpoint import load
from spikepipe.train.data import load_fashion_mnist
from spikepipe.train.inputs import plan_inputs
from spikepipe.train.model import ModelFn
from spikepipe.train.runner import TrainConfig, evaluate


def test_accuracy(out: Path, data_dir: str | None) -> tuple[int, float]:
    """Test accuracy of the newest checkpoint, evaluated as the run itself evaluates. Format 1 checkpoints come
    from the block-wise trainer before the whole-model one (weights keyed per block; evaluation ran the blocks
    with BatchNorm in training mode, on batches of 256), format 2 from the current trainer (eval mode)."""
    from spikepipe import zoo

    ck = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    config = ck["config"]
    cfg = TrainConfig(network=config["network"], batch=config["batch"], timesteps=config["timesteps"],
                      encoder=config["encoder"], seed=config["seed"])
    net, ex = zoo.build(cfg.network, timesteps=cfg.timesteps, batch=cfg.batch, num_classes=10, seed=cfg.seed)
    data = load_fashion_mnist(data_dir)
    if ck["format"] == 1:
        trainer = PlainBPTT(net, cfg.optim(), total_steps=1)  # the block path: per-block weight names
        state = ck["trainer"]
    else:
        ck = load(out / "checkpoint.pt", config)
        trainer = PlainBPTT(ModelFn(net, ex), cfg.optim(), total_steps=1)
        state = ck["trainer"]
    trainer.load_state_dict(state)
    plan = plan_inputs(ModelFn(net, ex), data, cfg.encoder, cfg.timesteps)
    return int(ck["epoch"]), evaluate(trainer, data.test, cfg, plan).accuracy


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="--out folders of `spikepipe train`")
    ap.add_argument("--figure", default=None)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = {}
    for run in args.runs:
        out = Path(run)
        rows = json.loads((out / "metrics.json").read_text())["epochs"]
        epoch, acc = test_accuracy(out, args.data_dir)
        report[out.name] = {"epochs_done": epoch, "val_accuracy": [r["val_accuracy"] for r in rows],
                            "test_accuracy_at_last_checkpoint": acc,
                            "train_wall_seconds": round(sum(r["seconds"] for r in rows), 1)}
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.4))
        for name, r in report.items():
            v = r["val_accuracy"]
            ax.plot(range(1, len(v) + 1), [100 * a for a in v], "o-", label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy (%)")
        ax.set_title("snn-cnn, Fashion-MNIST, T=4", fontsize=9)
        ax.legend()
        save_figure(fig, Path(args.figure))
        plt.close(fig)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
