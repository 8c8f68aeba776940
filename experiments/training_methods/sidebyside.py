"""One table and one figure: every method (ours, ours with spike packing, SpikingJelly's memopt) side by side on
kept memory, process RSS, step time and accuracy, from the CSVs run.py wrote.

    .venv/bin/python experiments/training_methods/sidebyside.py --memory DIR --time DIR --accuracy DIR [DIR ...]
        --out experiments/results/training_methods/sidebyside
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from spikepipe.io import save_figure, write_csv


def _rows(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open())) if path.is_file() else []


def table(memory: Path, time: Path, accuracy: list[Path]) -> list[dict]:
    mem = {(r["network"], r["method"]): r for r in _rows(memory / "memory.csv")}
    tim = {(r["network"], r["method"]): r for r in _rows(time / "steptime.csv")}
    acc = {(r["network"], r["method"]): r for d in accuracy for r in _rows(d / "accuracy.csv")}
    out = []
    for key, m in mem.items():
        t, a = tim.get(key, {}), acc.get(key, {})
        out.append({"network": key[0], "method": key[1], "kept_mib": round(int(m["saved_bytes"]) / 2**20, 2),
                    "kept_vs_bptt": float(m["saved_vs_bptt"]),
                    "rss_step_mib": round(int(m["rss_step_bytes"]) / 2**20, 1),
                    "rss_vs_bptt": float(m["rss_step_vs_bptt"]),
                    "time_vs_bptt": float(t["time_vs_bptt"]) if t else None,
                    "test_accuracy": float(a["test_accuracy"]) if a else None})
    return out


def figure(rows: list[dict], path: Path,
           note: str = "T=8, B=32 (accuracy: T=4, Fashion-MNIST 6000/2000)") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets = list(dict.fromkeys(r["network"] for r in rows))
    keys = (("kept_vs_bptt", "kept memory: BPTT / method"), ("rss_vs_bptt", "RSS growth: BPTT / method"),
            ("time_vs_bptt", "step time / BPTT"), ("test_accuracy", "test accuracy"))
    fig, axes = plt.subplots(len(keys), len(nets), figsize=(6 * len(nets), 11), squeeze=False,
                             layout="constrained")
    for j, net in enumerate(nets):
        sub = [r for r in rows if r["network"] == net]
        colors = ["tab:orange" if r["method"].startswith("memopt") else
                  "tab:green" if r["method"].endswith("packed") else "tab:blue" for r in sub]
        for i, (k, label) in enumerate(keys):
            ax = axes[i][j]
            ax.bar([r["method"] for r in sub], [r[k] or 0 for r in sub], color=colors)
            ax.set_title(f"{net}: {label}", fontsize=9)
            ax.tick_params(axis="x", rotation=45, labelsize=7)
    fig.suptitle("ours (blue), ours with spike packing (green), SpikingJelly memopt level 1 (orange); "
                 + note, fontsize=9)
    save_figure(fig, path)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--memory", type=Path, required=True)
    ap.add_argument("--time", type=Path, required=True)
    ap.add_argument("--accuracy", type=Path, nargs="+", default=[])
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    rows = table(a.memory, a.time, a.accuracy)
    write_csv(a.out / "sidebyside.csv", rows)
    figure(rows, a.out / "sidebyside.png")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
