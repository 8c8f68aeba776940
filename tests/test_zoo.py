"""The zoo's structure contract (block i is layer i) that the trainer relies on."""

from __future__ import annotations

import pytest
import torch

from spikepipe import zoo
from spikepipe.frontend import trace

SHAPES = {"snn-mlp": ((64,), 8), "snn-cnn": ((1, 28, 28), 4), "vgg11": ((3, 32, 32), 4),
          "vgg16": ((3, 32, 32), 4), "resnet18": ((3, 32, 32), 4), "vgg11-28": ((1, 28, 28), 4)}


def test_required_names() -> None:
    assert set(SHAPES) <= set(zoo.names())


@pytest.mark.parametrize("name", ["snn-mlp", "snn-cnn", "vgg11-28", "resnet18"])
def test_build_forward_and_blockwise_run_agree(name: str) -> None:
    model, x = zoo.build(name, batch=2, timesteps=2, seed=1)
    shape, _ = SHAPES[name]
    assert tuple(x.shape) == (2, 2, *shape)
    model.eval()
    with torch.no_grad():
        logits = model(x)
        outs: list[torch.Tensor] = []
        for blk, src, res in zip(model.blocks, model.sources, model.residuals, strict=True):
            inp = x if src == -1 else outs[src]
            outs.append(blk(inp, None if res is None else (x if res == -1 else outs[res])))
    assert logits.shape == (2, 10)
    assert torch.allclose(logits, outs[-1].mean(0))
    assert model.blocks[-1].neuron is None and all(-1 <= s < i for i, s in enumerate(model.sources))


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_block_i_is_traced_layer_i(name: str) -> None:
    model, x = zoo.build(name, batch=1)
    assert model.timesteps == SHAPES[name][1] == x.shape[0]
    layers = trace(model, x)
    assert [s.name for s in layers] == [f"blocks.{i}.synapse" for i in range(len(model.blocks))]
    assert [s.inputs for s in layers] == [(s,) for s in model.sources]
    adds = [next((p.source for p in s.post_ops if p.kind == "add"), None) for s in layers]
    assert adds == list(model.residuals)


def test_seed_determinism_and_options() -> None:
    a, xa = zoo.build("snn-cnn", seed=3, batch=2)
    b, xb = zoo.build("snn-cnn", seed=3, batch=2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert torch.equal(xa, xb)
    c, _ = zoo.build("snn-cnn", seed=4, num_classes=7, timesteps=3)
    assert c.blocks[-1].synapse.out_features == 7 and c.timesteps == 3
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_unknown_name_is_a_typed_error() -> None:
    with pytest.raises(zoo.UnknownNetworkError, match="unknown network 'vgg99'.*resnet18"):
        zoo.build("vgg99")
