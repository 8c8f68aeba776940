"""The Python API's behaviour beyond the JSON contract: inputs, errors, progress, results, figures."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import spikepipe as sp
from hwmodels import HardwareConfigError
from hwmodels.config import load_cluster
from spikepipe import zoo
from spikepipe.ir import SpikePipeError

# ---------------------------------------------------------------- hardware


@pytest.mark.parametrize("fields", [
    {"rows": 64, "cols": 32, "dataflow": "ws"},
    {"freq_hz": 5e8, "vector_lanes": 64, "dram_bytes_per_cycle": 32.0},
    {"link_bytes_per_cycle": 16.0, "link_latency_cycles": 7, "topology": "ring"},
    {"rows": 16, "cols": 16, "ifmap_sram_bytes": 65536, "word_bytes": 1},
])
def test_hardware_keywords_equal_the_same_toml_file(tmp_path: Path, fields):
    # oracle: the preset's own TOML with the same fields written into it, read by the loader the CLI uses
    import tomllib

    from hwmodels.config import DEFAULT_PRESET, PRESET_DIR

    data = tomllib.loads((PRESET_DIR / f"{DEFAULT_PRESET}.toml").read_text())
    link_keys = ("link_bytes_per_cycle", "link_latency_cycles", "topology")
    procs = data["processor"] if isinstance(data["processor"], list) else [data["processor"]]
    for table in procs:
        table.update({k: v for k, v in fields.items() if k not in link_keys})
    data.setdefault("interconnect", {}).update({k: v for k, v in fields.items() if k in link_keys})

    def table(d):
        return "\n".join(f"{k} = {json.dumps(v)}" for k, v in d.items())

    text = "".join(f"[[processor]]\n{table(t)}\n" for t in procs) + f"[interconnect]\n{table(data['interconnect'])}\n"
    if "energy" in data:  # the preset's energy table goes along unchanged
        text += f"[energy]\n{table(data['energy'])}\n"
    path = tmp_path / "hw.toml"
    path.write_text(text)
    want = load_cluster(path, processors=3)
    got = sp.hardware(processors=3, **fields)
    assert got.cluster == want and got.processors == 3
    assert not got.is_plain_spec


def test_hardware_presets_and_resizing():
    assert "tpu-like-128" in sp.presets()
    hw = sp.hardware("edge-32")
    assert hw.cluster == load_cluster("edge-32") and hw.is_plain_spec
    assert hw.with_processors(5).cluster == load_cluster("edge-32", processors=5)


@pytest.mark.parametrize("call", [
    lambda: sp.hardware("no-such-preset"),
    lambda: sp.hardware("missing.toml"),
    lambda: sp.hardware(rows=0),
    lambda: sp.hardware(topology="hypercube-9"),
    lambda: sp.hardware(processors=0),
    lambda: sp.load_network("no-such-network"),
    lambda: sp.load_network("missing.py:build"),
    lambda: sp.load_network(torch.nn.Linear(2, 2)),
    lambda: sp.load_network("snn-mlp", batch=0),
    lambda: sp.simulate("snn-mlp", processors=2, schedules="no-such-schedule"),
    lambda: sp.simulate("snn-mlp", processors=0),
    lambda: sp.simulate("snn-mlp", processors=2, schedules="gpipe", period_slack=1.5),
    lambda: sp.compare("snn-mlp", processors=[], schedules="gpipe"),
    lambda: sp.compare("snn-mlp", processors=[2], schedules="gpipe", gantt_processors=4),
    lambda: sp.schedule("snn-mlp", processors=2, name="gpipe", no_such_option=1),
    lambda: sp.train_network("snn-mlp", schedule="gpipe", period_slack=0.1),
    lambda: sp.train_network("snn-mlp", epochs=0),
])
def test_bad_input_raises_a_typed_error_never_system_exit(call):
    with pytest.raises(SpikePipeError) as info:
        call()
    assert not isinstance(info.value, SystemExit) and str(info.value)


def test_hardware_error_is_both_roots():
    with pytest.raises(HardwareConfigError):
        sp.hardware("no-such-preset")
    assert issubclass(sp.HardwareError, SpikePipeError)


# ---------------------------------------------------------------- workloads


@pytest.mark.parametrize("name,batch,timesteps", [("snn-cnn", None, None), ("snn-mlp", 8, 3), ("resnet18", 2, 2)])
def test_a_model_object_costs_as_its_name(name, batch, timesteps):
    # oracle: the name goes through the CLI's loader; the object through the API's own tracing
    hw = sp.hardware(array="32x32")
    by_name = sp.load_network(name, batch=batch, timesteps=timesteps).task_graph(hw)
    meta = zoo.info(name)
    model, example = zoo.build(name, timesteps=timesteps or meta.timesteps, batch=batch or meta.batch)
    by_object = sp.load_network(model, example, name=name).task_graph(hw)
    # the same layers, tasks and costs; only the words saying where T and B came from differ
    how = ("layout", "timesteps_source", "batch_source", "time_fixed")
    a, b = (g.to_dict(hw.cluster.processors[0]) for g in (by_object, by_name))
    assert {k: v for k, v in a.items() if k not in how} == {k: v for k, v in b.items() if k not in how}
    assert (by_object.timesteps, by_object.batch) == (by_name.timesteps, by_name.batch)


def test_a_file_spec_loads(tmp_path: Path):
    f = tmp_path / "net.py"
    f.write_text("from spikepipe import zoo\n\ndef build():\n    return zoo.build('snn-mlp', timesteps=2, batch=4)\n")
    work = sp.load_network(f"{f}:build")
    assert work.name == "net:build" and work.example_input.shape[:2] == (2, 4)
    assert work.task_graph().num_layers == 2


# ---------------------------------------------------------------- results, progress, figures


@pytest.fixture(scope="module")
def small():
    return sp.simulate("snn-mlp", processors=3, schedules=["gpipe", "pipedream", "list"])


def test_results_are_frozen_and_to_dict_is_a_copy(small):
    with pytest.raises(dataclasses.FrozenInstanceError):
        small.processors = 4
    with pytest.raises(TypeError):
        small.results[0].row["speedup"] = 99.0
    d = small.to_dict()
    d["results"][0]["speedup"] = -1
    assert small.to_dict()["results"][0]["speedup"] == small.results[0].speedup != -1


def test_best_and_lookup(small):
    assert small.best.speedup == max(r.speedup for r in small.results)
    assert small["list"].plan.name == "list" and small["list"].replay.schedule == "list"
    with pytest.raises(sp.ResultLookupError):
        small["spikepipe"]


def test_figures(small):
    from matplotlib.figure import Figure

    assert isinstance(small.plot(), Figure) and isinstance(small.plot("gpipe"), Figure)
    cmp = sp.compare("snn-mlp", processors=[2, 3], schedules=["gpipe", "list"])
    assert isinstance(cmp.plot(), Figure) and isinstance(cmp.plot_gantt("list", 2), Figure)
    assert cmp.speedups()["list"][3] == cmp[3]["list"].speedup


def test_progress_callback_and_silence(capsys):
    events = []
    sp.simulate("snn-mlp", processors=2, schedules=["gpipe", "list", "pipedream"], progress=events.append)
    assert [e.completed for e in events] == [0, 1, 2, 3] and {e.total for e in events} == {3}
    assert events[-1].stage == "simulate"
    capsys.readouterr()
    sp.simulate("snn-mlp", processors=2, schedules=["gpipe"])
    assert capsys.readouterr() == ("", "")


def test_train_a_model_object_with_a_simulated_plan():
    model, example = zoo.build("snn-mlp", timesteps=4, batch=16, seed=1)
    before = [p.detach().clone() for p in model.parameters()]
    work = sp.load_network(model, example, name="mine")
    plan = sp.simulate(work, processors=2, schedules="pipedream")["pipedream"].plan
    events = []
    run = sp.train_network(work, schedule=plan, epochs=1, batch=16, limit_train=96, progress=events.append)
    assert run.schedule == "pipedream" and run.processors == 2
    assert run.measured_delays == plan.gradient_delays and any(plan.gradient_delays)
    # the user's module is left as it was; the trained copy comes back
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert run.model is not model and any(not torch.equal(a, b)
                                          for a, b in zip(before, run.model.parameters(), strict=True))
    assert events[-1].completed == events[-1].total == 6 and len(run.to_pandas()) == 1
    from matplotlib.figure import Figure

    assert isinstance(run.plot(), Figure) and f"{100 * run.test_accuracy:.2f}%" in run._repr_html_()


def test_schedule_files_round_trip_and_are_validated(tmp_path: Path):
    plan = sp.schedule("snn-mlp", processors=2, name="pipedream")
    path = sp.write_schedule(plan, tmp_path / "s.json", "snn-mlp")
    back = sp.read_schedule(path, "snn-mlp")
    assert (back.slots, back.period_cycles, back.gradient_delays, back.processors) == (
        plan.slots, plan.period_cycles, plan.gradient_delays, plan.processors)
    with pytest.raises(sp.ScheduleError, match="processors 2"):  # made for P=2, asked for P=3
        sp.read_schedule(path, "snn-mlp", processors=3)
    data = json.loads(path.read_text())
    data["slots"][0]["start_cycles"] += 1  # a slot that no longer matches the cost model's timing
    data["slots"][0]["duration_cycles"] += 5
    path.write_text(json.dumps(data))
    with pytest.raises(sp.ScheduleError) as err:
        sp.read_schedule(path, "snn-mlp")
    assert "slot" in str(err.value).splitlines()[0]


def test_progress_bar_goes_to_stderr_and_results_render_in_notebooks(capsys):
    res = sp.simulate("snn-mlp", processors=2, schedules=["gpipe", "list"], progress=True)
    out = capsys.readouterr().out
    assert out == ""  # the bar writes to stderr only, like the CLI's
    html = res._repr_html_()
    assert "<table" in html and "list" in html and "gpipe" in html
    cmp = sp.compare("snn-mlp", processors=[2], schedules=["list"], progress=True)
    assert f"{cmp[2]['list'].speedup:.6g}"[:4] in cmp._repr_html_()
