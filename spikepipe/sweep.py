"""Design-space sweeps on Dask: expand a grid, run each point once, cache by content, resume after interruption.

A sweep file (TOML):

    [sweep]
    name = "speedup"          # results land in <out>/<name>.csv (+ .parquet) and <out>/cache/
    kind = "simulate"         # "simulate" (schedule solve + SimPy replay) or "train"
    [grid]                    # every combination of these lists is one point
    network = ["snn-cnn", "vgg11"]
    processors = [2, 4, 8]
    schedule = ["pipedream", "spikepipe"]
    [fixed]                   # the same for every point
    batch = 32
    timesteps = 4

A point's cache key is the SHA-256 of its canonical JSON (kind + every parameter + a fingerprint of the product's
source code), so a finished point is never recomputed, whichever sweep file names it, and never reused after the
code that computed it changed. Failing points are recorded with their error and retried on the next run.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import time
import tomllib
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spikepipe.io import write_atomic, write_csv, write_json
from spikepipe.ir import SpikePipeError

log = logging.getLogger(__name__)

KINDS = ("simulate", "train")
# the training-method keys are the same for both kinds (spikepipe.cli.method_args.METHOD_KEYS)
METHOD_KEYS = {"method", "checkpoint_every", "skip", "window", "blocks", "hard_fraction", "skipper_gradient",
               "exit_confidence"}
# a simulate point's keys besides the schedule options (those are the generators' declarations: simulate_keys)
SIMULATE_KEYS = {"network", "processors", "schedule", "batch", "timesteps", "hardware", "array", "dataflow",
                 "iterations"} | METHOD_KEYS
TRAIN_KEYS = {"network", "dataset", "schedule", "processors", "epochs", "batch", "timesteps", "seed", "lr",
              "optimizer", "stash", "compensation", "data_dir", "limit_train", "period_slack"} | METHOD_KEYS


def simulate_keys() -> set[str]:
    """What a simulate point may set: SIMULATE_KEYS and every option a schedule generator declares
    (schedules.options), routed to the generators that take it as `simulate` routes them (one list, not a copy)."""
    from schedules.registry import option_targets

    return SIMULATE_KEYS | set(option_targets())


class SweepError(SpikePipeError):
    """A sweep file is invalid or a sweep cannot run."""


@dataclass(frozen=True)
class SweepSpec:
    name: str
    kind: str
    grid: Mapping[str, tuple[Any, ...]]
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def points(self) -> list[dict[str, Any]]:
        """Every grid combination merged with the fixed values, in a deterministic order."""
        keys = sorted(self.grid)
        out = []
        for combo in itertools.product(*(self.grid[k] for k in keys)):
            out.append({**self.fixed, **dict(zip(keys, combo, strict=True))})
        return out


def load_spec(path: str | Path) -> SweepSpec:
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep file {path} not found")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SweepError(f"{path}: malformed TOML ({exc})") from None
    return check_values(spec_from_dict(data, source=str(path)), source=str(path))


def spec_from_dict(data: Mapping[str, Any], source: str = "sweep") -> SweepSpec:
    unknown = set(data) - {"sweep", "grid", "fixed"}
    if unknown:
        raise SweepError(f"{source}: unknown sections {sorted(unknown)}; expected [sweep], [grid], [fixed]")
    head = data.get("sweep", {})
    name = str(head.get("name", "sweep"))
    if not name.replace("-", "").replace("_", "").isalnum():
        raise SweepError(f"{source}: sweep name {name!r} must be letters, digits, - or _")
    kind = head.get("kind", "simulate")
    if kind not in KINDS:
        raise SweepError(f"{source}: unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    grid_raw = data.get("grid")
    if not grid_raw:
        raise SweepError(f"{source}: [grid] needs at least one parameter list")
    grid: dict[str, tuple[Any, ...]] = {}
    for k, v in grid_raw.items():
        vals = tuple(v) if isinstance(v, list) else (v,)
        if not vals:
            raise SweepError(f"{source}: grid parameter {k!r} has no values")
        grid[k] = vals
    fixed = dict(data.get("fixed", {}))
    allowed = simulate_keys() if kind == "simulate" else TRAIN_KEYS
    bad = (set(grid) | set(fixed)) - allowed
    if bad:
        raise SweepError(f"{source}: unknown parameters {sorted(bad)} for kind {kind}; known: {sorted(allowed)}")
    both = set(grid) & set(fixed)
    if both:
        raise SweepError(f"{source}: parameters {sorted(both)} are in both [grid] and [fixed]")
    if "network" not in grid and "network" not in fixed:
        raise SweepError(f"{source}: every point needs a network (in [grid] or [fixed])")
    return SweepSpec(name, kind, grid, fixed)


def check_values(spec: SweepSpec, source: str = "sweep") -> SweepSpec:
    """Reject a bad parameter value (unknown network or schedule, processors = 0, ...) before any worker starts:
    a typo must not cost a cluster start-up and a table of failed rows. Points that fail at run time for other
    reasons still become error rows."""
    for key, values in [*spec.grid.items(), *((k, (v,)) for k, v in spec.fixed.items())]:
        for value in values:
            _check_value(spec.kind, key, value, source)
    return spec


_POSITIVE_INTS = ("processors", "batch", "timesteps", "iterations", "epochs", "limit_train")
_POSITIVE_NUMBERS = ("time_limit_s", "lr")


def _check_value(kind: str, key: str, value: Any, source: str) -> None:
    where = f"{source}: {key} = {value!r}"
    if key in _POSITIVE_INTS and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise SweepError(f"{where} must be a positive integer")
    if key in _POSITIVE_NUMBERS and (not isinstance(value, (int, float)) or isinstance(value, bool)
                                     or not 0 < value < float("inf")):
        raise SweepError(f"{where} must be a positive number")
    if key == "schedule":
        from schedules.registry import names

        valid = names() + (["none"] if kind == "train" else [])
        if not isinstance(value, str) or value not in valid:
            raise SweepError(f"{where} is not a schedule; valid names: {', '.join(valid)}")
    if kind == "simulate" and key not in SIMULATE_KEYS:  # a schedule option: each taker's declaration checks it
        from schedules.common import ScheduleOptionError
        from schedules.registry import option_targets, parse_options

        for name in option_targets().get(key, ()):
            try:
                parse_options(name, {key: value})
            except ScheduleOptionError as exc:
                raise SweepError(f"{where}: {exc}") from None
    if key in METHOD_KEYS:
        from spikepipe.methods.registry import TRAINER_METHODS, TRANSFORM_METHODS, MethodError, MethodOptions

        valid = TRAINER_METHODS if kind == "train" else TRANSFORM_METHODS
        if key == "method" and value not in valid:
            raise SweepError(f"{where} is not a training method; valid: {', '.join(valid)}")
        try:
            MethodOptions.of("bptt", **({} if key == "method" else {key: value}))
        except (MethodError, TypeError) as exc:
            raise SweepError(f"{where}: {exc}") from None
    if key == "dataset" and value not in ("digits", "fashion-mnist"):
        raise SweepError(f"{where} is not a dataset; use digits or fashion-mnist")
    if key == "dataflow" and value not in ("os", "ws", "is"):
        raise SweepError(f"{where} is not a dataflow; use os, ws or is")
    if key == "array":
        from hwmodels import HardwareConfigError
        from hwmodels.systolic import SystolicArray

        try:
            SystolicArray.parse(str(value))
        except HardwareConfigError as exc:
            raise SweepError(f"{where}: {exc}") from None
    if key == "hardware":
        from hwmodels.config import presets

        if not isinstance(value, str) or (value not in presets() and not Path(value).is_file()):
            raise SweepError(f"{where} is neither a hardware preset ({', '.join(presets())}) nor an existing "
                             "TOML file")
    if key == "network":
        if not isinstance(value, str):
            raise SweepError(f"{where} must be a network name or path/to/file.py:function")
        if ":" in value and value.split(":", 1)[0].endswith(".py"):
            if not Path(value.split(":", 1)[0]).is_file():
                raise SweepError(f"{where}: network file not found (expected path/to/file.py:function)")
        else:
            from spikepipe import zoo

            if value not in zoo.names():
                raise SweepError(f"{where} is not a built-in network ({', '.join(zoo.names())}) or "
                                 "path/to/file.py:function")


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of the product's source (spikepipe, schedules, hwmodels incl. presets): a cached point is reused only
    if it was computed by the same code, so a fix to a scheduler can never be hidden by an old result."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for pkg in ("spikepipe", "schedules", "hwmodels"):
        for f in sorted((root / pkg).rglob("*")):
            if f.suffix in (".py", ".toml") and f.is_file():
                h.update(str(f.relative_to(root)).encode())
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def point_key(kind: str, point: Mapping[str, Any]) -> str:
    canon = json.dumps({"kind": kind, "code": code_fingerprint(), **point}, sort_keys=True, separators=(",", ":"),
                       default=str)
    return hashlib.sha256(canon.encode()).hexdigest()[:20]


# ---------------------------------------------------------------- running one point (runs on a worker)


def run_point(kind: str, point: Mapping[str, Any]) -> dict[str, Any]:
    """Run one point and never raise: a failure becomes a row with status 'error' and the message."""
    t0 = time.perf_counter()
    try:
        metrics = _RUNNERS[kind](dict(point))
        status, error = "ok", ""
    except Exception as exc:  # noqa: BLE001 - one failing point must not stop the sweep
        metrics, status = {}, "error"
        error = f"{type(exc).__name__}: {exc}"  # whole: a grid or hint on later lines is the reason
        log.debug("point failed: %s", traceback.format_exc())
    return {**point, **metrics, "status": status, "error": error, "wall_s": round(time.perf_counter() - t0, 3)}


def _run_simulate(point: dict[str, Any]) -> dict[str, Any]:
    from hwmodels.config import load_cluster
    from schedules.registry import option_targets
    from spikepipe.methods.registry import MethodOptions
    from spikepipe.methods.transforms import transform
    from spikepipe.sim.evaluate import evaluate_graph, load_graph

    cluster = load_cluster(point.get("hardware"), processors=int(point["processors"]), array=point.get("array"),
                           dataflow=point.get("dataflow"))
    graph = load_graph(point["network"], cluster, point.get("batch"), point.get("timesteps"))
    method = MethodOptions.of(str(point.get("method", "bptt")),
                              **{k: point[k] for k in METHOD_KEYS - {"method"} if k in point})
    kwargs: dict[str, Any] = {
        # no iterations given: the simulator runs enough for its lags to reach and measure the steady state
        "iterations": int(point["iterations"]) if "iterations" in point else None,
        "options": {k: point[k] for k in option_targets() if k in point}, "record": False, "keep_going": False}
    if method.name == "bloctrain":  # its phases, a task graph each, combined (spikepipe.methods.phased)
        from spikepipe.methods.phased import evaluate_phases

        report = evaluate_phases(graph, cluster, [point.get("schedule", "spikepipe")], method, **kwargs).report
    else:
        report = evaluate_graph(transform(graph, method), cluster, [point.get("schedule", "spikepipe")],
                                **kwargs).report
    row = dict(report["results"][0])
    if "phases" in row:  # one column: the phases' own figures as JSON
        row["phases"] = json.dumps(row["phases"])
    row["lower_bound_cycles"] = report["lower_bound_cycles"]
    row["sequential_cycles"] = report.get("sequential_cycles")
    row.pop("schedule", None)
    # a sweep row's `status` is the point's (ok | error): the schedule's certificate status goes beside it
    row["certificate_status"] = row.pop("status", None)
    if isinstance(row.get("gradient_delays"), (list, tuple)):
        delays = list(row["gradient_delays"])
        row["max_delay"] = max(delays, default=0)
        row["total_delay"] = sum(delays)
        row["gradient_delays"] = json.dumps(delays)
    for cat, joules in (row.get("energy_breakdown_joules") or {}).items():  # energy columns, one per category
        row[f"energy_{cat}_joules"] = joules
    return {k: v for k, v in row.items() if not isinstance(v, (dict, list, tuple))}


def _run_train(point: dict[str, Any]) -> dict[str, Any]:
    from spikepipe.training import run_from_options

    result = run_from_options(point)
    return {k: (json.dumps(v) if isinstance(v, (list, tuple)) else v) for k, v in result.items()
            if not isinstance(v, dict)}


_RUNNERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"simulate": _run_simulate, "train": _run_train}


# ---------------------------------------------------------------- the sweep driver


@dataclass(frozen=True)
class SweepOutcome:
    table_csv: Path
    table_parquet: Path | None
    total_points: int
    computed_points: int
    cached_points: int
    failed_points: int
    wall_s: float


class Cache:
    """One JSON file per finished point, written atomically: an interrupted sweep loses at most running points."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            row = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # unreadable cache entries are recomputed, never trusted
        return row if row.get("status") == "ok" else None

    def put(self, key: str, row: Mapping[str, Any]) -> None:
        write_json(self.path(key), dict(row))


def run_sweep(
    spec: SweepSpec,
    out_dir: str | Path,
    *,
    scheduler: str | None = None,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    max_points: int | None = None,
) -> SweepOutcome:
    """Run every point of `spec` not yet in the cache on a Dask cluster and write the table.

    `scheduler` is the address of an existing Dask scheduler (tcp://host:port); otherwise a LocalCluster with
    `workers` single-threaded worker processes is started and closed. `max_points` stops after that many new points
    (the table still lists every finished point): a deliberate, clean interruption.
    """
    out = Path(out_dir)
    cache = Cache(out / "cache")
    points = spec.points()
    keyed = [(point_key(spec.kind, p), p) for p in points]
    todo = [(k, p) for k, p in keyed if cache.get(k) is None]
    if max_points is not None:
        todo = todo[:max_points]
    cached = len(points) - len([1 for k, _ in keyed if cache.get(k) is None])
    t0 = time.perf_counter()
    failed = computed = 0
    done = cached
    if progress:
        progress(done, len(points))
    if todo:
        for key, row in _execute(spec.kind, todo, scheduler, workers):
            row = {**row, "key": key}
            if row["status"] == "ok":
                cache.put(key, row)
                computed += 1
            else:
                failed += 1
                write_json(cache.root / "errors" / f"{key}.json", row)
            done += 1
            _write_table(spec, keyed, cache, out)
            if progress:
                progress(done, len(points))
    csv_path, pq = _write_table(spec, keyed, cache, out)
    return SweepOutcome(csv_path, pq, len(points), computed, cached, failed, round(time.perf_counter() - t0, 3))


def _execute(kind: str, todo: list[tuple[str, dict[str, Any]]], scheduler: str | None,
             workers: int) -> Iterator[tuple[str, dict[str, Any]]]:
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler, timeout="20s")
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
        client = Client(cluster)
    try:
        futures = {}
        for key, point in todo:
            fut = client.submit(run_point, kind, point, key=f"sweep-{key}", pure=False)
            futures[fut] = key
        for fut in as_completed(futures):
            key = futures[fut]
            try:
                row = fut.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker is one failed point, not a lost sweep
                row = {**dict(todo[[k for k, _ in todo].index(key)][1]), "status": "error",
                       "error": f"{type(exc).__name__}: {exc}"}
            yield key, row
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _write_table(spec: SweepSpec, keyed: list[tuple[str, dict[str, Any]]], cache: Cache,
                 out: Path) -> tuple[Path, Path | None]:
    rows = []
    for key, _point in keyed:
        row = cache.get(key)
        if row is None:
            err = cache.root / "errors" / f"{key}.json"
            if err.is_file():
                try:
                    row = json.loads(err.read_text())
                except (OSError, json.JSONDecodeError):
                    row = None
        if row is not None:
            rows.append({**row, "key": key})
    csv_path = write_csv(out / f"{spec.name}.csv", rows)
    pq_path: Path | None = None
    try:
        import pandas as pd

        if rows:
            import io

            buf = io.BytesIO()
            df = pd.DataFrame(rows)
            for col in df.columns:  # mixed-type columns (e.g. an error row) would break Arrow's typing
                if df[col].dtype == object:
                    df[col] = df[col].astype(str)
            df.to_parquet(buf, index=False)
            pq_path = write_atomic(out / f"{spec.name}.parquet", buf.getvalue())
    except ImportError:
        pq_path = None
    return csv_path, pq_path
