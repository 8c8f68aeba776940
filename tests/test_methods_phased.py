"""BlocTrain in the simulator: `simulate`/`compare`/`sweep --method bloctrain` schedule every phase graph (block g
trains, earlier blocks run forward only) and the run's figures combine the phases: the training time is the sum
over phases of period x minibatches; the reported per-minibatch period is the minibatch-weighted mean."""

from __future__ import annotations

import json

import pytest

import schedules
import spikepipe as sp
from hwmodels.config import load_cluster
from schedules.validate import validate
from spikepipe.cli import main
from spikepipe.ir import TaskKind
from spikepipe.methods.local import partition
from spikepipe.methods.phased import evaluate_phases, phase_weights
from spikepipe.methods.phases import phase_graphs, phase_totals
from spikepipe.methods.registry import MethodError, MethodOptions
from spikepipe.sim.engine import simulate
from spikepipe.sim.evaluate import sequential_period
from spikepipe.workload import load_workload

FAST = ("gpipe", "1f1b", "pipedream")


@pytest.mark.parametrize("network,blocks", [("snn-mlp", 2), ("snn-cnn", 2), ("snn-cnn", 3), ("vgg11-28", (2, 5)),
                                            ("resnet18", 2)])
def test_phase_graph_g_trains_block_g_and_runs_earlier_blocks_forward_only(network, blocks):
    graph = load_workload(network, batch=4, timesteps=2)
    ranges = partition(graph.num_layers, blocks)
    graphs = phase_graphs(graph, blocks, 0.5)
    assert len(graphs) == len(ranges)
    for g, (h, (a, b)) in enumerate(zip(graphs, ranges, strict=True)):
        h.validate()
        assert h.num_layers == b  # later blocks do not exist yet
        for layer in range(b):
            f, bt, w = (h.task(f"{k.value}{layer}") for k in TaskKind)
            if layer < a:  # frozen: the whole minibatch forward, nothing kept, no gradient work
                assert f.gemms[:len(graph.task(f"F{layer}").gemms)] == graph.task(f"F{layer}").gemms
                assert f.activation_bytes == 0 and bt.gemms == ()
                # only the last frozen layer's W has work: block g-1's hard-class detector learns there
                assert len(w.gemms) == (1 if layer == a - 1 else 0)
            else:  # trained: forward, backward and weight gradient, on hard_fraction**g of the samples
                assert f.cycles > 0 and bt.cycles > 0 and w.cycles > 0
                own = graph.task(f"W{layer}")
                if own.gemms:
                    assert w.gemms[0].macs == pytest.approx(own.gemms[0].macs * 0.5 ** g, rel=0.02, abs=1)
        for u, v, _ in h.edges:  # no gradient reaches a frozen block: its B and W follow only their own F/B
            if h.task(v).layer < a and h.task(v).kind is not TaskKind.F:
                assert h.task(u).layer == h.task(v).layer and h.task(u).kind is not TaskKind.W


@pytest.fixture(scope="module")
def run():
    cluster = load_cluster(None, processors=3)
    graph = load_workload("snn-cnn", batch=8, timesteps=2, processor=cluster.processors[0])
    ev = evaluate_phases(graph, cluster, list(FAST), MethodOptions("bloctrain"), record=False)
    report, runs = ev.report, ev.runs
    return graph, cluster, report, runs


def test_each_phase_is_scheduled_and_validates_on_its_own_graph(run):
    graph, cluster, _report, runs = run
    for r, h in zip(runs, phase_graphs(graph), strict=True):
        assert [t.id for t in r.graph.tasks] == [t.id for t in h.tasks]
        for name in FAST:  # the phase's row is the generator's schedule of that phase graph, replayed
            sched = schedules.generate(name, h, cluster)
            validate(sched, h, cluster)
            sim = simulate(sched, cluster, graph=h, record=False)
            row = next(x for x in r.report["results"] if x["schedule"] == name)
            assert row["period_cycles"] == sched.period_cycles
            assert row["simulated_period_cycles"] == pytest.approx(sim.simulated_period_cycles)
            assert r.report["sequential_cycles"] == sequential_period(h, cluster)


def test_the_run_is_the_sum_of_its_phases(run):
    _graph, _cluster, report, runs = run
    assert [x["schedule"] for x in report["results"]] == list(FAST) and not report["errors"]
    for row in report["results"]:
        per = [next(x for x in r.report["results"] if x["schedule"] == row["schedule"]) for r in runs]
        sims = [p["simulated_period_cycles"] for p in per]
        seqs = [r.report["sequential_cycles"] for r in runs]
        # equal minibatches per phase: the run's cycles per minibatch are the phases' mean, its total their sum
        n = 100
        total = phase_totals([round(s) for s in sims], [n] * len(runs))
        assert row["simulated_period_cycles"] * n * len(runs) == pytest.approx(total, abs=len(runs) * n)
        assert row["speedup"] == pytest.approx(sum(seqs) / sum(sims))
        assert row["peak_memory_bytes"] == max(p["peak_memory_bytes"] for p in per)
        assert row["energy_joules"] == pytest.approx(sum(p["energy_joules"] for p in per) / len(per))
        delays = [d for r, p in zip(runs, per, strict=True)
                  for d in p["gradient_delays"][r.first_layer:r.end_layer]]
        assert row["gradient_delays"] == delays and row["max_delay"] == max(delays)
        assert [ph["simulated_period_cycles"] for ph in row["phases"]] == sims
        assert [ph["trained_layers"] for ph in row["phases"]] == [[r.first_layer, r.end_layer] for r in runs]


def test_unequal_minibatches_weight_the_phases():
    cluster = load_cluster(None, processors=2)
    graph = load_workload("snn-mlp", batch=8, timesteps=2, processor=cluster.processors[0])
    ev = evaluate_phases(graph, cluster, ["gpipe"], MethodOptions("bloctrain"), minibatches=[3, 1], record=False)
    report, runs = ev.report, ev.runs
    sims = [r.report["results"][0]["simulated_period_cycles"] for r in runs]
    assert report["results"][0]["simulated_period_cycles"] == pytest.approx((3 * sims[0] + sims[1]) / 4)
    with pytest.raises(MethodError):
        phase_weights(2, [1])
    with pytest.raises(MethodError):
        evaluate_phases(graph, cluster, ["gpipe"], MethodOptions("ttl"))


def test_api_simulate_and_compare_report_the_phases():
    res = sp.simulate("snn-mlp", processors=2, schedules=["gpipe", "pipedream"], method="bloctrain")
    assert len(res.phases) == 2 and res.network == "snn-mlp+bloctrain"
    for row in res.results:
        mean = sum(ph[row.schedule].simulated_period_cycles for ph in res.phases) / 2
        assert row.simulated_period_cycles == pytest.approx(mean)
        assert row.to_dict()["phases"][1]["sample_share"] == 0.5
        assert res.phases[0][row.schedule].plan is not None and row.plan is None
    with pytest.raises(sp.SpikePipeError):
        res.plot()
    cmp = sp.compare("snn-mlp", processors=[2], schedules=["gpipe"], method="bloctrain")
    assert cmp.reports[0].to_dict()["results"][0]["phases"][0]["phase"] == 0
    with pytest.raises(sp.SpikePipeError):
        sp.schedule("snn-mlp", processors=2, name="gpipe", method="bloctrain")  # one graph cannot hold the phases


def test_cli_simulate_bloctrain_json_and_refused_flags(capsys, tmp_path):
    rc = main(["simulate", "--network", "snn-mlp", "-P", "2", "--schedule", "gpipe", "--method", "bloctrain",
               "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    row = data["results"][0]
    assert list(row)[:7] == ["schedule", "period_cycles", "simulated_period_cycles", "speedup", "comm_fraction",
                             "gradient_delays", "peak_memory_bytes"]
    assert len(row["phases"]) == 2 and row["phase_combination"].startswith("minibatch-weighted")
    gantt = tmp_path / "g.png"
    rc = main(["simulate", "--network", "snn-mlp", "-P", "2", "--schedule", "gpipe", "--method", "bloctrain",
               "--gantt", str(gantt)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and "--gantt" in err and not gantt.exists()


def test_sweep_point_prices_the_phases():
    from spikepipe.sweep import _run_simulate

    row = _run_simulate({"network": "snn-mlp", "processors": 2, "batch": 8, "timesteps": 2, "schedule": "gpipe",
                         "method": "bloctrain"})
    phases = json.loads(row["phases"])
    assert len(phases) == 2
    assert row["simulated_period_cycles"] == pytest.approx(sum(p["simulated_period_cycles"] for p in phases) / 2)


def test_compare_writes_a_gantt_chart_per_phase(tmp_path):
    cmp = sp.compare("snn-mlp", processors=[2], schedules=["gpipe"], method="bloctrain", out=tmp_path)
    assert sorted(p.name for p in tmp_path.glob("gantt_*.png")) == ["gantt_gpipe_P2_phase0.png",
                                                                    "gantt_gpipe_P2_phase1.png"]
    trace = json.loads((tmp_path / "trace_P2.json").read_text())
    assert trace and cmp.files["csv"]
