"""Measured spike activity: the hook meter on hand-built models with known spike counts, on snnTorch and
SpingJelly neurons, the activity file, `spikepipe activity`, `train --activity-out` and `simulate --activity`."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from spikepipe.activity import ActivityError, ActivityReport, measure, read_report, write_report
from spikepipe.cli import main
from spikepipe.ir import LayerSpec


class Fire(nn.Module):
    """A threshold neuron without state: spikes where the input exceeds 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > 0).float()


def specs(*pairs: tuple[str, int, int]) -> list[LayerSpec]:
    return [LayerSpec(i, name, "linear", (fin,), (fout,), inputs=(i - 1,)) for i, (name, fin, fout) in enumerate(pairs)]


def test_known_counts_multistep():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), Fire(), nn.Linear(5, 3), Fire(), nn.Linear(3, 2))
    x = (torch.rand(4, 2, 6) < 0.3).float()
    with torch.no_grad():
        s1 = (model[0](x) > 0).float()
        s2 = (model[2](s1) > 0).float()
    rep = measure(model, specs(("0", 6, 5), ("2", 5, 3), ("4", 3, 2)), [x], model_name="m", dataset="d")
    def frac(t):
        return int(t.count_nonzero()) / t.numel()

    assert [la.input_activity for la in rep.layers] == [frac(x), frac(s1), frac(s2)]
    assert [la.input_binary for la in rep.layers] == [True, True, True]
    assert [la.output_activity for la in rep.layers] == [frac(s1), frac(s2), None]
    assert (rep.samples, rep.timesteps) == (2, 4)


class TimeLoop(nn.Module):
    """Calls its synapses once per step, with a membrane kept across steps (fires at >= 1, subtracts)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fire, self.fc2 = nn.Linear(4, 8), nn.Identity(), nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = torch.zeros(x.shape[1], 8)
        out = []
        for t in range(x.shape[0]):
            u = u + self.fc1(x[t])
            s = (u >= 1).float()
            u = u - s
            out.append(self.fc2(self.fire(s)))
        return torch.stack(out)


def test_time_loop_is_counted_over_every_call():
    torch.manual_seed(1)
    model = TimeLoop()
    x = torch.rand(5, 3, 4)  # analog input: not binary
    spikes = []
    model.fc2.register_forward_hook(lambda _m, a, _o: spikes.append(a[0]))
    rep = measure(model, specs(("fc1", 4, 8), ("fc2", 8, 2)), [x], model_name="loop", dataset="rand")
    s = torch.stack(spikes[:5])
    assert rep.layers[0].input_binary is False and rep.layers[0].input_activity == int(x.count_nonzero()) / x.numel()
    assert rep.layers[1].input_binary is True
    assert rep.layers[1].input_activity == pytest.approx(float(s.mean()))


def test_snntorch_and_spikingjelly_neurons_are_found():
    """The spikes a layer emits (its neuron's output) are what the next linear layer reads."""
    snntorch = pytest.importorskip("snntorch")
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(2)

    class SnnTorchNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.lif1, self.fc2 = nn.Linear(10, 16), snntorch.Leaky(beta=0.9), nn.Linear(16, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mem = self.lif1.init_leaky()
            out = []
            for t in range(x.shape[0]):
                spk, mem = self.lif1(self.fc1(x[t]), mem)
                out.append(self.fc2(spk))
            return torch.stack(out)

    sj = nn.Sequential(layer.Linear(10, 16), neuron.LIFNode(step_mode="m"), layer.Linear(16, 3))
    functional.set_step_mode(sj, "m")
    x = torch.rand(6, 4, 10) * 3
    for model, names in ((SnnTorchNet(), ("fc1", "fc2")), (sj, ("0", "2"))):
        rep = measure(model, specs((names[0], 10, 16), (names[1], 16, 3)), [x], model_name="n", dataset="r")
        first, second = rep.layers
        assert second.input_binary and not first.input_binary
        assert first.output_activity is not None and 0 < first.output_activity < 1
        assert first.output_activity == pytest.approx(second.input_activity)


def test_file_round_trip_and_bad_files(tmp_path):
    model = nn.Sequential(nn.Linear(3, 3), Fire(), nn.Linear(3, 1))
    rep = measure(model, specs(("0", 3, 3), ("2", 3, 1)), [(torch.rand(2, 2, 3) < 0.5).float()],
                  model_name="m", dataset="d", epoch=3)
    path = write_report(tmp_path / "a.json", rep)
    back = read_report(path)
    assert back == rep and back.epoch == 3
    for bad in ("[]", "{}", '{"model": "m", "dataset": "d", "samples": 1, "timesteps": 1, "layers": '
                '[{"index": 0, "name": "x", "input_activity": 2.0, "input_binary": true}]}', "not json"):
        (tmp_path / "bad.json").write_text(bad)
        with pytest.raises(ActivityError):
            read_report(tmp_path / "bad.json")


def cli(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_activity_command_and_simulate_activity(tmp_path, capsys):
    act = tmp_path / "act.json"
    rc, out, _ = cli(["activity", "--network", "snn-cnn", "--dataset", "digits", "--resize", "--samples", "32",
                      "--batch", "8", "--timesteps", "2", "--out", str(act), "--json"], capsys)
    assert rc == 0
    data = json.loads(out)
    assert data["model"] == "snn-cnn" and data["epoch"] is None and data["samples"] == 32
    assert len(data["layers"]) == 4 and read_report(act).input_activities() == [la["input_activity"]
                                                                               for la in data["layers"]]
    base = ["simulate", "--network", "snn-cnn", "-P", "2", "--schedule", "pipedream", "--batch", "8",
            "--timesteps", "2", "--json"]
    dense = json.loads(cli(base, capsys)[1])["results"][0]
    measured = json.loads(cli(base + ["--activity", str(act)], capsys)[1])["results"][0]
    assert measured["energy_activity"] == "measured" and dense["energy_activity"] == "dense"
    assert measured["energy_breakdown_joules"]["ac"] > 0 == dense["energy_breakdown_joules"]["ac"]
    assert measured["energy_breakdown_joules"]["mac"] < dense["energy_breakdown_joules"]["mac"]
    assert measured["period_cycles"] == dense["period_cycles"]  # cycles stay dense
    # all-zero activity: the AC-free bound
    zero = ActivityReport.from_dict({**data, "layers": [{**la, "input_activity": 0.0, "gemm_activity": 0.0}
                                                        for la in data["layers"]]})
    write_report(tmp_path / "zero.json", zero)
    z = json.loads(cli(base + ["--activity", str(tmp_path / "zero.json")], capsys)[1])["results"][0]
    assert z["energy_breakdown_joules"]["ac"] == 0
    assert z["energy_breakdown_joules"]["mac"] == measured["energy_breakdown_joules"]["mac"]
    # a file of another network, a missing file: one error line, status 2
    for path in (str(act), str(tmp_path / "missing.json")):
        rc, out, err = cli(["simulate", "--network", "snn-mlp", "-P", "2", "--schedule", "pipedream", "--json",
                            "--activity", path], capsys)
        assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and err.startswith("error:")


def test_train_activity_out(tmp_path, capsys):
    path = tmp_path / "train_act.json"
    rc, out, _ = cli(["train", "--network", "snn-mlp", "--dataset", "digits", "--epochs", "2", "--limit-train", "64",
                      "--no-progress", "--json", "--activity-out", str(path)], capsys)
    assert rc == 0 and json.loads(out)["test_accuracy"] >= 0
    rep = read_report(path)
    assert rep.model == "snn-mlp" and rep.dataset == "digits" and rep.epoch == 2
    assert [h["epoch"] for h in rep.history] == [1, 2]
    assert len(rep.layers) == 2 and rep.layers[1].input_binary and rep.layers[0].output_activity is not None
    assert rep.layers[0].output_activity == pytest.approx(rep.layers[1].input_activity)  # no pooling in between


def test_zero_skip_gemm_by_hand_and_against_random_spikes():
    import numpy as np

    from hwmodels import Dataflow, SystolicArray
    from spikepipe.costs import zero_skip_gemm
    from spikepipe.ir import Gemm

    os4, ws4, is4 = (SystolicArray(4, 4, d) for d in (Dataflow.OS, Dataflow.WS, Dataflow.IS))
    g = Gemm(2, 10, 3, binary_operand="a")
    assert zero_skip_gemm(g, 0.5, os4).k == 8  # 2 entries per step: 1 - 0.5^2 = 0.75 of 10 steps, rounded up
    assert zero_skip_gemm(Gemm(10, 3, 5, binary_operand="a"), 0.5, ws4).m == 9  # 1 - 0.5^3 of 10
    assert zero_skip_gemm(g, 0.5, is4) == g and zero_skip_gemm(Gemm(2, 10, 3), 0.5, os4) == Gemm(2, 10, 3)
    assert zero_skip_gemm(g, 1.0, os4) == g and zero_skip_gemm(g, 0.0, os4).k == 1
    # the model against spikes drawn at random: an OS fold skips step k when A[rows of the fold, k] is all zero
    rng = np.random.default_rng(0)
    m, k, a = 8, 20000, 0.2
    spikes = rng.random((m, k)) < a
    busy_steps = sum(int(spikes[r:r + 4].any(axis=0).sum()) for r in range(0, m, 4)) / (m // 4)
    assert zero_skip_gemm(Gemm(m, k, 3, binary_operand="a"), a, os4).k == pytest.approx(busy_steps, rel=0.02)


def test_zero_skip_reported_beside_dense(tmp_path, capsys):
    from spikepipe.costs import zero_skip_graph
    from spikepipe.workload import load_workload

    g = load_workload("snn-cnn", batch=4, timesteps=2)
    assert zero_skip_graph(g, [1.0] * g.num_layers).total_cycles() == g.total_cycles()
    low = zero_skip_graph(g, [0.001] * g.num_layers)
    assert all(low.cycles(t.id) <= g.cycles(t.id) for t in g.tasks) and low.total_cycles() < g.total_cycles()
    act = tmp_path / "low.json"
    layers = [{"index": s.index, "name": s.name, "input_activity": 0.001, "input_binary": s.index > 0,
               "output_activity": None} for s in g.layers]
    act.write_text(json.dumps({"model": "snn-cnn", "dataset": "x", "epoch": None, "samples": 1, "timesteps": 2,
                               "layers": layers}))
    base = ["simulate", "--network", "snn-cnn", "-P", "2", "--schedule", "sequential,pipedream", "--batch", "4",
            "--timesteps", "2", "--json", "--activity", str(act)]
    rc, out, _ = cli(base + ["--zero-skip"], capsys)
    assert rc == 0
    for r in json.loads(out)["results"]:
        assert r["zero_skip_simulated_period_cycles"] <= r["simulated_period_cycles"]
        assert r["zero_skip_speedup"] >= r["speedup"] and r["period_cycles"] >= r["zero_skip_period_cycles"]
    rc, out, err = cli(base[:-2] + ["--zero-skip"], capsys)
    assert rc == 2 and out == "" and "--activity" in err
