"""Load a workload: a built-in network name or `path/to/file.py:function`, traced and costed into a TaskGraph."""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from hwmodels import Processor
from spikepipe.frontend import Traced
from spikepipe.ir import SpikePipeError, TaskGraph


class WorkloadError(SpikePipeError):
    """A --network argument cannot be turned into a model."""


@dataclass(frozen=True)
class TracedWorkload:
    """A network's traced layers and layout, with the label its task graph is named by."""

    traced: Traced
    label: str


def load_model(network: str, *, batch: int | None = None, timesteps: int | None = None,
               seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """(model, example input) for a zoo name (example [T, B, ...] at the given or default T and B) or a
    file.py:function (the user's own example, as returned: its layout is read by the front end)."""
    if _is_file(network):
        return _from_file(network)
    from spikepipe import zoo

    meta = zoo.info(network)
    return zoo.build(network, timesteps=timesteps or meta.timesteps, batch=batch or meta.batch, seed=seed)


def _is_file(network: str) -> bool:
    return ":" in network and network.split(":", 1)[0].endswith(".py")


# the zoo's networks are multi-step and linear in T and B: they are traced at this size and costed at any
_ZOO_TRACE_TIMESTEPS = 2


def load_traced(network: str, *, batch: int | None = None, timesteps: int | None = None) -> TracedWorkload:
    """Layers and layout of `network` with T and B as the model runs them (overrides checked), and its label.

    Costing is analytic, so nothing is run at full size: a zoo network is traced at T=2, B=1 and costed at the
    T and B asked for; a user's model is traced on its own example on the meta device (no memory), and scaled
    to --timesteps / --batch only where its layout allows it (a T fixed inside forward is refused, not faked).
    """
    from spikepipe.frontend import Layout, trace_model

    for name, v in (("batch", batch), ("timesteps", timesteps)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise WorkloadError(f"{name} must be a positive integer, got {v!r}")
    if network.endswith(".nir"):
        from spikepipe.nir_import import load_nir

        return TracedWorkload(load_nir(network, timesteps=timesteps, batch=batch), Path(network).stem)
    if _is_file(network):
        model, example = _from_file(network)
        label = Path(network.split(":")[0]).stem + ":" + network.split(":")[1]
        return TracedWorkload(trace_model(model, example, timesteps=timesteps, batch=batch), label)
    from spikepipe import zoo

    meta = zoo.info(network)
    model, example = zoo.build(network, timesteps=_ZOO_TRACE_TIMESTEPS, batch=1)
    traced = trace_model(model, example)
    t, b = timesteps or meta.timesteps, batch or meta.batch
    layout = Layout("multi-step", t, b, "--timesteps" if timesteps else f"network default ({network})",
                    "--batch" if batch else f"network default ({network})")
    return TracedWorkload(Traced(traced.layers, layout), network)


def _from_file(spec: str) -> tuple[nn.Module, torch.Tensor]:
    path_s, func = spec.rsplit(":", 1)
    path = Path(path_s)
    if not path.is_file():
        raise WorkloadError(f"network file {path} not found (expected path/to/file.py:function)")
    if not func.isidentifier():
        raise WorkloadError(f"{func!r} is not a function name (expected path/to/file.py:function)")
    mod_name = f"spikepipe_user_{abs(hash(str(path.resolve())))}"
    with _beside(path):
        module = _import_file(path, mod_name)
        fn = getattr(module, func, None)
        if not callable(fn):
            raise WorkloadError(f"{path} has no function {func!r}")
        try:
            out = fn()
        except Exception as exc:  # noqa: BLE001
            raise WorkloadError(f"{path}:{func}() raised {type(exc).__name__}: {exc}") from None
    if (not isinstance(out, tuple) or len(out) != 2 or not isinstance(out[0], nn.Module)
            or not isinstance(out[1], torch.Tensor)):
        raise WorkloadError(f"{path}:{func}() must return (model: nn.Module, example_input: Tensor [T, B, ...] "
                            f"or [B, ...]), got {type(out).__name__}")
    return out[0], out[1]


@contextmanager
def _beside(path: Path) -> Iterator[None]:
    """The file's folder first on sys.path while it is imported and its function runs, as `python file.py` has
    it: a model file that imports a module next to it (`from mynets import Net`) loads as it does for its
    author. Taken off again afterwards, unless it was there already."""
    folder = str(path.resolve().parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)


def _import_file(path: Path, mod_name: str) -> types.ModuleType:
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
    return module


def load_workload(network: str, *, batch: int | None = None, timesteps: int | None = None,
                  processor: Processor | None = None) -> TaskGraph:
    """The costed task graph of one minibatch of `network` on `processor`, at the T and B the model runs
    (graph.layout says how they were found)."""
    from spikepipe.costs import build_task_graph

    if processor is None:  # the default hardware preset, so bare calls agree with the CLI's defaults
        from hwmodels.config import load_cluster

        processor = load_cluster(None, processors=1).processors[0]
    work = load_traced(network, batch=batch, timesteps=timesteps)
    lay = work.traced.layout
    return build_task_graph(work.traced.layers, batch=lay.batch, timesteps=lay.timesteps, processor=processor,
                            name=work.label, layout=lay.to_dict())
