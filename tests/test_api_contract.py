"""`.to_dict()` of the Python API's results is the CLI's `--json` object for the same inputs: byte-identical once
wall-clock timings (keys ending in `_s`, `seconds`) are blanked, for simulate, compare and train."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import spikepipe as sp
from spikepipe.cli import _json_default, main

SMALL = {"network": "snn-mlp", "processors": 2}
SCHEDULES = "sequential,1f1b,pipedream,spikepipe"


def blank_timings(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: (None if (k.endswith("_s") or k in ("seconds", "step_seconds")) else blank_timings(v))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [blank_timings(v) for v in obj]
    return obj


def as_bytes(obj: Any) -> bytes:
    """What the CLI would print for this object, timings blanked."""
    return (json.dumps(blank_timings(obj), sort_keys=False, default=_json_default) + "\n").encode()


def cli_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[bytes, dict[str, Any]]:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1, "--json prints exactly one line"
    data = json.loads(out)
    return as_bytes(data), data


@pytest.mark.parametrize("schedules", [SCHEDULES, "gpipe"])
def test_simulate_to_dict_is_the_cli_json(capsys, schedules):
    want, data = cli_json(capsys, ["simulate", "--network", SMALL["network"], "--processors", "2",
                                   "--schedule", schedules])
    res = sp.simulate(SMALL["network"], processors=2, schedules=schedules.split(","))
    assert as_bytes(res.to_dict()) == want
    # the typed fields say what the JSON says
    assert [r.schedule for r in res.results] == [r["schedule"] for r in data["results"]]
    for r, row in zip(res.results, data["results"], strict=True):
        assert r.speedup == row["speedup"] and list(r.gradient_delays) == row["gradient_delays"]
        assert r.period_cycles == row["period_cycles"] and r.peak_memory_bytes == row["peak_memory_bytes"]
    assert res.lower_bound_cycles == data["lower_bound_cycles"]
    assert list(res.to_pandas()["schedule"]) == [r["schedule"] for r in data["results"]]


def test_simulate_options_reach_the_same_json(capsys):
    argv = ["simulate", "--network", "snn-cnn", "--processors", "3", "--schedule", "gpipe,list",
            "--microbatches", "3", "--array", "32x32", "--dataflow", "ws", "--batch", "8", "--timesteps", "2",
            "--no-contention", "--method", "checkpoint"]
    want, _ = cli_json(capsys, argv)
    hw = sp.hardware(array="32x32", dataflow="ws")
    work = sp.load_network("snn-cnn", batch=8, timesteps=2)
    res = sp.simulate(work, hw, processors=3, schedules=["gpipe", "list"], microbatches=3, link_contention=False,
                      method="checkpoint")
    assert as_bytes(res.to_dict()) == want


def test_compare_to_dict_is_the_cli_json(capsys, tmp_path: Path):
    out = tmp_path / "cmp"
    argv = ["compare", "--network", SMALL["network"], "--processors", "2,3", "--schedules", "1f1b,spikepipe",
            "--out", str(out)]
    want, data = cli_json(capsys, argv)
    written = json.loads((out / "results.json").read_text())
    res = sp.compare(SMALL["network"], processors=[3, 2], schedules=["1f1b", "spikepipe"], out=out)
    assert as_bytes(res.to_dict()) == want
    assert json.loads((out / "results.json").read_text()).keys() == written.keys()
    assert res.processors == (2, 3) and set(res.speedups()) == {"1f1b", "spikepipe"}
    assert len(res.to_pandas()) == 4
    # without an output folder nothing is written, and the numbers are the same
    quiet = sp.compare(SMALL["network"], processors=[2, 3], schedules=["1f1b", "spikepipe"])
    assert as_bytes(quiet.to_dict()["reports"]) == as_bytes(data["reports"]) and quiet.files == {}


def test_train_to_dict_is_the_cli_json(capsys):
    argv = ["train", "--network", SMALL["network"], "--dataset", "digits", "--schedule", "spikepipe",
            "--processors", "2", "--epochs", "1", "--limit-train", "128", "--no-progress"]
    want, data = cli_json(capsys, argv)
    res = sp.train_network(SMALL["network"], dataset="digits", schedule="spikepipe", processors=2, epochs=1,
                   limit_train=128)
    assert as_bytes(res.to_dict()) == want
    assert res.test_accuracy == data["test_accuracy"] and list(res.measured_delays) == data["measured_delays"]
    assert list(res.gradient_delays) == data["gradient_delays"] and any(res.gradient_delays)
    assert len(res.history) == 1 and res.history[0].val_accuracy == data["history"][0]["val_accuracy"]


@pytest.mark.parametrize("m,k,n,array,dataflow,model", [
    (64, 64, 64, "32x32", "os", "analytic"), (300, 27, 70, "16x8", "ws", "analytic"),
    (9, 5, 7, "4x4", "is", "stepping"),
])
def test_cycles_to_dict_is_the_cli_json(capsys, m, k, n, array, dataflow, model):
    want, data = cli_json(capsys, ["cycles", "--m", str(m), "--k", str(k), "--n", str(n), "--array", array,
                                   "--dataflow", dataflow, "--model", model])
    res = sp.cycles(m, k, n, sp.hardware(array=array, dataflow=dataflow), model=model)
    assert as_bytes(res.to_dict()) == want and res.cycles == data["cycles"] and res.folds == data["folds"]


@pytest.mark.parametrize("argv,kwargs", [
    (["--network", "snn-cnn"], {}),
    (["--network", "resnet18", "--batch", "2", "--timesteps", "2", "--array", "64x64", "--dataflow", "ws"],
     {"batch": 2, "timesteps": 2, "array": "64x64", "dataflow": "ws"}),
])
def test_tasks_to_dict_is_the_cli_json(capsys, argv, kwargs):
    want, data = cli_json(capsys, ["tasks", *argv])
    hw = sp.hardware(array=kwargs.pop("array", None), dataflow=kwargs.pop("dataflow", None))
    res = sp.tasks(sp.load_network(argv[1], **kwargs), hw)
    assert as_bytes(res.to_dict()) == want
    assert res.total_cycles == data["total_cycles"] and len(res.to_pandas()) == len(data["tasks"])


@pytest.mark.slow  # starts two Dask LocalClusters (about 15 s)
def test_sweep_to_dict_is_the_cli_json(capsys, tmp_path: Path):
    import shutil

    spec = tmp_path / "tiny.toml"
    spec.write_text('[sweep]\nname = "tiny"\nkind = "simulate"\n[grid]\nprocessors = [1, 2]\n'
                    'schedule = ["sequential", "gpipe"]\n[fixed]\nnetwork = "snn-mlp"\nbatch = 8\ntimesteps = 2\n'
                    'iterations = 4\n')
    out = tmp_path / "out"
    want, data = cli_json(capsys, ["sweep", str(spec), "--out", str(out), "--workers", "1"])
    shutil.rmtree(out)  # the same inputs from scratch: nothing cached
    res = sp.run_sweep(spec, out, workers=1)
    assert as_bytes(res.to_dict()) == want and res.computed == data["computed"] == 4
    assert len(res.to_pandas()) == 4


@pytest.mark.parametrize("argv,kwargs", [
    ([], {}),
    (["--slacks", "0,0.1,0.3", "--deterministic-time", "0.5", "--array", "32x32"],
     {"slacks": (0.0, 0.1, 0.3), "deterministic_time_s": 0.5, "array": "32x32"}),
])
def test_frontier_to_dict_is_the_cli_json(capsys, argv, kwargs):
    want, data = cli_json(capsys, ["frontier", "--network", SMALL["network"], "--processors", "2", *argv])
    hw = sp.hardware(array=kwargs.pop("array", None))
    res = sp.compute_frontier(SMALL["network"], hw, processors=2, **kwargs)
    assert as_bytes(res.to_dict()) == want
    # the typed fields are the JSON's, and the table has one row per point with the knee marked
    assert [p.period_cycles for p in res.points] == [p["period_cycles"] for p in data["points"]]
    assert [list(p.gradient_delays) for p in res.points] == [p["gradient_delays"] for p in data["points"]]
    assert res.knee == data["knee"] and res.knee_point.to_dict() == data["points"][data["knee"]]
    table = res.to_pandas()
    assert list(table["total_delay"]) == [p["total_delay"] for p in data["points"]]
    assert list(table["knee"]).index(True) == data["knee"]
    assert int(res.to_pandas(candidates=True)["on_frontier"].sum()) == len(data["points"])
    assert len(res.to_pandas(candidates=True)) == len(data["candidates"])


def test_networks_details_are_the_cli_json(capsys):
    want, data = cli_json(capsys, ["networks"])
    res = sp.network_details()
    assert as_bytes(res.to_dict()) == want
    assert list(res.names) == data["networks"] == sp.networks()
    assert [d.timesteps for d in res.details] == [d["timesteps"] for d in data["details"]]
    assert list(res.to_pandas()["name"]) == data["networks"]


@pytest.mark.parametrize("suffix", [".json", ".txt"])
def test_schedule_files_are_the_cli_files(capsys, tmp_path: Path, suffix):
    # a file the command writes is the file the API writes, and either reads back into what the other replays
    cli_file, api_file = tmp_path / f"cli{suffix}", tmp_path / f"api{suffix}"
    cli_json(capsys, ["simulate", "--network", "snn-cnn", "--processors", "3", "--schedule", "pipedream",
                      "--schedule-out", str(cli_file)])
    plan = sp.simulate("snn-cnn", processors=3, schedules="pipedream")["pipedream"].plan
    sp.write_schedule(plan, api_file, "snn-cnn")
    assert api_file.read_text() == cli_file.read_text()
    back = sp.read_schedule(cli_file, "snn-cnn")
    assert (back.slots, back.period_cycles, back.gradient_delays) == (plan.slots, plan.period_cycles,
                                                                     plan.gradient_delays)
    want, data = cli_json(capsys, ["simulate", "--network", "snn-cnn", "--processors", "3",
                                   "--schedule-file", str(api_file)])
    res = sp.simulate("snn-cnn", given=back, schedules=())  # processors: the plan's
    assert as_bytes(res.to_dict()) == want and res.results[0].gradient_delays == plan.gradient_delays


def test_activity_reaches_the_same_json(capsys, tmp_path: Path):
    act = tmp_path / "act.json"
    cli_json(capsys, ["activity", "--network", SMALL["network"], "--samples", "16", "--out", str(act)])
    argv = ["simulate", "--network", SMALL["network"], "--processors", "2", "--schedule", "gpipe,spikepipe",
            "--activity", str(act)]
    want, data = cli_json(capsys, argv)
    assert {r["energy_activity"] for r in data["results"]} == {"measured"}
    res = sp.simulate(SMALL["network"], processors=2, schedules="gpipe,spikepipe", activity=act)
    assert as_bytes(res.to_dict()) == want
    from spikepipe.activity import read_report

    from_report = sp.simulate(SMALL["network"], processors=2, schedules="gpipe,spikepipe",
                              activity=read_report(act))
    assert as_bytes(from_report.to_dict()) == want
    dense = sp.simulate(SMALL["network"], processors=2, schedules="gpipe")
    assert dense["gpipe"].row["energy_joules"] != res["gpipe"].row["energy_joules"]
    # compare takes it too, per processor count
    cmp = sp.compare(SMALL["network"], processors=[2], schedules=["gpipe", "spikepipe"], activity=act)
    assert as_bytes(cmp[2].to_dict()) == want


@pytest.mark.parametrize("flags,options", [
    (["--method", "skipper", "--checkpoint-every", "3", "--skip", "1"],
     {"name": "skipper", "checkpoint_every": 3, "skip": 1}),
    (["--method", "ttl", "--window", "3", "--blocks", "2"], {"name": "ttl", "window": 3, "blocks": 2}),
])
def test_method_options_reach_the_same_json(capsys, flags, options):
    want, _ = cli_json(capsys, ["simulate", "--network", "snn-cnn", "--processors", "2", "--schedule", "gpipe,list",
                                "--timesteps", "6", "--batch", "8", *flags])
    method = sp.MethodOptions.of(options.pop("name"), **options)
    res = sp.simulate(sp.load_network("snn-cnn", batch=8, timesteps=6), processors=2, schedules="gpipe,list",
                      method=method)
    assert as_bytes(res.to_dict()) == want
    plain = sp.simulate(sp.load_network("snn-cnn", batch=8, timesteps=6), processors=2, schedules="gpipe,list")
    assert as_bytes(plain.to_dict()) != want  # the method changed the priced graph
