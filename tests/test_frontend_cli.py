"""The issue's own cases through the CLI: time and batch as the model runs them, stated in every output, and
costing at any T without running anything at full size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spikepipe.cli import main

pytest.importorskip("snntorch")
pytest.importorskip("spikingjelly")

MODELS = '''
import torch
from torch import nn
import snntorch as snn
from spikingjelly.activation_based import functional, layer, neuron


class Tutorial(nn.Module):  # snnTorch tutorial 6: num_steps inside forward over a static [B, C, H, W] input
    def __init__(self, c, steps=8):
        super().__init__()
        self.steps = steps
        self.conv1, self.lif1 = nn.Conv2d(c, 12, 5), snn.Leaky(beta=0.5)
        self.conv2, self.lif2 = nn.Conv2d(12, 64, 5), snn.Leaky(beta=0.5)
        self.fc1, self.lif3 = nn.Linear(64 * 4 * 4 if c == 1 else 64 * 5 * 5, 10), snn.Leaky(beta=0.5)

    def forward(self, x):
        mem1, mem2, mem3 = self.lif1.init_leaky(), self.lif2.init_leaky(), self.lif3.init_leaky()
        out = []
        for step in range(self.steps):
            spk1, mem1 = self.lif1(nn.functional.max_pool2d(self.conv1(x), 2), mem1)
            spk2, mem2 = self.lif2(nn.functional.max_pool2d(self.conv2(spk1), 2), mem2)
            spk3, mem3 = self.lif3(self.fc1(spk2.flatten(1)), mem3)
            out.append(spk3)
        return torch.stack(out)


def tutorial_1ch():
    return Tutorial(1), torch.rand(32, 1, 28, 28)


def tutorial_3ch():
    return Tutorial(3), torch.rand(16, 3, 32, 32)


class Looped(nn.Module):  # a SpikingJelly single-step network called 4 times
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(layer.Conv2d(1, 8, 3, padding=1), neuron.IFNode(), layer.MaxPool2d(2),
                                 layer.Flatten(), layer.Linear(8 * 14 * 14, 10), neuron.LIFNode())

    def forward(self, x):
        out = torch.stack([self.net(x) for _ in range(4)]).mean(0)
        functional.reset_net(self.net)
        return out


def sj_looped():
    return Looped(), torch.rand(8, 1, 28, 28)
'''


def _json(capsys, *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    return json.loads(out[0])


@pytest.fixture()
def models(tmp_path: Path) -> Path:
    path = tmp_path / "models.py"
    path.write_text(MODELS)
    return path


@pytest.mark.parametrize(("fn", "t", "b"), [("tutorial_1ch", 8, 32), ("tutorial_3ch", 8, 16), ("sj_looped", 4, 8)])
def test_tasks_report_the_models_own_t_and_b(models: Path, capsys, fn: str, t: int, b: int) -> None:
    data = _json(capsys, "tasks", "--network", f"{models}:{fn}")
    assert (data["timesteps"], data["batch"], data["layout"]) == (t, b, "loop-in-forward")
    assert data["time_fixed"] and "called" in data["timesteps_source"]
    again = _json(capsys, "tasks", "--network", f"{models}:{fn}", "--batch", str(2 * b))
    f_macs = [sum(r["macs"] for r in d["tasks"] if r["kind"] == "F") for d in (data, again)]
    assert f_macs[1] == 2 * f_macs[0] and again["batch_source"] == "--batch"


def test_simulate_reports_t_and_b(models: Path, capsys) -> None:
    data = _json(capsys, "simulate", "--network", f"{models}:tutorial_1ch", "-P", "2", "--schedule", "gpipe")
    assert (data["timesteps"], data["batch"], data["layout"]) == (8, 32, "loop-in-forward")


def test_long_sequences_cost_analytically(capsys) -> None:
    """vgg16 at T=100,000 is traced at T=2 and costed at T: F MACs exactly T/4 times those at the default T=4."""
    big = _json(capsys, "tasks", "--network", "vgg16", "--timesteps", "100000")
    small = _json(capsys, "tasks", "--network", "vgg16")
    assert big["timesteps"] == 100000 and big["timesteps_source"] == "--timesteps"
    f = [sum(r["macs"] for r in d["tasks"] if r["kind"] == "F") for d in (big, small)]
    assert f[0] * small["timesteps"] == f[1] * 100000
