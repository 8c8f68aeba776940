"""PNG figures: per-processor Gantt chart of one steady-state period, and speedup against processors.

Built on matplotlib's object API (Figure, no pyplot), so nothing global is switched and no display is needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spikepipe.io import save_figure
from spikepipe.ir import Schedule
from spikepipe.sim.result import SimResult

_HATCH = {"F": "", "B": "///", "W": "..."}
_KIND_NAME = {"F": "F forward", "B": "B input gradient", "W": "W weight gradient + update"}


def steady_window(schedule: Schedule, result: SimResult) -> tuple[int, int]:
    """[start, end) of one period in which every slot works on a real minibatch (after warm-up, before drain)."""
    lag = max([schedule.max_lag] + [c.lag for c in schedule.collectives])
    k = min(result.iterations - 1, max(lag, result.iterations // 2))
    length = max(schedule.period_cycles, round(result.simulated_period_cycles))
    start = k * schedule.period_cycles
    late = [r.start_cycles - r.scheduled_cycles for r in result.slot_records
            if start <= r.scheduled_cycles < start + schedule.period_cycles]
    return start + min(late, default=0), start + min(late, default=0) + length


def gantt_figure(schedule: Schedule, result: SimResult, *, network: str = "", num_layers: int | None = None):
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    t0, t1 = steady_window(schedule, result)
    length = t1 - t0
    layers = num_layers or (max((int(r.task[1:]) for r in result.slot_records), default=0) + 1)
    base = colormaps["tab20" if layers <= 20 else "viridis"]
    colours = [base(i) if layers <= 20 else base(i / max(1, layers - 1)) for i in range(layers)]
    cmap = ListedColormap(colours)
    norm = BoundaryNorm([i - 0.5 for i in range(layers + 1)], layers)
    procs = result.processors
    tag = "it" if schedule.kind == "flush" else "mb"  # flush: one iteration per period; periodic: the minibatch
    fig = Figure(figsize=(13, max(2.8, 0.42 * procs + 1.8)))
    ax = fig.add_subplot(1, 1, 1)
    for r in result.slot_records:
        a, b = max(r.start_cycles, t0), min(r.end_cycles, t1)
        if b <= a:
            continue
        kind, layer = r.task[0], int(r.task[1:])
        colour = colours[layer % layers]
        ax.barh(r.processor, b - a, left=a - t0, height=0.8, color=colour, hatch=_HATCH.get(kind, ""),
                edgecolor="black", linewidth=0.4)
        if (b - a) / length > 0.035:
            label = r.slot if r.microbatch == 0 else f"{r.task}.{r.microbatch}"
            ax.text((a + b) / 2 - t0, r.processor, f"{label}\n{tag}{r.minibatch}", ha="center", va="center",
                    fontsize=6.5, clip_on=True,
                    bbox={"facecolor": "white", "alpha": 0.65, "pad": 0.6, "edgecolor": "none"})
    # one extra row: when any link carries data, and the collectives (which hold every link)
    net_row = procs
    for r in result.transfer_records:
        a, b = max(r.start_cycles, t0), min(r.end_cycles, t1)
        if b <= a:
            continue
        ax.barh(net_row, b - a, left=a - t0, height=0.8 if r.collective else 0.5,
                color="0.45" if r.collective else "0.75", edgecolor="none")
        if r.collective and (b - a) / length > 0.035:
            ax.text((a + b) / 2 - t0, net_row, r.src.replace("allreduce", "AR"), ha="center", va="center", fontsize=6.5, color="white",
                    clip_on=True)
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:,.0f}"))
    ax.set_xlim(0, length)
    ax.set_ylim(procs + 0.5, -0.5)
    ax.set_yticks(range(procs + 1), [f"P{p}" for p in range(procs)] + ["links"])
    ax.set_xlabel(f"cycles within one steady-state period (labels: slot, {'iteration' if tag == 'it' else 'minibatch'})")
    ax.set_ylabel("processor")
    sim = result.simulated_period_cycles
    title = (f"{network + ': ' if network else ''}{schedule.name} ({schedule.kind}) on P={procs}, "
             f"period {schedule.period_cycles:,} cycles (simulated {sim:,.0f})")
    if schedule.microbatches > 1:
        title += f", {schedule.microbatches} micro-batches"
    ax.set_title(title, fontsize=10)
    handles = [Patch(facecolor="white", edgecolor="black", hatch=_HATCH[k], label=_KIND_NAME[k]) for k in "FBW"]
    handles += [Patch(facecolor="0.75", label="some link busy (transfer)"),
                Patch(facecolor="0.45", label="collective (all links)")]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13 if procs > 4 else -0.25), ncol=5,
              fontsize=8, title="task kind (colour = layer)", title_fontsize=8, frameon=False)
    sm = ScalarMappable(norm=norm, cmap=cmap)
    cbar = fig.colorbar(sm, ax=ax, pad=0.02, fraction=0.03)
    step = max(1, layers // 12)
    cbar.set_ticks(list(range(0, layers, step)))
    cbar.set_label("layer (colour)", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return fig


def save_gantt(path: str | Path, schedule: Schedule, result: SimResult, *, network: str = "",
               num_layers: int | None = None) -> Path:
    return save_figure(gantt_figure(schedule, result, network=network, num_layers=num_layers), path)


def speedup_figure(rows: Sequence[Mapping[str, Any]], ideal: Mapping[int, float], *, network: str = "",
                   subtitle: str = ""):
    """rows: {"schedule", "processors", "speedup"}; ideal: processors -> sequential / lower bound."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5.5))
    ax = fig.add_subplot(1, 1, 1)
    procs = sorted({int(r["processors"]) for r in rows} | set(ideal))
    names = list(dict.fromkeys(r["schedule"] for r in rows))
    markers = "osD^v<>pPXh*"
    for i, name in enumerate(names):
        pts = sorted((int(r["processors"]), float(r["speedup"])) for r in rows if r["schedule"] == name)
        style = {"linewidth": 2.6, "color": "black", "zorder": 5} if name == "spikepipe" else {"linewidth": 1.3}
        ax.plot([p for p, _ in pts], [s for _, s in pts], marker=markers[i % len(markers)], label=name, **style)
    if ideal:
        pts = sorted(ideal.items())
        ax.plot([p for p, _ in pts], [s for _, s in pts], linestyle="--", color="tab:red", linewidth=1.5, zorder=6,
                label="bound: sequential / lower bound")
    ax.plot(procs, procs, linestyle=":", color="grey", label="linear (P)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(procs, [str(p) for p in procs])
    ax.set_xlabel("processors P")
    ax.set_ylabel("speedup over 1-processor sequential (same minibatch)")
    title = f"{network + ': ' if network else ''}simulated speedup vs processors"
    ax.set_title(title + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


def save_speedup(path: str | Path, rows: Sequence[Mapping[str, Any]], ideal: Mapping[int, float], *,
                 network: str = "", subtitle: str = "") -> Path:
    return save_figure(speedup_figure(rows, ideal, network=network, subtitle=subtitle), path)


def energy_figure(rows: Sequence[Mapping[str, Any]], *, network: str = "", subtitle: str = ""):
    """Energy per minibatch against P for every schedule, beside speedup (rows as for speedup_figure, with
    energy_joules)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 5.5))
    ax_s, ax_e = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    names = list(dict.fromkeys(r["schedule"] for r in rows))
    procs = sorted({int(r["processors"]) for r in rows})
    markers = "osD^v<>pPXh*"
    for i, name in enumerate(names):
        mine = sorted((int(r["processors"]), r) for r in rows if r["schedule"] == name)
        style = {"linewidth": 2.6, "color": "black", "zorder": 5} if name == "spikepipe" else {"linewidth": 1.3}
        xs = [p for p, _ in mine]
        ax_s.plot(xs, [float(r["speedup"]) for _, r in mine], marker=markers[i % len(markers)], label=name, **style)
        ax_e.plot(xs, [1e3 * float(r["energy_joules"]) for _, r in mine], marker=markers[i % len(markers)],
                  label=name, **style)
    for ax, label in ((ax_s, "speedup over 1-processor sequential"), (ax_e, "energy per minibatch (mJ)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(procs, [str(p) for p in procs])
        ax.set_xlabel("processors P")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    ax_e.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.suptitle(f"{network + ': ' if network else ''}speedup and energy per minibatch"
                 + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
    return fig


def save_energy(path: str | Path, rows: Sequence[Mapping[str, Any]], *, network: str = "", subtitle: str = "") -> Path:
    return save_figure(energy_figure(rows, network=network, subtitle=subtitle), path)


def curves_figure(rows: Sequence[Mapping[str, Any]], title: str = ""):
    """Loss and accuracy per epoch, training and validation; rows: {"epoch", "train_loss", "val_loss",
    "train_accuracy", "val_accuracy"}."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4))
    a, b = fig.subplots(1, 2)
    ep = [r["epoch"] for r in rows]
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
    return fig
