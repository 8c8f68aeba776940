"""Schedules as files: a JSON form (plain data) and a compact text form (one token per slot), both loaded back
into a Schedule that is validated against the task graph and the hardware before anything uses it.

JSON: {"format": "spikepipe-schedule/1", "name", "kind", "period_cycles", "microbatches", "processors",
"network", "batch", "timesteps", "hardware": {...}, "slots": [{"task", "processor", "start_cycles", "lag",
"duration_cycles", "microbatch", "part", "fraction"}], "collectives": [...], "gradient_delays"}. Only task,
processor and start_cycles are required per slot: lag defaults to 0, micro-batch and part to 0, fraction to
1/microbatches, duration to what the cost model charges. Dependencies and gradient delays are always derived from
the graph, never read.

Text: a header line `# spikepipe-schedule/1 name=N kind=K period=P processors=N microbatches=M network=NAME
batch=B timesteps=T`, then whitespace-separated tokens `TASK[.mMB][.pPART]@pPROC:START+DURATIONrLAG[*FRACTION]`
(the slots' own compact form, ir.Slot.__str__; the fraction only when it is not 1/microbatches). A periodic slot
may end past the period (START + DURATION > period): it runs on into the next period (docs/design.md
section 4.2), and the validator checks its tail against the first slots of the period.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hwmodels import Cluster
from spikepipe.ir import Collective, Schedule, ScheduleError, Slot, TaskGraph, slot_lag_delays

FORMAT = "spikepipe-schedule/1"
_TOKEN = re.compile(r"(?P<task>[A-Za-z]+\d+)(?:\.m(?P<mb>\d+))?(?:\.p(?P<part>\d+))?@p(?P<proc>-?\d+):"
                    r"(?P<start>-?\d+)\+(?P<dur>-?\d+)r(?P<lag>-?\d+)(?:\*(?P<frac>[0-9.eE+-]+))?")
_HEADER_INTS = ("period", "processors", "microbatches", "batch", "timesteps")


class ScheduleFileError(ScheduleError):
    """A schedule file that cannot be used: its first line names the first broken slot; `grid` (when the slots
    could be read) is the schedule grid with that slot marked."""

    def __init__(self, message: str, grid: str | None = None) -> None:
        super().__init__(message)
        self.grid = grid


# ---------------------------------------------------------------- writing


def hardware_summary(cluster: Cluster) -> dict[str, Any]:
    p = cluster.processors[0]
    net = cluster.interconnect
    return {"processors": cluster.size, "array": f"{p.array.rows}x{p.array.cols}",
            "dataflow": getattr(p.array.dataflow, "value", str(p.array.dataflow)),
            "link_bytes_per_cycle": net.link_bytes_per_cycle, "link_latency_cycles": net.link_latency_cycles,
            "topology": net.topology, "homogeneous": cluster.homogeneous_}


def to_data(s: Schedule, graph: TaskGraph, cluster: Cluster) -> dict[str, Any]:
    """The schedule as plain data, with the network and hardware it was made for."""
    return {
        "format": FORMAT, "name": s.name, "kind": s.kind, "period_cycles": s.period_cycles,
        "microbatches": s.microbatches, "processors": s.processors, "network": graph.name, "batch": graph.batch,
        "timesteps": graph.timesteps, "hardware": hardware_summary(cluster),
        "slots": [{"task": x.task, "processor": x.processor, "start_cycles": x.start_cycles, "lag": x.lag,
                   "duration_cycles": x.duration_cycles, "microbatch": x.microbatch, "part": x.part,
                   "fraction": x.fraction} for x in s.slots],
        "collectives": [{"id": c.id, "kind": c.kind, "layer": c.layer, "bytes": c.bytes,
                         "start_cycles": c.start_cycles, "duration_cycles": c.duration_cycles,
                         "after": list(c.after), "lag": c.lag} for c in s.collectives],
        "gradient_delays": list(s.gradient_delays),
    }


def to_text(s: Schedule, graph: TaskGraph) -> str:
    if s.collectives:
        raise ScheduleFileError(f"schedule {s.name} has collectives, which the text form does not hold; "
                                "write it as .json")
    head = (f"# {FORMAT} name={s.name} kind={s.kind} period={s.period_cycles} processors={s.processors} "
            f"microbatches={s.microbatches} network={graph.name} batch={graph.batch} timesteps={graph.timesteps}")
    default = 1.0 / s.microbatches
    tokens = [str(x) + ("" if x.fraction == default else f"*{x.fraction!r}") for x in s.slots]
    return head + "\n" + "\n".join(tokens) + "\n"


def write_schedule(path: str | Path, s: Schedule, graph: TaskGraph, cluster: Cluster) -> Path:
    """JSON, or the text form when the path ends in .txt; written atomically."""
    from spikepipe.io import write_atomic

    path = Path(path)
    if path.suffix == ".txt":
        return write_atomic(path, to_text(s, graph))
    return write_atomic(path, json.dumps(to_data(s, graph, cluster), indent=1) + "\n")


# ---------------------------------------------------------------- reading


def parse_text(text: str) -> dict[str, Any]:
    """The text form as the same plain data the JSON form holds."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith(f"# {FORMAT}"):
        raise ScheduleFileError(f"not a schedule file: the first line must start with '# {FORMAT}'")
    data: dict[str, Any] = {"format": FORMAT}
    for field_ in lines[0][len(f"# {FORMAT}"):].split():
        key, sep, value = field_.partition("=")
        if not sep:
            raise ScheduleFileError(f"header field {field_!r} is not key=value")
        if key in _HEADER_INTS:
            try:
                data["period_cycles" if key == "period" else key] = int(value)
            except ValueError:
                raise ScheduleFileError(f"header {key}={value!r} is not an integer") from None
        else:
            data[key] = value
    slots = []
    for i, tok in enumerate(" ".join(lines[1:]).split()):
        m = _TOKEN.fullmatch(tok)
        if m is None:
            raise ScheduleFileError(f"slot {i} {tok!r} is not TASK[.mMB][.pPART]@pPROC:START+DURATIONrLAG[*FRAC]")
        slot: dict[str, Any] = {"task": m["task"], "processor": int(m["proc"]), "start_cycles": int(m["start"]),
                                "duration_cycles": int(m["dur"]), "lag": int(m["lag"]),
                                "microbatch": int(m["mb"] or 0), "part": int(m["part"] or 0)}
        if m["frac"] is not None:
            try:
                slot["fraction"] = float(m["frac"])
            except ValueError:
                raise ScheduleFileError(f"slot {i} {tok!r}: fraction {m['frac']!r} is not a number") from None
        slots.append(slot)
    data["slots"] = slots
    return data


def read_data(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ScheduleFileError(f"cannot read schedule file {path}: {exc}") from None
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScheduleFileError(f"schedule file {path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ScheduleFileError(f"schedule file {path} must hold a JSON object")
        return data
    return parse_text(text)


def _int(where: str, key: str, value: Any, minimum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ScheduleFileError(f"{where}: {key} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ScheduleFileError(f"{where}: {key} must be >= {minimum}, got {value}")
    return value


def _slot(i: int, d: Any, graph: TaskGraph, cluster: Cluster, microbatches: int) -> Slot:
    if not isinstance(d, Mapping):
        raise ScheduleFileError(f"slot {i} must be an object with task, processor and start_cycles, got {d!r}")
    task = d.get("task")
    where = f"slot {i} ({task})"
    unknown = sorted(set(d) - {"task", "processor", "start_cycles", "lag", "duration_cycles", "microbatch", "part",
                               "fraction"})
    if unknown:
        raise ScheduleFileError(f"{where}: unknown field(s) {unknown}")
    if not isinstance(task, str) or task not in {t.id for t in graph.tasks}:
        raise ScheduleFileError(f"slot {i} names task {task!r}, which network {graph.name} does not have")
    for key in ("processor", "start_cycles"):
        if key not in d:
            raise ScheduleFileError(f"{where}: missing {key}")
    proc = _int(where, "processor", d["processor"], 0)
    if proc >= cluster.size:
        raise ScheduleFileError(f"{where}: processor {proc} does not exist ({cluster.size} processors)")
    frac = d.get("fraction", 1.0 / microbatches)
    if not isinstance(frac, (int, float)) or isinstance(frac, bool) or not 0 < frac <= 1:
        raise ScheduleFileError(f"{where}: fraction must be a number in (0, 1], got {frac!r}")
    dur = d.get("duration_cycles")
    if dur is None:
        dur = graph.cycles(task, cluster.processors[proc], float(frac))
    return Slot(task, proc, _int(where, "start_cycles", d["start_cycles"]), _int(where, "duration_cycles", dur),
                lag=_int(where, "lag", d.get("lag", 0)), microbatch=_int(where, "microbatch", d.get("microbatch", 0), 0),
                part=_int(where, "part", d.get("part", 0), 0), fraction=float(frac))


def from_data(data: Mapping[str, Any], graph: TaskGraph, cluster: Cluster, source: str = "file") -> Schedule:
    """Build and validate the Schedule a file describes, for this graph and cluster."""
    from schedules import validate
    from schedules.common import lower_bound

    if data.get("format", FORMAT) != FORMAT:
        raise ScheduleFileError(f"schedule format {data.get('format')!r} is not {FORMAT!r}")
    for key in ("period_cycles", "slots"):
        if key not in data:
            raise ScheduleFileError(f"schedule file has no {key}")
    made_for = {k: data[k] for k in ("network", "batch", "timesteps", "processors") if k in data}
    here = {"network": graph.name, "batch": graph.batch, "timesteps": graph.timesteps, "processors": cluster.size}
    wrong = [k for k, v in made_for.items() if str(v) != str(here[k])]
    if wrong:
        raise ScheduleFileError("schedule file was made for " + ", ".join(f"{k} {made_for[k]}" for k in wrong)
                                + "; this run has " + ", ".join(f"{k} {here[k]}" for k in wrong))
    period = _int("schedule", "period_cycles", data["period_cycles"], 1)
    micro = _int("schedule", "microbatches", data.get("microbatches", 1), 1)
    kind = data.get("kind", "periodic" if micro == 1 else "flush")
    if kind not in ("periodic", "flush"):
        raise ScheduleFileError(f"schedule kind {kind!r} is neither periodic nor flush")
    if not isinstance(data["slots"], list) or not data["slots"]:
        raise ScheduleFileError("schedule file's slots must be a non-empty list")
    slots = [_slot(i, d, graph, cluster, micro) for i, d in enumerate(data["slots"])]
    try:
        colls = tuple(Collective(**{**c, "after": tuple(c.get("after", ()))}) for c in data.get("collectives", ()))
    except TypeError as exc:
        raise ScheduleFileError(f"a collective is malformed: {exc}") from None
    name = str(data.get("name", "file"))
    try:
        delays = slot_lag_delays(slots, graph.num_layers, period)
    except ScheduleError:
        delays = (0,) * graph.num_layers  # the validator names what is wrong, with the grid
    info = {"lower_bound_cycles": lower_bound(graph, cluster, (micro,)), "source": source,
            "made_for": {**made_for, "hardware": data.get("hardware")}}
    sched = Schedule(name=name, kind=kind, processors=cluster.size, period_cycles=period, slots=tuple(slots),
                     dependencies=_dependencies(graph, cluster, slots, colls), gradient_delays=delays, collectives=colls,
                     microbatches=micro, info=info)
    try:
        validate(sched, graph, cluster)
    except ScheduleError as exc:
        raise _file_error(exc, sched) from None
    return sched


def _dependencies(graph: TaskGraph, cluster: Cluster, slots: list[Slot], colls: tuple[Collective, ...]) -> tuple:
    """The graph's slot-level edges, and for a split layer not reduced by a collective its W parts' partial
    gradients to W part 0 (as the split scheduler adds them: they load the links and decide when the update
    lands)."""
    from schedules.common import expected_dependencies
    from schedules.split import reduction_dependencies

    deps = expected_dependencies(graph, slots)
    reduced = {c.layer for c in colls}
    if any(x.part for x in slots):
        deps = (*deps, *(d for d in reduction_dependencies(graph, cluster, slots)
                         if int(d.dst[1:].split(".")[0]) not in reduced))
    return deps


def _file_error(exc: ScheduleError, sched: Schedule) -> ScheduleFileError:
    first, _, rest = str(exc).partition("\n")
    grid = rest if rest.startswith("schedule ") else None
    if grid is None:
        try:
            grid = sched.grid()
        except Exception:  # noqa: BLE001 - a broken schedule may break the printer; the message still goes out
            grid = None
    return ScheduleFileError(f"invalid schedule file: {first}", grid=grid)


def load_schedule(path: str | Path, graph: TaskGraph, cluster: Cluster) -> Schedule:
    return from_data(read_data(path), graph, cluster, source=str(path))
