"""`spikepipe simulate` and `spikepipe compare` on a synthetic workload (the network loader is replaced, so these
tests do not depend on the frontend): the JSON contract, speedups, written files, and error lines."""

import csv
import json

import pytest
from sched_graphs import graphs

import spikepipe.sim.evaluate as evaluate
from spikepipe.cli import main

GRAPH = graphs()["random-chain"]


@pytest.fixture(autouse=True)
def synthetic_network(monkeypatch):
    def load_graph(network, cluster, batch=None, timesteps=None):
        if network != "synthetic":
            from spikepipe.ir import GraphError

            raise GraphError(f"unknown network {network!r}")
        return GRAPH

    monkeypatch.setattr(evaluate, "load_graph", load_graph)


def run_json(capsys, *argv):
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_simulate_json_contract(capsys, tmp_path):
    data = run_json(capsys, "simulate", "--network", "synthetic", "--processors", "4", "--time-limit", "0.3",
                    "--gantt", str(tmp_path / "g.png"), "--trace", str(tmp_path / "t.json"),
                    "--csv", str(tmp_path / "r.csv"))
    assert list(data)[:4] == ["network", "processors", "lower_bound_cycles", "results"]
    assert {"timesteps", "batch"} <= set(data)  # as the model runs them (DESIGN section 5)
    assert data["processors"] == 4
    from hwmodels.config import load_cluster
    from spikepipe.ir import lower_bound_cycles

    assert data["lower_bound_cycles"] == lower_bound_cycles(GRAPH, load_cluster(None, processors=4))
    rows = {r["schedule"]: r for r in data["results"]}
    assert set(rows) == set(evaluate.resolve_schedules("all"))
    for r in rows.values():
        for key in ("schedule", "period_cycles", "simulated_period_cycles", "speedup", "comm_fraction",
                    "gradient_delays", "peak_memory_bytes"):
            assert key in r
        assert r["speedup"] == pytest.approx(rows["sequential"]["simulated_period_cycles"]
                                             / r["simulated_period_cycles"])
        assert len(r["gradient_delays"]) == GRAPH.num_layers
        assert 0 <= r["comm_fraction"] < 1
    assert rows["sequential"]["speedup"] == 1.0
    assert rows["spikepipe"]["speedup"] <= 4 * (1 + 1e-9)
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    with open(tmp_path / "r.csv") as fh:
        assert {row["schedule"] for row in csv.DictReader(fh)} == set(rows)


def test_simulate_one_schedule(capsys):
    data = run_json(capsys, "simulate", "--network", "synthetic", "-P", "2", "--schedule", "gpipe",
                    "--microbatches", "4", "--iterations", "5")
    (row,) = data["results"]
    assert row["schedule"] == "gpipe" and row["microbatches"] == 4 and row["iterations"] == 5
    assert row["simulated_period_cycles"] == row["period_cycles"]


@pytest.mark.parametrize("argv,fragment", [
    (["simulate", "--network", "synthetic", "-P", "2", "--schedule", "nope"], "unknown schedule"),
    (["simulate", "--network", "other", "-P", "2"], "unknown network"),
    (["simulate", "--network", "synthetic", "-P", "0"], "positive integer"),
    (["simulate", "--network", "synthetic", "-P", "2", "--time-limit", "-1"], "positive number"),
    (["compare", "--network", "synthetic", "-P", "2,4", "--gantt", "8"], "--gantt 8"),
])
def test_bad_input_is_one_error_line(capsys, argv, fragment):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0]


def test_compare_writes_every_artefact(capsys, tmp_path):
    out = tmp_path / "cmp"
    data = run_json(capsys, "compare", "--network", "synthetic", "--processors", "2,4",
                    "--schedules", "sequential,gpipe,pipedream,spikepipe", "--time-limit", "0.3", "--out", str(out))
    assert data["processors"] == [2, 4]
    assert [r["processors"] for r in data["reports"]] == [2, 4]
    for name in ("sequential", "gpipe", "pipedream", "spikepipe"):
        assert (out / f"gantt_{name}_P4.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "speedup.png").stat().st_size > 10_000
    assert json.loads((out / "trace_P4.json").read_text())["traceEvents"]
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and {r["processors"] for r in rows} == {"2", "4"}
    assert json.loads((out / "results.json").read_text())["reports"][1]["processors"] == 4
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_compare_human_output_names_the_folder(capsys, tmp_path):
    assert main(["compare", "--network", "synthetic", "-P", "2", "--schedules", "sequential,1f1b",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path.resolve()) in out and "speedup" in out and "1f1b" in out


def test_compare_refuses_an_unwritable_folder_before_working(capsys, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setattr(evaluate, "evaluate_graph", lambda *a, **k: pytest.fail("worked before checking --out"))
    assert main(["compare", "--network", "synthetic", "-P", "2", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(("error: cannot create output folder", "error: cannot write")) and "file" in err
    assert len(err.strip().splitlines()) == 1
