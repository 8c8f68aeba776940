"""Spiking transformers written with per-token nn.Linear (not Conv1d) for the embedding, Q / K / V, the projection
and the MLP, the first layer included: the tokens are rows of each sample's GEMM (M = T B tokens per forward),
never samples, so T and B are the model's, attention's [T, B, heads, N, d] products are accepted, F MACs equal
torch's FLOP counter, B and W follow the oracle's rules (no W task without weights), and the model schedules on
4 processors through the CLI. Two styles: SpikingJelly multi-step on [T, B, N, D] and snnTorch with the time loop
in forward on [B, N, D]."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest
import torch
from frontend_oracle import check_oracle

from spikepipe.cli import main

pytest.importorskip("snntorch")
pytest.importorskip("spikingjelly")

MODELS = '''
import torch
from torch import nn
import snntorch as snn
from spikingjelly.activation_based import layer, neuron


def _lin(i, o):
    return layer.Linear(i, o, step_mode="m")


def _lif():
    return neuron.LIFNode(step_mode="m")


class SJBlock(nn.Module):  # multi-step: every tensor is [T, B, N, D]
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.proj = _lin(d, d), _lin(d, d), _lin(d, d), _lin(d, d)
        self.q_lif, self.k_lif, self.v_lif, self.attn_lif, self.proj_lif = (_lif() for _ in range(5))
        self.fc1, self.fc1_lif, self.fc2, self.fc2_lif = _lin(d, 2 * d), _lif(), _lin(2 * d, d), _lif()

    def forward(self, x):
        t, b, n, d = x.shape

        def heads(y):
            return y.reshape(t, b, n, self.heads, d // self.heads).permute(0, 1, 3, 2, 4)  # [T, B, h, N, d/h]

        q, k, v = (heads(lif(f(x))) for f, lif in ((self.q, self.q_lif), (self.k, self.k_lif), (self.v, self.v_lif)))
        a = self.attn_lif((q @ k.transpose(-2, -1)) @ v * 0.125).permute(0, 1, 3, 2, 4).reshape(t, b, n, d)
        x = self.proj_lif(self.proj(a)) + x
        return self.fc2_lif(self.fc2(self.fc1_lif(self.fc1(x)))) + x


class SJTransformer(nn.Module):
    def __init__(self, features=6, d=16, heads=2, classes=3):
        super().__init__()
        self.embed, self.embed_lif = _lin(features, d), _lif()
        self.block = SJBlock(d, heads)
        self.head = _lin(d, classes)

    def forward(self, x):  # [T, B, N, features]
        y = self.block(self.embed_lif(self.embed(x)))
        return self.head(y.mean(2)).mean(0)


class SnnBlock(nn.Module):  # snnTorch style: one step on [B, N, D], membranes carried by the caller
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.proj = (nn.Linear(d, d) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(d, 2 * d), nn.Linear(2 * d, d)
        self.lifs = nn.ModuleList(snn.Leaky(beta=0.9) for _ in range(7))

    def forward(self, x, mem):
        b, n, d = x.shape
        out = []

        def lif(i, y):
            s, mem[i] = self.lifs[i](y, mem[i])
            return s

        def heads(y):
            return y.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)  # [B, h, N, d/h]

        q, k, v = (heads(lif(i, f(x))) for i, f in enumerate((self.q, self.k, self.v)))
        a = lif(3, (q @ k.transpose(-2, -1)) @ v * 0.125).transpose(1, 2).reshape(b, n, d)
        x = lif(4, self.proj(a)) + x
        return lif(6, self.fc2(lif(5, self.fc1(x)))) + x


class SnnTransformer(nn.Module):
    def __init__(self, features=6, d=16, heads=2, classes=3, steps=5):
        super().__init__()
        self.steps = steps
        self.embed, self.embed_lif = nn.Linear(features, d), snn.Leaky(beta=0.9)
        self.block = SnnBlock(d, heads)
        self.head, self.head_lif = nn.Linear(d, classes), snn.Leaky(beta=0.9)

    def forward(self, x):  # [B, N, features], the time loop inside
        mem0, mem_head = self.embed_lif.init_leaky(), self.head_lif.init_leaky()
        mem = [lif.init_leaky() for lif in self.block.lifs]
        out = []
        for _ in range(self.steps):
            s, mem0 = self.embed_lif(self.embed(x), mem0)
            y = self.block(s, mem)
            o, mem_head = self.head_lif(self.head(y.mean(1)), mem_head)
            out.append(o)
        return torch.stack(out)


class LoopOverInput(nn.Module):  # snnTorch blocks over x[t] of a [T, B, N, features] input
    def __init__(self, features=6, d=16, heads=2):
        super().__init__()
        self.embed, self.embed_lif, self.block = nn.Linear(features, d), snn.Leaky(beta=0.9), SnnBlock(d, heads)

    def forward(self, x):
        mem, mem0, out = [lif.init_leaky() for lif in self.block.lifs], self.embed_lif.init_leaky(), []
        for t in range(x.shape[0]):
            s, mem0 = self.embed_lif(self.embed(x[t]), mem0)
            out.append(self.block(s, mem))
        return torch.stack(out)


class FoldedTime(nn.Module):  # SpikingJelly's SeqToANNContainer folds [T, B] into one dim before each Linear
    def __init__(self, features=6):
        super().__init__()
        self.fc1, self.lif1 = layer.SeqToANNContainer(nn.Linear(features, 8)), _lif()
        self.fc2, self.lif2 = layer.SeqToANNContainer(nn.Linear(8, 4)), _lif()

    def forward(self, x):
        return self.lif2(self.fc2(self.lif1(self.fc1(x))))


class RepeatedInput(nn.Module):  # [B, N, features] repeated over T = 4 inside forward (Spikformer's way)
    def __init__(self):
        super().__init__()
        self.net = SJTransformer()

    def forward(self, x):
        return self.net(x.unsqueeze(0).repeat(4, 1, 1, 1))


def sj_transformer():
    return SJTransformer(), torch.rand(3, 2, 5, 6)


def snn_transformer():
    return SnnTransformer(), torch.rand(4, 7, 6)
'''


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tokens") / "token_models.py"
    path.write_text(MODELS)
    return path


def _build(models: Path, name: str, *args: int):
    return runpy.run_path(str(models))[name](*args)


# (model class, example shape, T, B, tokens); T of the snnTorch model is its own steps, fixed in forward
GRID = [("SJTransformer", (3, 2, 5, 6), 3, 2, 5), ("SJTransformer", (2, 4, 3, 6), 2, 4, 3),
        ("SJTransformer", (1, 1, 7, 6), 1, 1, 7), ("SnnTransformer", (4, 7, 6), 5, 4, 7),
        ("SnnTransformer", (1, 3, 6), 5, 1, 3), ("SnnTransformer", (3, 1, 6), 5, 3, 1)]


@pytest.mark.parametrize(("cls", "shape", "t", "b", "n"), GRID)
def test_per_token_linears_cost_tokens_as_rows_and_match_torch(models: Path, cls: str, shape: tuple[int, ...],
                                                                t: int, b: int, n: int) -> None:
    model = _build(models, cls)
    traced = check_oracle(model, torch.rand(*shape), t, b)
    linears = [s for s in traced.layers if s.op == "linear"]
    per_token = [s for s in linears if s.name != "head"]
    assert per_token[0].name == "embed" and per_token[0].in_shape[-1] == 6
    if n > 1:  # (one token is no dim to tell apart from the features, except on the first layer)
        assert all(s.in_shape[:-1] == (n,) for s in per_token)
    products = [s for s in traced.layers if s.op == "matmul"]
    assert [(s.in_shape, s.out_shape) for s in products] == [((2, n, 8), (2, n, n)), ((2, n, n), (2, n, 8))]
    assert all(s.weight_count == 0 for s in products)


@pytest.mark.parametrize(("cls", "shape", "t", "b", "style"), [
    ("LoopOverInput", (3, 2, 5, 6), 3, 2, "loop-over-input"), ("FoldedTime", (3, 2, 5, 6), 3, 2, "multi-step"),
    ("RepeatedInput", (2, 5, 6), 4, 2, "time-in-forward")])
def test_tokens_follow_how_the_first_layer_receives_the_input(models: Path, cls: str, shape: tuple[int, ...],
                                                               t: int, b: int, style: str) -> None:
    traced = check_oracle(_build(models, cls), torch.rand(*shape), t, b)
    assert traced.layout.style == style
    assert all(s.in_shape[:-1] == (shape[-2],) for s in traced.layers if s.op == "linear" and s.name != "net.head")


def _json(capsys, *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    return json.loads(out[0])


@pytest.mark.parametrize(("fn", "t", "b", "style"), [("sj_transformer", 3, 2, "multi-step"),
                                                     ("snn_transformer", 5, 4, "loop-in-forward")])
def test_token_transformers_schedule_on_four_processors(models: Path, capsys, fn: str, t: int, b: int,
                                                        style: str) -> None:
    tasks = _json(capsys, "tasks", "--network", f"{models}:{fn}")
    assert (tasks["timesteps"], tasks["batch"], tasks["layout"]) == (t, b, style)
    model, x = _build(models, fn)
    traced = check_oracle(model, x, t, b)
    weightless = {s.index for s in traced.layers if not s.has_weights}
    assert weightless and not any(r["kind"] == "W" and r["layer"] in weightless for r in tasks["tasks"])
    data = _json(capsys, "simulate", "--network", f"{models}:{fn}", "--schedule", "spikepipe", "--processors", "4",
                 "--time-limit", "2")
    assert (data["timesteps"], data["batch"]) == (t, b)
    assert not data.get("errors")
