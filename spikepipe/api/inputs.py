"""The API's two inputs besides the schedule: a workload (a network and its example input) and hardware.

Both are frozen values built once and passed to every operation; neither touches global state.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from hwmodels import Cluster, HardwareConfigError
from spikepipe.ir import SpikePipeError, TaskGraph

if TYPE_CHECKING:
    from spikepipe.api.results import NetworksResult


class HardwareError(SpikePipeError, HardwareConfigError):
    """Hardware cannot be built from the given preset, file or keywords (also a hwmodels.HardwareConfigError)."""


class ApiArgumentError(SpikePipeError, ValueError):
    """An argument of a spikepipe API call is out of range or of the wrong kind."""


def positive(name: str, value: Any, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ApiArgumentError(f"{name} must be a positive integer, got {value!r}")


# ---------------------------------------------------------------- hardware


@dataclass(frozen=True)
class Hardware:
    """A cluster of systolic-array processors and the links between them.

    `spec` is the preset name or TOML path it was built from (None: the default preset) and `overrides` the
    keyword changes applied on top; `cluster` is the hwmodels.Cluster every operation uses."""

    cluster: Cluster
    spec: str | None = None
    overrides: tuple[tuple[str, Any], ...] = ()

    @property
    def processors(self) -> int:
        return self.cluster.size

    def with_processors(self, processors: int) -> Hardware:
        """The same kind of cluster with `processors` processors (a heterogeneous one is cycled through)."""
        positive("processors", processors, optional=False)
        return replace(self, cluster=_hw(lambda: self.cluster.with_size(processors)))

    @property
    def is_plain_spec(self) -> bool:
        """True when a preset or file alone describes it (what `spikepipe train --hardware` can take)."""
        return not self.overrides


_PROCESSOR_KEYS = ("rows", "cols", "dataflow", "freq_hz", "word_bytes", "vector_lanes")
_MEMORY_KEYS = ("ifmap_sram_bytes", "filter_sram_bytes", "ofmap_sram_bytes", "dram_bytes_per_cycle", "dram_bytes")
_LINK_KEYS = ("link_bytes_per_cycle", "link_latency_cycles", "topology")


def _hw(build: Any) -> Any:
    try:
        return build()
    except HardwareError:
        raise
    except HardwareConfigError as exc:
        raise HardwareError(str(exc)) from None


def hardware(spec: str | Path | None = None, *, processors: int | None = None, array: str | None = None,
             dataflow: str | None = None, rows: int | None = None, cols: int | None = None,
             freq_hz: float | None = None, word_bytes: int | None = None, vector_lanes: int | None = None,
             ifmap_sram_bytes: int | None = None, filter_sram_bytes: int | None = None,
             ofmap_sram_bytes: int | None = None, dram_bytes_per_cycle: float | None = None,
             dram_bytes: int | None = None, link_bytes_per_cycle: float | None = None,
             link_latency_cycles: int | None = None, topology: str | None = None) -> Hardware:
    """Hardware from a preset name or TOML file (None: the default preset, `tpu-like-128`), as
    `--hardware`, with `array="RxC"` and `dataflow` as `--array`/`--dataflow`, and any field of the file's
    `[[processor]]` or `[interconnect]` tables as a keyword (applied to every processor)."""
    from dataclasses import replace as dc_replace

    from hwmodels import Dataflow, SystolicArray
    from hwmodels.config import load_cluster

    spec_s = None if spec is None else str(spec)
    cluster = _hw(lambda: load_cluster(spec_s, processors=processors, array=array, dataflow=dataflow))
    given = {k: v for k, v in locals().items() if k in _PROCESSOR_KEYS + _MEMORY_KEYS + _LINK_KEYS and v is not None}
    overrides = tuple(sorted({**given, "array": array, "dataflow": dataflow}.items()))
    overrides = tuple((k, v) for k, v in overrides if v is not None)
    if not given:
        return Hardware(cluster, spec_s, overrides)

    def build() -> Cluster:
        procs = []
        for p in cluster.processors:
            arr = p.array
            if "rows" in given or "cols" in given or "dataflow" in given:
                arr = SystolicArray(given.get("rows", arr.rows), given.get("cols", arr.cols),
                                    Dataflow.parse(given["dataflow"]) if "dataflow" in given else arr.dataflow)
            mem = dc_replace(p.memory, **{k: given[k] for k in _MEMORY_KEYS if k in given})
            vec = dc_replace(p.vector, lanes=given["vector_lanes"]) if "vector_lanes" in given else p.vector
            procs.append(dc_replace(p, array=arr, memory=mem, vector=vec,
                                    **{k: given[k] for k in ("freq_hz", "word_bytes") if k in given}))
        link = dc_replace(cluster.interconnect, **{k: given[k] for k in _LINK_KEYS if k in given})
        return Cluster(tuple(procs), link)

    try:
        built = _hw(build)
    except (TypeError, ValueError) as exc:
        raise HardwareError(f"invalid hardware keyword: {exc}") from None
    return Hardware(built, spec_s, overrides)


def as_hardware(hw: Hardware | str | Path | Cluster | None, processors: int | None = None) -> Hardware:
    """Hardware from whatever an operation was given; resized to `processors` when that is not None."""
    if isinstance(hw, Hardware):
        out = hw
    elif isinstance(hw, Cluster):
        out = Hardware(hw, None, (("cluster", "given"),))
    elif hw is None or isinstance(hw, (str, Path)):
        out = hardware(hw, processors=processors)
    else:
        raise ApiArgumentError(f"hardware must be spikepipe.Hardware, a preset name, a TOML path or a "
                               f"hwmodels.Cluster, got {type(hw).__name__}")
    if processors is not None and out.processors != processors:
        out = out.with_processors(processors)
    return out


def presets() -> list[str]:
    """Names of the bundled hardware presets."""
    from hwmodels.config import presets as names

    return names()


# ---------------------------------------------------------------- workload


@dataclass(frozen=True)
class Workload:
    """A network to cost, schedule and train: a model with an example input [T, B, ...], or a name the CLI takes
    (a built-in network, `path/to/file.py:function`, a `.nir` file) kept as `spec`.

    `model` and `example_input` are None only for specs that are loaded when first costed (`.nir`)."""

    name: str
    spec: str | None
    model: nn.Module | None = field(default=None, compare=False, repr=False)
    example_input: torch.Tensor | None = field(default=None, compare=False, repr=False)
    batch: int | None = None
    timesteps: int | None = None

    def task_graph(self, hw: Hardware | str | Path | Cluster | None = None) -> TaskGraph:
        """The costed F/B/W task graph of one minibatch, priced on the hardware's first processor (as the CLI
        does)."""
        cluster = as_hardware(hw).cluster
        if self.spec is not None:
            from spikepipe.sim.evaluate import load_graph

            return load_graph(self.spec, cluster, self.batch, self.timesteps)
        from spikepipe.costs import build_task_graph
        from spikepipe.frontend import trace_model

        assert self.model is not None and self.example_input is not None
        # the front end reads T and B from how the model runs on its example ([T, B, ...] multi-step or
        # [B, ...] with the time loop in forward); batch/timesteps override where the model allows it
        traced = trace_model(self.model, self.example_input, timesteps=self.timesteps, batch=self.batch)
        lay = traced.layout
        return build_task_graph(traced.layers, batch=lay.batch, timesteps=lay.timesteps,
                                processor=cluster.processors[0], name=self.name, layout=lay.to_dict())


def load_network(network: str | Path | nn.Module, example_input: torch.Tensor | None = None, *,
                 batch: int | None = None, timesteps: int | None = None, name: str | None = None) -> Workload:
    """A workload from a torch module and its example input [T, B, ...], or from what `--network` takes: a
    built-in name (`spikepipe.networks()`), `path/to/file.py:function` (returning `(model, example_input)`) or a
    `.nir` graph. `batch` and `timesteps` override the defaults as `--batch`/`--timesteps` do."""
    positive("batch", batch)
    positive("timesteps", timesteps)
    if isinstance(network, nn.Module):
        if not isinstance(example_input, torch.Tensor):
            raise ApiArgumentError("a model needs an example input tensor: [T, B, ...] for a multi-step model, "
                                   "[B, ...] for one that runs its time loop in forward")
        label = name or type(network).__name__
        return Workload(label, None, network, example_input, batch, timesteps)
    if example_input is not None:
        raise ApiArgumentError("example_input goes with a model; a named network brings its own")
    spec = str(network)
    if not isinstance(network, (str, Path)) or not spec:
        raise ApiArgumentError(f"network must be a torch module, a name or a path, got {type(network).__name__}")
    if spec.endswith(".nir"):
        return Workload(name or Path(spec).stem, spec, None, None, batch, timesteps)
    from spikepipe.workload import load_model

    model, example = load_model(spec, batch=batch, timesteps=timesteps)
    label = Path(spec.split(":")[0]).stem + ":" + spec.split(":")[1] if ":" in spec else spec
    return Workload(name or label, spec, model, example, batch, timesteps)


def networks() -> list[str]:
    """Names of the built-in networks (`network_details()` for what `spikepipe networks --json` says of each)."""
    from spikepipe import zoo

    return zoo.names()


def network_details() -> NetworksResult:
    """The built-in networks with what `spikepipe networks --json` says of each (description, input shape,
    classes, default timesteps and batch); `.to_dict()` is that object."""
    from spikepipe import zoo
    from spikepipe.api.contract import networks_report
    from spikepipe.api.results import NetworksResult, _frozen

    data = networks_report()
    return NetworksResult(tuple(data["networks"]), tuple(zoo.info(n) for n in data["networks"]), _frozen(data))
