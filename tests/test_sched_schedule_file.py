"""Schedule files: the JSON form and the compact text form round-trip to the same schedule; a hand-written file
with only processor and start per slot loads; simulate and train use a file; -v shows the broken slot's grid."""

import json

import pytest
from sched_graphs import graphs

from hwmodels import Cluster, Interconnect
from schedules import generate
from spikepipe.cli import main
from spikepipe.ir import chain_graph
from spikepipe.schedule_file import (
    ScheduleFileError,
    from_data,
    load_schedule,
    parse_text,
    to_text,
    write_schedule,
)

GRAPHS = graphs()
NAMES = ["sequential", "data-parallel", "gpipe", "zero-bubble", "zb-v", "interleaved-1f1b", "pipedream",
         "layerpipe", "list", "spikepipe"]


def _same(a, b):
    assert a.period_cycles == b.period_cycles and a.kind == b.kind and a.microbatches == b.microbatches
    assert sorted(a.slots, key=lambda s: s.id) == sorted(b.slots, key=lambda s: s.id)
    assert set(a.dependencies) == set(b.dependencies)
    assert a.gradient_delays == b.gradient_delays
    assert a.collectives == b.collectives


@pytest.mark.parametrize("procs", [2, 4])
@pytest.mark.parametrize("graph_name", ["random-chain", "skip-dag"])
@pytest.mark.parametrize("name", NAMES)
def test_json_and_text_round_trip(name, graph_name, procs, tmp_path):
    g, c = GRAPHS[graph_name], Cluster.homogeneous(procs)
    s = generate(name, g, c, **({"time_limit_s": 0.3, "workers": 1} if name == "spikepipe" else {}))
    path = write_schedule(tmp_path / "s.json", s, g, c)
    _same(load_schedule(path, g, c), s)
    assert json.loads(path.read_text())["network"] == g.name
    if s.collectives:
        with pytest.raises(ScheduleFileError, match="collectives"):
            to_text(s, g)
        return
    text = to_text(s, g)
    assert len(text.splitlines()) - 1 == len(text.split()) - 10 == len(s.slots)  # header, then a token a slot
    _same(from_data(parse_text(text), g, c), s)
    _same(load_schedule(write_schedule(tmp_path / "s.txt", s, g, c), g, c), s)


def test_split_schedule_fractions_survive_the_text_form():
    g, c = GRAPHS["one-big-layer"], Cluster.homogeneous(4)
    s = generate("spikepipe", g, c, time_limit_s=1.0, workers=1, split=True)
    _same(from_data(parse_text(to_text(s, g)), g, c), s)


def test_hand_written_file_needs_only_processor_and_start():
    # three layers, every task on processor 0 back to back: the sequential run, written by hand
    g = chain_graph([(100, 200, 300)] * 3)
    c = Cluster.homogeneous(2, interconnect=Interconnect(link_latency_cycles=0))
    order, t, slots = ["F0", "F1", "F2", "B2", "W2", "B1", "W1", "B0", "W0"], 0, []
    for task in order:
        slots.append({"task": task, "processor": 0, "start_cycles": t})
        t += {"F": 100, "B": 200, "W": 300}[task[0]]
    s = from_data({"period_cycles": t, "slots": slots}, g, c)
    assert s.period_cycles == 1800 and s.gradient_delays == (0, 0, 0)
    assert s.info["source"] == "file"


def test_simulate_writes_and_replays_a_schedule_file(tmp_path, capsys):
    out = tmp_path / "s.json"
    base = ["simulate", "--network", "snn-mlp", "-P", "2"]
    assert main([*base, "--schedule", "pipedream", "--schedule-out", str(out), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)["results"][0]
    assert main([*base, "--schedule-file", str(out), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)["results"]
    assert len(again) == 1
    for key in ("period_cycles", "simulated_period_cycles", "gradient_delays", "speedup"):
        assert again[0][key] == first[key]
    assert again[0]["status"] == "heuristic"


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_prints_the_grid_with_the_broken_slot(tmp_path, capsys, where):
    path = tmp_path / "s.json"
    assert main(["simulate", "--network", "snn-mlp", "-P", "2", "--schedule", "pipedream", "--schedule-out",
                 str(path), "--json"]) == 0
    capsys.readouterr()
    data = json.loads(path.read_text())
    b0 = next(x for x in data["slots"] if x["task"] == "B0")
    b0["lag"] = 0
    path.write_text(json.dumps(data))
    argv = ["simulate", "--network", "snn-mlp", "-P", "2", "--schedule-file", str(path)]
    assert main(["-v", *argv] if where == "before" else [*argv, "-v"]) == 2  # as `spikepipe -v simulate` or last
    err = capsys.readouterr().err
    assert "marked '!': B0" in err and "!" in err.split("marked")[0]
    assert err.strip().splitlines()[-1].startswith("error: invalid schedule file")
    assert main(["simulate", "--network", "snn-mlp", "-P", "2", "--schedule-file", str(path)]) == 2
    assert "marked" not in capsys.readouterr().err  # without -v: only the error line


def test_train_uses_a_schedule_file(tmp_path, capsys):
    path = tmp_path / "s.txt"
    common = ["--network", "snn-mlp", "-P", "2", "--batch", "16", "--timesteps", "2"]
    assert main(["simulate", *common, "--schedule", "pipedream", "--schedule-out", str(path), "--json"]) == 0
    delays = json.loads(capsys.readouterr().out)["results"][0]["gradient_delays"]
    assert main(["train", "--network", "snn-mlp", "--processors", "2", "--batch", "16", "--timesteps", "2",
                 "--dataset", "digits", "--epochs", "1", "--limit-train", "64", "--no-progress",
                 "--schedule-file", str(path), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["gradient_delays"] == delays and row["schedule"] == "pipedream"
