"""Per-epoch metrics to JSON and CSV, and the accuracy/loss curve PNG (all written atomically)."""

from __future__ import annotations

from pathlib import Path

from spikepipe.io import save_figure, write_csv, write_json


def write_metrics(out: Path, rows: list[dict], title: str) -> None:
    write_json(out / "metrics.json", {"epochs": rows})
    write_csv(out / "metrics.csv", rows)
    if rows:
        write_curves(out / "curves.png", rows, title)


def write_curves(path: Path, rows: list[dict], title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.plot(ep, [r["train_loss"] for r in rows], "o-", label="train")
    a.plot(ep, [r["val_loss"] for r in rows], "s--", label="validation")
    a.set_xlabel("epoch")
    a.set_ylabel("cross-entropy loss")
    a.legend()
    b.plot(ep, [100 * r["train_accuracy"] for r in rows], "o-", label="train")
    b.plot(ep, [100 * r["val_accuracy"] for r in rows], "s--", label="validation")
    b.set_xlabel("epoch")
    b.set_ylabel("accuracy (%)")
    b.legend()
    fig.suptitle(title, fontsize=9)
    try:
        return save_figure(fig, path)
    finally:
        plt.close(fig)
