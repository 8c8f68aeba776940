"""Checkpoints: everything needed to continue a run bit for bit, written atomically once per epoch."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import torch

from spikepipe.io import write_atomic
from spikepipe.ir import SpikePipeError

log = logging.getLogger(__name__)
FORMAT = 2  # 2: weights keyed by the model's own parameter paths (whole-model trainer)
# settings that may differ between a run and its resumption without changing the result
_FREE = ("out", "resume", "epochs_note")


class CheckpointError(SpikePipeError):
    """A checkpoint is missing, unreadable, or from a different configuration."""


def save(path: Path, *, config: dict[str, Any], epoch: int, trainer_state: dict, history: list[dict]) -> Path:
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "config": config, "epoch": epoch, "trainer": trainer_state,
                "history": history}, buf)
    return write_atomic(path, buf.getvalue())


def load(path: Path, config: dict[str, Any]) -> dict:
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path} to resume from; run without --resume first")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the file is unusable
        raise CheckpointError(f"cannot read checkpoint {path} ({type(exc).__name__}); delete it and restart") from None
    if ck.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {ck.get('format')}, expected {FORMAT}")
    theirs = {k: v for k, v in ck["config"].items() if k not in _FREE}
    ours = {k: v for k, v in config.items() if k not in _FREE}
    diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    if diff:
        k = diff[0]
        raise CheckpointError(f"checkpoint {path} was written with {k}={theirs.get(k)!r}, this run has "
                              f"{k}={ours.get(k)!r}; resume with the same settings or use another --out")
    log.info("resuming from %s after epoch %d", path, ck["epoch"])
    return ck


def save_model(path: Path, model: torch.nn.Module) -> Path:
    """The trained model's state_dict, as torch users load it: model.load_state_dict(torch.load(path))."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return write_atomic(path, buf.getvalue())
