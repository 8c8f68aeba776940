"""Hardware presets and user TOML files, validated at load into typed objects."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from hwmodels.errors import HardwareConfigError
from hwmodels.interconnect import Interconnect
from hwmodels.memory import Memory
from hwmodels.processor import Cluster, Processor
from hwmodels.systolic import Dataflow, SystolicArray
from hwmodels.vector import VectorUnit

PRESET_DIR = Path(__file__).parent / "presets"
DEFAULT_PRESET = "tpu-like-128"


def presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def load_cluster(spec: str | Path | None = None, *, processors: int | None = None, array: str | None = None,
                 dataflow: str | None = None) -> Cluster:
    """A Cluster from a preset name or TOML path (default preset if None); `processors` resizes it and
    `array`/`dataflow` override every processor's systolic array."""
    if spec is None:
        spec = DEFAULT_PRESET
    path = Path(spec)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise HardwareConfigError(f"hardware file {spec} not found; give a TOML file or one of: {', '.join(presets())}")
        text_source = str(path)
    else:
        path = PRESET_DIR / f"{spec}.toml"
        if not path.is_file():
            raise HardwareConfigError(f"unknown hardware preset {spec!r}; use one of: {', '.join(presets())} or a .toml file")
        text_source = f"preset {spec}"
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise HardwareConfigError(f"{text_source}: malformed TOML ({exc})") from None
    cluster = cluster_from_dict(data, source=text_source)
    if array is not None or dataflow is not None:
        procs = []
        for p in cluster.processors:
            arr = SystolicArray.parse(array, dataflow or p.array.dataflow) if array else replace(
                p.array, dataflow=Dataflow.parse(dataflow))
            procs.append(replace(p, array=arr))
        cluster = Cluster(tuple(procs), cluster.interconnect)
    if processors is not None:
        cluster = cluster.with_size(processors)
    return cluster


_PROC_KEYS = {"name", "rows", "cols", "dataflow", "freq_hz", "word_bytes", "vector_lanes", "ifmap_sram_bytes",
              "filter_sram_bytes", "ofmap_sram_bytes", "dram_bytes_per_cycle", "dram_bytes", "count"}
_LINK_KEYS = {"link_bytes_per_cycle", "link_latency_cycles", "topology"}


def _processor(d: dict[str, Any], source: str) -> tuple[Processor, int]:
    unknown = set(d) - _PROC_KEYS
    if unknown:
        raise HardwareConfigError(f"{source}: unknown processor keys {sorted(unknown)}; known: {sorted(_PROC_KEYS)}")
    for key in ("rows", "cols"):
        if key not in d:
            raise HardwareConfigError(f"{source}: processor is missing {key!r}")
    try:
        mem = Memory(**{k: d[k] for k in ("ifmap_sram_bytes", "filter_sram_bytes", "ofmap_sram_bytes",
                                          "dram_bytes_per_cycle", "dram_bytes") if k in d})
        proc = Processor(
            name=str(d.get("name", "pe")),
            array=SystolicArray(d["rows"], d["cols"], Dataflow.parse(d.get("dataflow", "os"))),
            vector=VectorUnit(d.get("vector_lanes", 128)),
            memory=mem,
            freq_hz=float(d.get("freq_hz", 1e9)),
            word_bytes=d.get("word_bytes", 2),
        )
    except HardwareConfigError as exc:
        raise HardwareConfigError(f"{source}: {exc}") from None
    except TypeError as exc:
        raise HardwareConfigError(f"{source}: bad processor value ({exc})") from None
    count = d.get("count", 1)
    if not isinstance(count, int) or count < 1:
        raise HardwareConfigError(f"{source}: processor count must be a positive integer, got {count!r}")
    return proc, count


def cluster_from_dict(data: dict[str, Any], source: str = "hardware") -> Cluster:
    unknown = set(data) - {"processor", "interconnect"}
    if unknown:
        raise HardwareConfigError(f"{source}: unknown sections {sorted(unknown)}; expected [[processor]] and [interconnect]")
    procs_raw = data.get("processor")
    if not procs_raw:
        raise HardwareConfigError(f"{source}: needs at least one [[processor]] table")
    if isinstance(procs_raw, dict):
        procs_raw = [procs_raw]
    procs: list[Processor] = []
    for d in procs_raw:
        if not isinstance(d, dict):
            raise HardwareConfigError(f"{source}: [[processor]] entries must be tables")
        proc, count = _processor(d, source)
        procs.extend([proc] * count)
    link = data.get("interconnect", {})
    unknown = set(link) - _LINK_KEYS
    if unknown:
        raise HardwareConfigError(f"{source}: unknown interconnect keys {sorted(unknown)}; known: {sorted(_LINK_KEYS)}")
    try:
        inter = Interconnect(**link)
    except HardwareConfigError as exc:
        raise HardwareConfigError(f"{source}: {exc}") from None
    return Cluster(tuple(procs), inter)
