"""The memory-saving methods on a user's own module: accuracy on the 8x8 digits and the bytes kept for the backward
of one minibatch, for a SpikingJelly multi-step nn.Sequential (with BatchNorm) and an snnTorch init_hidden
Sequential (single-step, run T times by the trainer). Prints a markdown table.

    .venv/bin/python experiments/train_user_models/methods.py [--epochs 4] [--timesteps 8]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from spikepipe.methods.memory import kept_peak
from spikepipe.methods.usernet import make_user_trainer
from spikepipe.train.bptt import PlainBPTT
from spikepipe.train.model import ModelFn
from spikepipe.train.runner import TrainConfig, _from_file, trace_user_model
from spikepipe.training import run

NETS = Path(__file__).resolve().parents[2] / "tests" / "method_nets.py"  # the method tests' user models

METHODS = ("bptt", "checkpoint", "skipper", "ttl", "bloctrain")
MODELS = {"SpikingJelly multi-step + BN": "sj_multi_digits", "snnTorch init_hidden (single-step)": "st_seq_digits"}


def kept(name: str, method: str, timesteps: int, batch: int) -> int:
    model, ex = _from_file(f"{NETS}:{name}")
    traced = trace_user_model(model, ex, timesteps)
    fn = ModelFn(model, traced.example, traced.layers, traced.layout)
    opt = TrainConfig().optim()
    tr = (PlainBPTT(fn, opt, total_steps=1) if method == "bptt" else
          make_user_trainer(method, fn, opt, total_steps=1, epochs=2))
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(timesteps, batch, 64, generator=g), torch.randint(0, 10, (batch,), generator=g)
    return kept_peak(tr, x, y)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--timesteps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    print(f"| model | method | test accuracy (digits, {args.epochs} epochs) | kept for backward, B={args.batch} "
          f"(bytes) |")
    print("|---|---|---|---|")
    for label, name in MODELS.items():
        for method in METHODS:
            res = run(TrainConfig(network=f"{NETS}:{name}", dataset="digits",
                                  method=method, epochs=args.epochs, batch=args.batch, timesteps=args.timesteps,
                                  lr=5e-3, seed=0))
            print(f"| {label} | {method} | {100 * res['test_accuracy']:.2f}% | "
                  f"{kept(name, method, args.timesteps, args.batch):,} |", flush=True)


if __name__ == "__main__":
    main()
