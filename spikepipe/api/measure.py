"""`measure_activity`: a network's spike activity per layer on real data, without training it (`spikepipe
activity`); its result's `.to_dict()` is the command's `--json` object and the activity file it writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spikepipe.api.inputs import ApiArgumentError, Workload, positive

if TYPE_CHECKING:
    from torch import nn

    from spikepipe.activity import ActivityReport

ENCODERS = ("direct", "rate")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ActivityResult:
    """The measured activity (`report`, what `simulate(activity=...)` reads) and how it was measured."""

    report: ActivityReport = field(repr=False)
    split: str
    encoder: str
    weights: str | None
    calibrated_batchnorm: bool
    file: str | None = None  # where it was written (`out`)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {**self.report.to_dict(), "split": self.split, "encoder": self.encoder,
                                "weights": self.weights, "calibrated_batchnorm": self.calibrated_batchnorm}
        if self.file is not None:
            data["file"] = self.file
        return data


def _model(network: str | Path | nn.Module | Workload, batch: int | None, timesteps: int | None,
           seed: int) -> tuple[nn.Module, Any, str]:
    from torch import nn

    if isinstance(network, Workload):
        if network.model is None:
            raise ApiArgumentError(f"{network.name} has no torch model to run (a .nir graph is costed, not run)")
        return network.model, network.example_input, network.name
    if isinstance(network, nn.Module):
        raise ApiArgumentError("a model needs its example input: pass load_network(model, example_input)")
    from spikepipe.workload import load_model

    model, example = load_model(str(network), batch=batch, timesteps=timesteps, seed=seed)
    return model, example, str(network)


def measure_activity(network: str | Path | nn.Module | Workload, *, dataset: str = "digits",
                     data_dir: str | Path | None = None, split: str = "test", samples: int = 256,
                     weights: str | Path | None = None, encoder: str = "direct", resize: bool = False,
                     calibrate_bn: bool = False, seed: int = 0, batch: int | None = None,
                     timesteps: int | None = None, out: str | Path | None = None) -> ActivityResult:
    """Spike activity per layer of the network (a name, `file.py:function`, or `load_network(model, example)`)
    on the first `samples` samples of a data set's split, its weights from `weights` (train's model.pt) or as
    built; `resize` fits images to the network's input, `calibrate_bn` sets batch-norm statistics from the data
    first. With `out`, the activity file is written there (atomically)."""
    from spikepipe.activity import fit_shape, load_split, load_weights, measure_split
    from spikepipe.io import check_writable, write_json

    positive("samples", samples, optional=False)
    if split not in SPLITS:
        raise ApiArgumentError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if encoder not in ENCODERS:
        raise ApiArgumentError(f"encoder must be one of {', '.join(ENCODERS)}, got {encoder!r}")
    if out is not None:
        check_writable(out)
    x = load_split(dataset, None if data_dir is None else str(data_dir), split)
    model, example, name = _model(network, batch, timesteps, seed)
    if weights is not None:
        load_weights(model, str(weights), name)
    x = fit_shape(x[:samples], tuple(example.shape[2:]), resize, dataset)
    label = dataset + (" (resized)" if resize else "")
    report = measure_split(model, example, x, encoder=encoder, seed=seed, model_name=name, dataset=label,
                           samples=samples, calibrate=calibrate_bn)
    result = ActivityResult(report, split, encoder, None if weights is None else str(weights), calibrate_bn)
    if out is None:
        return result
    # the file holds the whole object the command prints, its own path aside
    return ActivityResult(report, split, encoder, result.weights, calibrate_bn,
                          str(write_json(out, result.to_dict())))
