"""Load a workload: a built-in network name or `path/to/file.py:function`, traced and costed into a TaskGraph."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
from torch import nn

from hwmodels import Processor
from spikepipe.ir import SpikePipeError, TaskGraph


class WorkloadError(SpikePipeError):
    """A --network argument cannot be turned into a model."""


def load_model(network: str, *, batch: int | None = None, timesteps: int | None = None,
               seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """(model, example input [T, B, ...]) for a zoo name or a file.py:function."""
    if ":" in network and network.split(":", 1)[0].endswith(".py"):
        model, example = _from_file(network)
        if timesteps is not None or batch is not None:
            t = timesteps or example.shape[0]
            b = batch or example.shape[1]
            example = _resize(example, t, b)
        return model, example
    from spikepipe import zoo

    meta = zoo.info(network)
    return zoo.build(network, timesteps=timesteps or meta.timesteps, batch=batch or meta.batch, seed=seed)


def _resize(example: torch.Tensor, t: int, b: int) -> torch.Tensor:
    if example.dim() < 3:
        raise WorkloadError(f"example input must be [T, B, ...], got shape {tuple(example.shape)}")
    reps = [-(-t // example.shape[0]), -(-b // example.shape[1])] + [1] * (example.dim() - 2)
    return example.repeat(*reps)[:t, :b]


def _from_file(spec: str) -> tuple[nn.Module, torch.Tensor]:
    path_s, func = spec.rsplit(":", 1)
    path = Path(path_s)
    if not path.is_file():
        raise WorkloadError(f"network file {path} not found (expected path/to/file.py:function)")
    if not func.isidentifier():
        raise WorkloadError(f"{func!r} is not a function name (expected path/to/file.py:function)")
    mod_name = f"spikepipe_user_{abs(hash(str(path.resolve())))}"
    try:
        spec_obj = importlib.util.spec_from_file_location(mod_name, path)
        if spec_obj is None or spec_obj.loader is None:
            raise WorkloadError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec_obj)
        sys.modules[mod_name] = module
        spec_obj.loader.exec_module(module)
    except WorkloadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure inside the user's file is reported in one line
        raise WorkloadError(f"{path} failed to import: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise WorkloadError(f"{path} has no function {func!r}")
    try:
        out = fn()
    except Exception as exc:  # noqa: BLE001
        raise WorkloadError(f"{path}:{func}() raised {type(exc).__name__}: {exc}") from None
    if (not isinstance(out, tuple) or len(out) != 2 or not isinstance(out[0], nn.Module)
            or not isinstance(out[1], torch.Tensor)):
        raise WorkloadError(f"{path}:{func}() must return (model: nn.Module, example_input: Tensor [T, B, ...]), "
                            f"got {type(out).__name__}")
    return out[0], out[1]


def load_workload(network: str, *, batch: int | None = None, timesteps: int | None = None,
                  processor: Processor | None = None) -> TaskGraph:
    """The costed task graph of one minibatch of `network` on `processor`."""
    from spikepipe.costs import build_task_graph
    from spikepipe.frontend import trace

    for name, v in (("batch", batch), ("timesteps", timesteps)):
        if v is not None and (not isinstance(v, int) or v < 1):
            raise WorkloadError(f"{name} must be a positive integer, got {v!r}")
    if processor is None:  # the default hardware preset, so bare calls agree with the CLI's defaults
        from hwmodels.config import load_cluster

        processor = load_cluster(None, processors=1).processors[0]
    model, example = load_model(network, batch=batch, timesteps=timesteps)
    t, b = int(example.shape[0]), int(example.shape[1])
    # trace on a single sample: shapes are per sample, and it keeps tracing cheap for big batches
    layers = trace(model, example[:, :1])
    label = Path(network.split(":")[0]).stem + ":" + network.split(":")[1] if ":" in network else network
    return build_task_graph(layers, batch=b, timesteps=t, processor=processor, name=label)
