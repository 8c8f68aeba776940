"""`--method checkpoint|skipper|ttl|bloctrain` on users' own modules (spikepipe.methods.usernet) against two
oracles: the same method on the built-in network the module mirrors weight for weight (tests/method_nets.py
zoo_twin), and plain BPTT for the methods that must give its gradient exactly (checkpointing; Skipper with no skip;
TTL with one window of T steps and one block). Also the kept-memory meter on them, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("spikingjelly")
pytest.importorskip("snntorch")

import method_nets  # noqa: E402

from spikepipe import zoo  # noqa: E402
from spikepipe.cli import main  # noqa: E402
from spikepipe.frontend import trace_model  # noqa: E402
from spikepipe.methods import make_trainer  # noqa: E402
from spikepipe.methods.checkpoint import checkpointed_grads  # noqa: E402
from spikepipe.methods.memory import kept_peak  # noqa: E402
from spikepipe.methods.registry import MethodError  # noqa: E402
from spikepipe.methods.usernet import UserNet, make_user_trainer  # noqa: E402
from spikepipe.train.bptt import PlainBPTT  # noqa: E402
from spikepipe.train.model import ModelFn  # noqa: E402
from spikepipe.train.optim import OptimConfig  # noqa: E402

NETS = Path(method_nets.__file__)
T, B = 5, 6
SGD = OptimConfig(name="sgd", lr=0.5, momentum=0.9, weight_decay=0.0, schedule="constant")


def _fn(model: nn.Module, example: torch.Tensor, timesteps: int | None = None) -> ModelFn:
    traced = trace_model(model, example, timesteps=timesteps)
    return ModelFn(model, example, traced.layers, traced.layout)


def _batches(n: int, t: int = T, features: int = 64, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(t, B, features, generator=g) * 1.5, torch.randint(0, 10, (B,), generator=g))
            for _ in range(n)]


def _values(weights: list[dict]) -> list[torch.Tensor]:
    return [w for ws in weights for w in ws.values()]


METHODS = [("checkpoint", {"checkpoint_every": 2}), ("checkpoint", {"checkpoint_every": 1}),
           ("skipper", {"checkpoint_every": 3, "skip": 1, "skipper_gradient": "drop"}),
           ("skipper", {"checkpoint_every": 3, "skip": 2}),
           ("ttl", {"window": 2, "blocks": 2}), ("ttl", {"window": 3, "blocks": 1}),
           ("bloctrain", {"blocks": 2})]


@pytest.mark.parametrize("step_mode", ["m", "s"])
@pytest.mark.parametrize(("method", "params"), METHODS, ids=[f"{m}-{'-'.join(map(str, p.values()))}"
                                                              for m, p in METHODS])
def test_method_on_a_user_sequential_equals_it_on_the_builtin_network(method, params, step_mode):
    """A SpikingJelly nn.Sequential (multi-step, or single-step run T times) with the weights and neurons of
    the built-in snn-mlp trains to the same weights and logits under every method, and keeps the same bytes."""
    net, ex = zoo.build("snn-mlp", timesteps=T, batch=2, num_classes=10, seed=0)
    twin = method_nets.zoo_twin(net, step_mode)
    fn = _fn(twin, ex if step_mode == "m" else ex[0], T)
    zoo_tr = make_trainer(method, net, ex, SGD, total_steps=10, epochs=2, seed=0, **params)
    user_tr = make_user_trainer(method, fn, SGD, total_steps=10, epochs=2, seed=0, **params)
    data = _batches(3)
    for tr in (zoo_tr, user_tr):
        tr.run_epoch(lambda n: data[n], len(data))
    for a, b in zip(_values(zoo_tr.weights), _values(user_tr.weights), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    x, y = _batches(1, seed=9)[0]
    torch.testing.assert_close(user_tr.logits(x), zoo_tr.logits(x), rtol=1e-5, atol=1e-6)
    # the meter sees the same kept tensors; the user model's re-runs read copies of its buffers (the neurons'
    # beta), which are counted, as every copy is
    extra = sum(b.numel() * b.element_size() for b in twin.buffers())
    zoo_kept, user_kept = kept_peak(zoo_tr, x, y), kept_peak(user_tr, x, y)
    assert zoo_kept > 0 and zoo_kept <= user_kept <= zoo_kept + extra


def _sj_multi_plain() -> tuple[nn.Module, torch.Tensor]:
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    torch.manual_seed(0)
    net = nn.Sequential(layer.Linear(64, 24), neuron.LIFNode(tau=2.0, v_threshold=0.5,
                                                             surrogate_function=surrogate.ATan()),
                        layer.Linear(24, 10), neuron.ParametricLIFNode(v_threshold=0.5))
    functional.set_step_mode(net, "m")
    return net, torch.zeros(T, 1, 64)


def _st_dropout() -> tuple[nn.Module, torch.Tensor]:
    import snntorch as snn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 24), snn.Synaptic(alpha=0.7, beta=0.8, threshold=0.5, init_hidden=True),
                        nn.Dropout(0.3), nn.Linear(24, 10), snn.Leaky(beta=0.8, threshold=0.5, init_hidden=True,
                                                                      output=True))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
    return net, torch.zeros(1, 64)


EXACT = {"snntorch-init-hidden": method_nets.st_seq_digits, "spikingjelly-single-step": method_nets.sj_single_digits,
         "spikingjelly-multi-step-plif": _sj_multi_plain, "snntorch-synaptic-dropout": _st_dropout}


@pytest.mark.parametrize("every", [1, 2, 3, T])
@pytest.mark.parametrize("name", sorted(EXACT))
def test_checkpointing_a_user_model_gives_bptts_gradient(name, every):
    """Checkpointed BPTT on the library's own neurons (state carried through `v`, `mem`, `syn` and learnable tau)
    equals one ordinary backward of the whole model, dropout masks included (the re-run draws the same ones)."""
    model, ex = EXACT[name]()
    fn = _fn(model, ex, T)
    net = UserNet(fn, "checkpoint")
    x, y = _batches(1)[0]
    weights = fn.initial_weights()
    torch.manual_seed(5)
    loss, _, want = PlainBPTT(fn, SGD, total_steps=1).loss_grads(weights, x, y)
    torch.manual_seed(5)
    got_loss, _, got = checkpointed_grads(net, weights, x, y, every)
    torch.testing.assert_close(got_loss, loss, rtol=1e-5, atol=1e-6)
    for ws, wg in zip(want, got, strict=True):
        for k, g in ws.items():
            torch.testing.assert_close(wg[k], g, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(EXACT))
def test_ttl_with_one_window_and_one_block_is_bptt(name):
    model, ex = EXACT[name]()
    fn = _fn(model, ex, T)
    x, y = _batches(1)[0]
    torch.manual_seed(5)
    _, _, want = PlainBPTT(fn, SGD, total_steps=1).loss_grads(fn.initial_weights(), x, y)
    ttl = make_user_trainer("ttl", fn, SGD, total_steps=1, epochs=1, window=T, blocks=1)
    torch.manual_seed(5)  # after building: its local classifiers' shapes come from one run, dropout and all
    _, _, got, _ = ttl.grads(x, y)
    for ws, wg in zip(want, got, strict=True):
        for k, g in ws.items():
            torch.testing.assert_close(wg[k], g, rtol=1e-4, atol=1e-6)


def test_checkpointing_keeps_less_than_one_graph_on_a_user_model():
    fn = _fn(*method_nets.st_seq_digits(), timesteps=16)
    x, y = _batches(1, t=16)[0]
    kept = {e: kept_peak(make_user_trainer("checkpoint", fn, SGD, total_steps=1, epochs=1, checkpoint_every=e), x, y)
            for e in (4, 16)}
    assert 0 < kept[4] < kept[16]


class _Chain(nn.Module):
    """Single-step, steppable, but its own forward: no blocks of layers can be cut out of it."""

    def __init__(self) -> None:
        super().__init__()
        import snntorch as snn

        self.fc1, self.lif1 = nn.Linear(64, 24), snn.Leaky(beta=0.8, threshold=0.5, init_hidden=True)
        self.fc2 = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.lif1(self.fc1(x)))


class _Resets(nn.Module):
    """snnTorch tutorial 7 style: loops over x[t] and resets its neurons at the start of every forward."""

    def __init__(self) -> None:
        super().__init__()
        self.net = method_nets.st_seq_digits()[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from snntorch import utils

        utils.reset(self.net)
        return torch.stack([self.net(x[t])[0] for t in range(x.shape[0])])


def test_refusals_name_why():
    loop = _fn(*method_nets.loop_in_forward_digits())
    with pytest.raises(MethodError, match="own time loop inside forward"):
        make_user_trainer("checkpoint", loop, SGD, total_steps=1, epochs=1)
    with pytest.raises(MethodError, match="does not reproduce its own forward"):
        make_user_trainer("skipper", _fn(_Resets(), torch.zeros(T, 1, 64)), SGD, total_steps=1, epochs=1)
    chain = _fn(_Chain(), torch.zeros(1, 64), T)
    for method in ("ttl", "bloctrain"):
        with pytest.raises(MethodError, match="needs an nn.Sequential"):
            make_user_trainer(method, chain, SGD, total_steps=1, epochs=2, blocks=2)
    make_user_trainer("ttl", chain, SGD, total_steps=1, epochs=1, blocks=1)  # truncation in time alone: fine


@pytest.mark.parametrize("method", ["checkpoint", "skipper", "ttl", "bloctrain"])
def test_cli_trains_a_user_module_with_each_method(tmp_path, capsys, method):
    out = tmp_path / method
    rc = main(["train", "--network", f"{NETS}:sj_multi_digits", "--method", method, "--dataset", "digits",
               "--epochs", "2", "--limit-train", "96", "--batch", "16", "--no-progress", "--json", "--out",
               str(out)])
    res = json.loads(capsys.readouterr().out)
    assert rc == 0 and res["trainer"] == method and res["layout"] == "multi-step"
    model, _ = method_nets.sj_multi_digits()
    before = [p.clone() for p in model.parameters()]
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))



@pytest.mark.parametrize("method", ["skipper", "bloctrain"])
def test_resume_of_a_method_on_a_user_module_is_bit_identical(tmp_path, method):
    """Weights, optimiser and local-classifier state and BatchNorm statistics survive a resume (SpikingJelly
    multi-step Sequential with BatchNorm; BlocTrain's second block starts in the resumed epoch)."""
    from test_train_user import _Interrupted, _StopAfter

    from spikepipe.train.runner import TrainConfig
    from spikepipe.training import run

    common = dict(network=f"{NETS}:sj_multi_digits", dataset="digits", method=method, epochs=2, batch=16,
                  limit_train=64, limit_val=32, limit_test=32)
    whole = run(TrainConfig(**common, out=str(tmp_path / "whole")))
    with pytest.raises(_Interrupted):
        run(TrainConfig(**common, out=str(tmp_path / "cut")), progress=_StopAfter(1))
    resumed = run(TrainConfig(**common, out=str(tmp_path / "cut"), resume=True))
    assert resumed["test_loss"] == whole["test_loss"]
    a = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
