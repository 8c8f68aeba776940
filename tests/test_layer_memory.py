"""The cost model's kept-for-backward items of every layer, item by item, against what torch's autograd saves
for the same op of the same zoo layer (`torch.autograd.graph.saved_tensors_hooks`), at the same word size."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from spikepipe import zoo
from spikepipe.cli import main
from spikepipe.costs import Precision, build_task_graph
from spikepipe.layer_memory import graph_items, kept_bytes
from spikepipe.workload import load_workload


class Saved:
    """Bytes autograd saves, floats converted to `word` bytes per element, other dtypes at their own size, each
    tensor once; parameters and buffers (they exist anyway) are left out."""

    def __init__(self, word: int, exclude) -> None:
        self.word = word
        self.skip = {t.untyped_storage().data_ptr() for t in exclude}
        self.floats = 0
        self.other = 0
        self.stats = 0  # per-channel vectors (1-d)
        self.seen: set = set()  # one tensor saved by two ops (log-softmax's output, read by nll too) is kept once

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype)
        if key[0] not in self.skip and key not in self.seen:
            self.seen.add(key)
            if t.is_floating_point():
                n = t.numel() * self.word
                if t.dim() == 1 and t.numel() > 1:
                    self.stats += n
                else:
                    self.floats += n
            else:
                self.other += t.numel() * t.element_size()
        return t

    def __enter__(self):
        self._h = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)
        self._h.__enter__()
        return self

    def __exit__(self, *exc):
        self._h.__exit__(*exc)


def _td(module, x):
    t, b = x.shape[0], x.shape[1]
    y = module(x.reshape(t * b, *x.shape[2:]))
    return y.reshape(t, b, *y.shape[1:])


def _torch_items(net, layers, t: int, b: int, word: int) -> list[dict[str, int]]:
    """Per layer: the bytes torch saves for each sub-op, run on inputs of the layer's shapes."""
    params = [*net.parameters(), *net.buffers()]
    g = torch.Generator().manual_seed(0)
    out = []
    for spec, block in zip(layers, net.blocks, strict=True):
        items: dict[str, int] = {}
        fires = all(src >= 0 and layers[src].neuron is not None for src in spec.inputs)
        x = torch.rand(t, b, *spec.in_shape, generator=g)
        x = (x < 0.5).float() if fires else x
        with Saved(word, params) as s:
            y = _td(block.synapse, x)
        items["synapse_input"] = s.floats + s.other
        y = y.detach().requires_grad_()
        if block.norm is not None:
            with Saved(word, params) as s:
                y = _td(block.norm, y)
            items["norm_input"], items["norm_stats"] = s.floats, s.stats
        if block.neuron is not None:
            with Saved(word, params) as s:
                y = block.neuron(y)
            items["membrane"] = s.floats + s.other
        if block.pool is not None:
            with Saved(word, params) as s:
                y = _td(block.pool, y)
            key = "pool_indices" if isinstance(block.pool, torch.nn.MaxPool2d) else "pool_input"
            items[key] = s.floats + s.other
        if spec.index == len(layers) - 1:
            logits = y.mean(0)
            with Saved(word, params) as s:
                F.cross_entropy(logits, torch.arange(b) % logits.shape[1])
            items["loss"] = s.floats + s.other + s.stats
        out.append(items)
    return out


@pytest.mark.parametrize("network", ["snn-cnn", "vgg11-28", "snn-mlp"])
@pytest.mark.parametrize("word", [2, 4])
def test_items_match_torch_autograd_item_by_item(network, word):
    t, b = 2, 3
    net, _ = zoo.build(network, timesteps=t, batch=b, seed=0)
    graph = load_workload(network, batch=b, timesteps=t)
    ours = graph_items(graph.layers, batch=b, timesteps=t, word_bytes=word)
    theirs = _torch_items(net, graph.layers, t, b, word)
    for spec, mine, ref in zip(graph.layers, ours, theirs, strict=True):
        assert {i.name for i in mine} == set(ref), spec.name  # no item torch keeps is left out, none invented
        for item in mine:
            assert item.torch_bytes == ref[item.name], (spec.name, item.name)
            # a difference from torch is always a stated choice of the hardware model
            assert (item.bytes != item.torch_bytes) == bool(item.choice), (spec.name, item.name)
            assert item.bytes <= item.torch_bytes


@pytest.mark.slow
def test_items_match_torch_on_a_residual_network_with_average_pooling():
    t, b, word = 1, 2, 2
    net, _ = zoo.build("resnet18", timesteps=t, batch=b, seed=0)
    graph = load_workload("resnet18", batch=b, timesteps=t)
    ours = graph_items(graph.layers, batch=b, timesteps=t, word_bytes=word)
    theirs = _torch_items(net, graph.layers, t, b, word)
    for mine, ref in zip(ours, theirs, strict=True):
        assert {i.name: i.torch_bytes for i in mine} == ref


@pytest.mark.parametrize("word", [1, 2, 4])
def test_the_task_graph_holds_exactly_the_items(word):
    graph = load_workload("snn-cnn", batch=4, timesteps=3)
    g = build_task_graph(graph.layers, batch=4, timesteps=3, precision=Precision(word_bytes=word, weight_bytes=word))
    items = graph_items(g.layers, batch=4, timesteps=3, word_bytes=word)
    assert [g.task(f"F{i}").activation_bytes for i in range(g.num_layers)] == [kept_bytes(k) for k in items]


def test_tasks_json_shows_every_item_and_its_choice(capsys):
    assert main(["tasks", "--network", "snn-cnn", "--batch", "4", "--timesteps", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by_layer = {t["layer"]: t["activation_bytes"] for t in data["tasks"] if t["kind"] == "F"}
    for row in data["layers"]:
        kept = row["kept_for_backward"]
        assert sum(k["bytes"] for k in kept) == by_layer[row["index"]]
        assert all((k["bytes"] != k["torch_bytes"]) == bool(k["choice"]) for k in kept)
    names = {k["item"] for row in data["layers"] for k in row["kept_for_backward"]}
    assert {"synapse_input", "norm_input", "norm_stats", "membrane", "pool_indices", "loss"} <= names
