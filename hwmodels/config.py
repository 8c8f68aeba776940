"""Hardware presets and user TOML files, validated at load into typed objects."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from hwmodels.energy import EnergyTable
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


# key -> (accepted types, description); bools are rejected where numbers are expected (TOML true is not 1).
_PROC_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str,), "a string"),
    "rows": ((int,), "a positive integer"),
    "cols": ((int,), "a positive integer"),
    "dataflow": ((str,), "one of os, ws, is"),
    "freq_hz": ((int, float), "a number > 0"),
    "word_bytes": ((int,), "1, 2, 4 or 8"),
    "vector_lanes": ((int,), "a positive integer"),
    "ifmap_sram_bytes": ((int,), "a positive integer"),
    "filter_sram_bytes": ((int,), "a positive integer"),
    "ofmap_sram_bytes": ((int,), "a positive integer"),
    "dram_bytes_per_cycle": ((int, float), "a number > 0"),
    "dram_bytes": ((int,), "a positive integer"),
    "double_buffered": ((bool,), "true or false"),
    "count": ((int,), "a positive integer"),
    "energy": ((dict,), "a table of energies (the keys of [energy])"),
    "spike_format": ((str,), "dense or bitmap"),
}
_LINK_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "link_bytes_per_cycle": ((int, float), "a number > 0"),
    "link_latency_cycles": ((int,), "an integer >= 0"),
    "topology": ((str,), "all-to-all, ring, mesh, torus or switch"),
    "grid": ((list,), "[rows, cols] (mesh and torus)"),
    "placement": ((list,), "the grid position of every processor, a permutation of 0..P-1"),
}
_MEM_KEYS = ("ifmap_sram_bytes", "filter_sram_bytes", "ofmap_sram_bytes", "dram_bytes_per_cycle", "dram_bytes",
             "double_buffered")


def _check_table(d: Any, known: dict[str, tuple[tuple[type, ...], str]], where: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise HardwareConfigError(f"{where} must be a table, got {type(d).__name__}")
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise HardwareConfigError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    for key, value in d.items():
        types, desc = known[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise HardwareConfigError(f"{where}: {key} must be {desc}, got {value!r}")
    return d


def _processor(d: Any, where: str, energy: EnergyTable) -> tuple[Processor, int]:
    d = _check_table(d, _PROC_KEYS, where)
    missing = [key for key in ("rows", "cols") if key not in d]
    if missing:
        raise HardwareConfigError(f"{where} is missing {' and '.join(map(repr, missing))} (the array size)")
    try:
        proc = Processor(
            name=d.get("name", "pe"),
            array=SystolicArray(d["rows"], d["cols"], Dataflow.parse(d.get("dataflow", "os"))),
            vector=VectorUnit(d.get("vector_lanes", 128)),
            memory=Memory(**{k: d[k] for k in _MEM_KEYS if k in d}),
            freq_hz=float(d.get("freq_hz", 1e9)),
            word_bytes=d.get("word_bytes", 2),
            spike_format=d.get("spike_format", "dense"),
            # a processor's own [processor.energy] overrides the file's [energy] key by key
            energy=EnergyTable.from_dict(d["energy"], f"{where}.energy", base=energy) if "energy" in d else energy,
        )
    except HardwareConfigError as exc:
        raise HardwareConfigError(f"{where}: {exc}") from None
    count = d.get("count", 1)
    if count < 1:
        raise HardwareConfigError(f"{where}: count must be a positive integer, got {count!r}")
    return proc, count


def cluster_from_dict(data: dict[str, Any], source: str = "hardware") -> Cluster:
    """A Cluster from parsed TOML: one or more [[processor]] tables (each with a count; different tables make
    a heterogeneous cluster, in file order), an optional [interconnect] table and an optional [energy] table
    (per-operation energies of every processor; a [[processor]]'s own `energy` table overrides it)."""
    unknown = set(data) - {"processor", "interconnect", "energy"}
    if unknown:
        raise HardwareConfigError(f"{source}: unknown sections {sorted(unknown)}; expected [[processor]], "
                                  "[interconnect] and [energy]")
    energy = EnergyTable.from_dict(data.get("energy", {}), f"{source}: [energy]")
    procs_raw = data.get("processor")
    if not procs_raw:
        raise HardwareConfigError(f"{source}: needs at least one [[processor]] table")
    if isinstance(procs_raw, dict):
        procs_raw = [procs_raw]
    if not isinstance(procs_raw, list):
        raise HardwareConfigError(f"{source}: processor must be a [[processor]] table, got {procs_raw!r}")
    procs: list[Processor] = []
    for i, d in enumerate(procs_raw):
        proc, count = _processor(d, f"{source}: [[processor]] #{i + 1}", energy)
        procs.extend([proc] * count)
    link = _check_table(data.get("interconnect", {}), _LINK_KEYS, f"{source}: [interconnect]")
    try:
        inter = Interconnect(**link)
    except HardwareConfigError as exc:
        raise HardwareConfigError(f"{source}: {exc}") from None
    return Cluster(tuple(procs), inter)
