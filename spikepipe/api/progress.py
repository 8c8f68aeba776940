"""Progress of long API calls: silent by default, a callback, or a rich bar on stderr (which Jupyter shows)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProgressEvent:
    """`completed` of `total` units of `stage` ("simulate", "compare", "train") are done; `description` says
    what runs now (a schedule and P, or an epoch with its last loss and accuracy)."""

    stage: str
    completed: int
    total: int
    description: str


ProgressCallback = Callable[[ProgressEvent], None]
ProgressArg = bool | ProgressCallback | None


@contextmanager
def reporter(progress: ProgressArg, stage: str, total: int) -> Iterator[ProgressCallback | None]:
    """A callback to report to for the duration of one call (None when silent)."""
    if progress is None or progress is False:
        yield None
        return
    if callable(progress):
        yield progress
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True), transient=True)
    with bar:
        task = bar.add_task(stage, total=total)

        def update(ev: ProgressEvent) -> None:
            bar.update(task, completed=ev.completed, total=ev.total, description=ev.description)

        yield update


class TrainProgress:
    """The trainer's hook (spikepipe.train.runner.ProgressHook) turned into ProgressEvents, one per minibatch."""

    def __init__(self, report: ProgressCallback, epochs: int) -> None:
        self.report, self.epochs = report, epochs
        self.epoch, self.done, self.batches, self.last = 0, 0, 0, ""

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        self.epoch, self.done, self.batches = epoch, 0, batches
        self._emit()

    def batch_done(self) -> None:
        self.done += 1
        self._emit()

    def epoch_end(self, row: dict[str, Any]) -> None:
        self.last = f"loss {row['train_loss']:.3f}, val acc {100 * row['val_accuracy']:.1f}%"
        self._emit()

    def _emit(self) -> None:
        info = f" ({self.last})" if self.last else ""
        self.report(ProgressEvent("train", self.epoch * self.batches + self.done, self.epochs * self.batches,
                                  f"epoch {self.epoch + 1}/{self.epochs}{info}"))
