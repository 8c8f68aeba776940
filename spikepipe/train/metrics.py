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
    from spikepipe.plots import curves_figure

    return save_figure(curves_figure(rows, title), path)
