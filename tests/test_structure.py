"""The codebase's shape (issue 20): modules a reader can hold in mind, dependencies that go one way between
subpackages, and names listed once: where two places list the same names (schedules, methods, options, networks)
they must agree, so this file fails the moment one of them drifts.

Known exceptions are listed here by name with their size or reason, and must stay true: a fixed one fails the
test until it is struck off, so the lists can only shrink.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("hwmodels", "schedules", "spikepipe")
MAX_LINES = 500

# product modules over MAX_LINES today, with their line count as a ceiling (they may shrink, not grow)
OVERSIZED: dict[str, int] = {}

# dependency cycles between subpackages today (each a set of units; see `units` below), and why: none left (the
# trainer dispatch moved up to spikepipe.training, energy reads a replay through a Protocol)
KNOWN_CYCLES: set[frozenset[str]] = set()


def product_files() -> list[Path]:
    return sorted(p for pkg in PRODUCT for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


# ---------------------------------------------------------------- size


def test_no_product_module_over_500_lines():
    sizes = {rel(p): len(p.read_text().splitlines()) for p in product_files()}
    over = {f: n for f, n in sizes.items() if n > MAX_LINES}
    new = {f: n for f, n in over.items() if f not in OVERSIZED}
    assert not new, f"modules over {MAX_LINES} lines: {new}; split them (docs/extending.md)"
    grown = {f: (n, OVERSIZED[f]) for f, n in over.items() if n > OVERSIZED[f]}
    assert not grown, f"known oversized modules grew (now, ceiling): {grown}"
    fixed = sorted(set(OVERSIZED) - set(over))
    assert not fixed, f"{fixed} are {MAX_LINES} lines or less now: strike them off OVERSIZED"


# ---------------------------------------------------------------- imports


def module_name(p: Path) -> str:
    parts = list(p.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str | None:
    """The subpackage a module belongs to: hwmodels, schedules, or spikepipe.X (X a package or a top-level module
    of spikepipe); None outside the product and for the spikepipe package's own __init__."""
    parts = module.split(".")
    if parts[0] in ("hwmodels", "schedules"):
        return parts[0]
    if parts[0] == "spikepipe" and len(parts) > 1:
        return ".".join(parts[:2])
    return None


def imports_of(p: Path) -> set[str]:
    """Every module `p` imports, at the top or inside a function (a lazy import is a dependency all the same)."""
    name = module_name(p)
    package = name if p.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(p.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # `from spikepipe import zoo` is spikepipe.zoo
    return out


def import_graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    known_units = {unit(module_name(p)) for p in product_files()} - {None}
    for p in product_files():
        src = unit(module_name(p))
        if src is None:
            continue
        for target in imports_of(p):
            dst = unit(target)
            if dst is not None and dst != src and dst in known_units:
                edges.setdefault(src, set()).add(dst)
    return edges


def cycles(edges: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one unit (Tarjan), as sets; a two-unit cycle is its pair."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: set[frozenset[str]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.add(frozenset(comp))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_cycles_and_only_cycles():
    # the oracle for the finder: graphs drawn by hand
    assert cycles({"a": {"b"}, "b": {"c"}}) == set()
    assert cycles({"a": {"b"}, "b": {"a", "c"}, "c": set()}) == {frozenset("ab")}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d"}}) == {frozenset("abc"),
                                                                                  frozenset("de")}


def test_imports_are_read_from_the_source():
    # relative and `from package import module` imports resolve to the module they name
    names = imports_of(ROOT / "spikepipe" / "cli" / "cmd_networks.py")
    assert "spikepipe.api.contract" in names and "spikepipe.zoo" in names


def test_layering_of_the_vocabulary():
    # docs/design.md: hwmodels <- spikepipe.ir <- schedules <- spikepipe.{sim,train,cli}
    edges = import_graph()
    assert not edges.get("hwmodels"), f"hwmodels imports {sorted(edges['hwmodels'])}; it must import nothing of ours"
    assert edges.get("spikepipe.ir", set()) <= {"hwmodels"}, sorted(edges["spikepipe.ir"])
    top = ("spikepipe.cli", "spikepipe.api", "spikepipe.__main__")
    for up in ("spikepipe.cli", "spikepipe.api"):
        users = sorted(src for src, ws in edges.items() if up in ws and src not in top)
        assert not users, f"only the command line and the API may import {up}; {users} do"
    assert "spikepipe.cli" not in edges.get("spikepipe.api", set()), "the API must not import the command line"
    # the trainer dispatch sits above what it dispatches to (docs/design.md section 8)
    assert {"spikepipe.train", "spikepipe.methods", "spikepipe.distributed", "spikepipe.activity"} \
        <= edges["spikepipe.training"]
    users = sorted(src for src, ws in edges.items() if "spikepipe.training" in ws)
    assert set(users) <= {"spikepipe.api", "spikepipe.sweep", "spikepipe.cli"}, users
    assert "spikepipe.sim" not in edges.get("spikepipe.energy", set()), "energy reads a replay, not sim's types"


def test_no_new_import_cycle_between_subpackages():
    found = cycles(import_graph())
    # a component may merge several known pairs; each pair inside it must be a known one
    unexplained = {c for c in found if not any(k <= c for k in KNOWN_CYCLES)}
    assert not unexplained, f"import cycles between subpackages: {[sorted(c) for c in unexplained]}"
    gone = {k for k in KNOWN_CYCLES if not any(k <= c for c in found)}
    assert not gone, f"cycles {[sorted(k) for k in gone]} are broken now: strike them off KNOWN_CYCLES"


# ---------------------------------------------------------------- one list per set of names


def _subcommand(name: str):
    from spikepipe.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._subparsers._group_actions)  # noqa: SLF001 - argparse has no public accessor
    return sub.choices[name]


def _option(parser, flag: str):
    return next(a for a in parser._actions if flag in a.option_strings)  # noqa: SLF001


def test_schedule_names_agree_everywhere():
    import spikepipe as sp
    from schedules.registry import PIPELINING, get, names, option_targets
    from spikepipe.frontier import PERIODIC_BASELINES, ZERO_DELAY_BASELINES
    from spikepipe.sim.evaluate import resolve_schedules
    from spikepipe.sweep import SweepError, _check_value

    valid = names()
    assert sp.schedule_names() == valid == resolve_schedules("all")
    for name in valid:
        assert callable(get(name))  # every registered name has a generator
        assert resolve_schedules(name) == [name]  # simulate --schedule, compare --schedules
        _check_value("simulate", "schedule", name, "test")  # sweep
        _check_value("train", "schedule", name, "test")
    help_text = " ".join(_subcommand("simulate").format_help().split())
    assert all(name in help_text for name in valid), "simulate --help lists every schedule"
    for sweep_kind in ("simulate", "train"):
        with pytest.raises(SweepError):
            _check_value(sweep_kind, "schedule", "no-such-schedule", "test")
    # every other list of schedule names names registered ones
    assert set(PIPELINING) <= set(valid)
    assert set(PERIODIC_BASELINES) | set(ZERO_DELAY_BASELINES) | {"spikepipe"} <= set(valid)
    assert {t for targets in option_targets().values() for t in targets} <= set(valid)


def test_method_names_and_defaults_agree_everywhere():
    from spikepipe.cli.method_args import METHOD_KEYS
    from spikepipe.methods.registry import TRAINER_METHODS, TRANSFORM_METHODS, MethodOptions
    from spikepipe.methods.transforms import transform
    from spikepipe.sweep import TRAIN_KEYS, SweepError, _check_value, simulate_keys

    fields = [f.name for f in dataclasses.fields(MethodOptions)]
    assert set(METHOD_KEYS) == {"method", *fields} - {"name"}, "sweep keys / TrainConfig fields vs MethodOptions"
    assert set(METHOD_KEYS) <= simulate_keys() and set(METHOD_KEYS) <= TRAIN_KEYS
    defaults = MethodOptions()
    for command, methods in (("simulate", TRANSFORM_METHODS), ("compare", TRANSFORM_METHODS),
                             ("train", TRAINER_METHODS)):
        p = _subcommand(command)
        assert tuple(_option(p, "--method").choices) == methods, command
        args = p.parse_args(["--network", "snn-mlp", *(["--processors", "2"] if command == "simulate" else [])])
        for f in fields:  # the flags' defaults are the registry's, in every command
            key = "method" if f == "name" else f
            assert getattr(args, key) == getattr(defaults, f), (command, f)
    from hwmodels.config import load_cluster
    from spikepipe.sim.evaluate import load_graph

    graph = load_graph("snn-mlp", load_cluster(None, processors=2), 8, 4)
    for name in TRANSFORM_METHODS:  # every name simulate and sweep accept prices a task graph
        _check_value("simulate", "method", name, "test")
        priced = transform(graph, MethodOptions.of(name))
        assert priced.num_layers == graph.num_layers and priced.total_cycles() > 0
    for name in TRAINER_METHODS:
        _check_value("train", "method", name, "test")
    assert set(TRAINER_METHODS) <= set(TRANSFORM_METHODS), "a method the trainer runs must be priceable"
    for kind, bad in (("train", sorted(set(TRANSFORM_METHODS) - set(TRAINER_METHODS))), ("simulate", ["nope"])):
        for name in bad or ["nope"]:
            with pytest.raises(SweepError):
                _check_value(kind, "method", name, "test")


def _declared_options() -> dict[str, set[str]]:
    """What each generator says it takes, asked the way a user finds out: an option it does not know."""
    import schedules
    from hwmodels.config import load_cluster
    from schedules.common import ScheduleOptionError
    from schedules.registry import names
    from spikepipe.sim.evaluate import load_graph

    cluster = load_cluster(None, processors=2)
    graph = load_graph("snn-mlp", cluster, 8, 2)
    out = {}
    for name in names():
        with pytest.raises(ScheduleOptionError) as err:
            schedules.generate(name, graph, cluster, option_no_generator_takes=1)
        m = re.search(r"it takes: (.*)$", str(err.value).splitlines()[0])
        assert m, str(err.value)
        out[name] = set() if m.group(1) == "none" else {x.strip() for x in m.group(1).split(",")}
    return out


def test_every_generator_declares_its_options_once():
    # the registry's two tables name the same generators, and each options class belongs to its generator
    import dataclasses as dc

    from schedules import registry
    from schedules.options import ScheduleOptions, option_names

    assert list(registry._OPTION_CLASSES) == list(registry._GENERATORS)  # noqa: SLF001
    declared = _declared_options()
    for name in registry.names():
        cls = registry.options_class(name)
        assert dc.is_dataclass(cls) and issubclass(cls, ScheduleOptions) and cls.generator == name, name
        assert cls.__dataclass_params__.frozen, name
        # what the generator rejects an unknown option with is exactly its declaration
        assert set(option_names(cls)) == declared[name], name
        assert cls.from_mapping({}) == cls(), name  # no option given: every field at its default
    from schedules.spikepipe_options import SpikePipeOptions

    assert registry.options_class("spikepipe") is SpikePipeOptions  # the generator's own declaration


def test_schedule_options_agree_with_the_generators():
    from schedules.registry import option_targets
    from spikepipe.sim.evaluate import options_for
    from spikepipe.sweep import SIMULATE_KEYS, simulate_keys

    declared = _declared_options()
    targets = option_targets()
    # routing: an option goes to exactly the generators that declare it, and every declared option is routed
    assert targets == {k: tuple(n for n in declared if k in declared[n]) for k in set().union(*declared.values())}
    for key, takers in targets.items():
        for name in declared:
            assert (key in options_for(name, {key: 1})) == (name in takers)
    # the sweep's simulate keys are its own ones plus exactly the declared options, no copy of either
    assert simulate_keys() == SIMULATE_KEYS | set(targets)
    assert not SIMULATE_KEYS & set(targets), sorted(SIMULATE_KEYS & set(targets))
    # a train point takes the schedule option TrainConfig passes on (period_slack), as `train --period-slack` does
    from spikepipe.sweep import spec_from_dict

    spec_from_dict({"sweep": {"kind": "train"}, "grid": {"period_slack": [0.0, 0.1]},
                    "fixed": {"network": "snn-mlp", "schedule": "spikepipe"}})
    # a swept option reaches the generator: gpipe's period depends on its micro-batch count
    from spikepipe.sweep import run_point

    spec_from_dict({"sweep": {"name": "mb", "kind": "simulate"}, "grid": {"microbatches": [2, 4],
                    "period_slack": [0.0, 0.1], "stages": [1, 2]}, "fixed": {"network": "snn-mlp", "processors": 2}})
    rows = [run_point("simulate", {"network": "snn-mlp", "processors": 2, "batch": 8, "timesteps": 2,
                                   "schedule": "gpipe", "microbatches": m}) for m in (2, 4)]
    assert [r["status"] for r in rows] == ["ok", "ok"], [r["error"] for r in rows]
    assert rows[0]["period_cycles"] != rows[1]["period_cycles"]


@pytest.mark.parametrize("name", ["gpipe", "interleaved-1f1b", "pipedream", "layerpipe", "zb-v"])
def test_an_option_reaches_its_generator_from_every_front(name, capsys):
    """The same option, given as a keyword, a typed object, the API's options=, `--option` and a sweep point,
    makes the same schedule; its bad value is refused with the same message everywhere."""
    import json

    import schedules
    import spikepipe as sp
    from hwmodels.config import load_cluster
    from schedules.common import ScheduleOptionError
    from schedules.registry import option_targets, options_class
    from spikepipe.cli import main
    from spikepipe.sim.evaluate import load_graph
    from spikepipe.sweep import SweepError, _check_value, run_point

    key = {"gpipe": "microbatches", "interleaved-1f1b": "virtual_stages", "zb-v": "microbatches"}.get(name, "stages")
    value = 2
    cluster = load_cluster(None, processors=4)
    graph = load_graph("snn-cnn", cluster, 8, 2)
    direct = schedules.generate(name, graph, cluster, **{key: value})
    typed = schedules.generate(name, graph, cluster, options_class(name)(**{key: value}))
    assert typed.period_cycles == direct.period_cycles and typed.gradient_delays == direct.gradient_delays
    net = sp.load_network("snn-cnn", batch=8, timesteps=2)
    api = sp.simulate(net, processors=4, schedules=[name], options={key: value})
    assert main(["simulate", "--network", "snn-cnn", "-P", "4", "--batch", "8", "--timesteps", "2", "--schedule",
                 name, "--option", f"{key}={value}", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)["results"][0]
    row = run_point("simulate", {"network": "snn-cnn", "processors": 4, "batch": 8, "timesteps": 2,
                                 "schedule": name, key: value})
    assert api[name].row["period_cycles"] == cli["period_cycles"] == row["period_cycles"] == direct.period_cycles
    with pytest.raises(ScheduleOptionError) as direct_err:
        schedules.generate(name, graph, cluster, **{key: 0})
    with pytest.raises(ScheduleOptionError) as api_err:
        sp.simulate(net, processors=4, schedules=[name], options={key: 0})
    with pytest.raises(SweepError) as sweep_err:
        _check_value("simulate", key, 0, "test")
    # the value is checked once for every generator that takes it: the message names the first of them
    with pytest.raises(ScheduleOptionError) as first_err:
        schedules.generate(option_targets()[key][0], graph, cluster, **{key: 0})
    assert f"option {key} must be a positive integer, got 0" in str(direct_err.value)
    assert str(api_err.value) == str(first_err.value) and str(first_err.value) in str(sweep_err.value)
    assert main(["simulate", "--network", "snn-cnn", "-P", "4", "--schedule", name, "--option", f"{key}=0"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {first_err.value}"


def test_network_names_agree_everywhere(capsys):
    import json

    import spikepipe as sp
    from spikepipe import zoo
    from spikepipe.cli import main
    from spikepipe.sweep import SweepError, _check_value

    assert main(["networks", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["networks"]
    assert listed == zoo.names() == sp.networks() == list(sp.network_details().names)
    for name in listed:
        _check_value("simulate", "network", name, "test")
    with pytest.raises(SweepError):
        _check_value("simulate", "network", "no-such-net", "test")


# ---------------------------------------------------------------- the CLI's flags and the API's keywords

# a command's flag -> where the Python API takes it, when not a keyword of the same name on the same call:
# "call:keyword" (another call's keyword), "Result.member" (a member of the command's result class)
ELSEWHERE = {
    "array": "hardware:array", "dataflow": "hardware:dataflow", "batch": "load_network:batch",
    "timesteps": "load_network:timesteps", "time_limit": "simulate:time_limit_s",
    "no_overlap": "simulate:overlap_comm", "no_contention": "simulate:link_contention",
    "schedule_file": "read_schedule:path", "schedule_out": "write_schedule:path",
    "json": "{result}.to_dict", "csv": "{result}.to_pandas", "gantt": "{result}.plot",
    "gantt_schedule": "SimulateResult.plot", "trace": "ScheduleResult.replay", "no_progress": "simulate:progress",
    "deterministic_time": "compute_frontier:deterministic_time_s", "out": "{result}.plot",
    # the method's parameters travel as one MethodOptions (its fields), the registry's single definition
    **{k: f"MethodOptions.{k}" for k in ("checkpoint_every", "skip", "skipper_gradient", "window", "blocks",
                                         "hard_fraction", "exit_confidence")},
}
# flags the API does not take yet, with the reason; the test fails when one gains its place (strike it off)
CLI_ONLY: set[tuple[str, str]] = set()
COMMANDS = {"simulate": ("simulate", "SimulateResult", {"schedule": "schedules", "option": "options"}),
            "compare": ("compare", "CompareResult", {"schedules": "schedules", "gantt": "gantt_processors",
                                                     "option": "options"}),
            "train": ("train_network", "TrainResult", {}),
            "frontier": ("compute_frontier", "FrontierResult", {}),
            "tasks": ("tasks", "TasksResult", {"network": "network"}),
            "cycles": ("cycles", "CyclesResult", {}),
            "sweep": ("run_sweep", "SweepResult", {}),
            "activity": ("measure_activity", "ActivityResult", {})}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_flag_of_a_command_has_a_place_in_the_api(command):
    import inspect

    import spikepipe as sp
    from spikepipe.cli import build_parser

    call, result, renamed = COMMANDS[command]
    params = set(inspect.signature(getattr(sp, call)).parameters)
    # the program's own flags (-v: logging, which an API user configures with the logging module), which every
    # command also takes among its options, are not the command's
    program = {a.dest for a in build_parser()._actions if a.dest not in ("help", "command")}  # noqa: SLF001
    missing = []
    for action in _subcommand(command)._actions:  # noqa: SLF001
        dest = action.dest
        if dest == "help" or dest in program or dest in params or renamed.get(dest) in params:
            continue
        where = ELSEWHERE.get(dest, "").replace("{result}", result)
        if ":" in where:
            other, kw = where.split(":")
            if kw in inspect.signature(getattr(sp, other)).parameters:
                continue
        elif "." in where:
            owner, member = where.split(".")
            cls = getattr(sp, owner)
            if member in {f.name for f in dataclasses.fields(cls)} or hasattr(cls, member):
                continue
        missing.append(dest)
    known = sorted(d for c, d in CLI_ONLY if c == command)
    assert sorted(set(missing) - set(known)) == [], f"`spikepipe {command}` flags the API has no place for: {missing}"
    assert set(known) <= set(missing), f"{sorted(set(known) - set(missing))} have a place now: strike off CLI_ONLY"


def test_train_network_method_defaults_are_the_registry_ones():
    import inspect

    import spikepipe as sp

    sig = inspect.signature(sp.train_network).parameters
    defaults = sp.MethodOptions()
    for f in dataclasses.fields(sp.MethodOptions):
        key = "method" if f.name == "name" else f.name
        given = sig[key].default
        # None (and checkpoint_every's 0) mean "the registry's default"
        assert given is None or given == getattr(defaults, f.name) or (key == "checkpoint_every" and given == 0), \
            (key, given, getattr(defaults, f.name))
