"""Memory-saving training methods: exact gradients where they must be exact, and every mode trains."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from spikepipe import zoo
from spikepipe.methods.bloctrain import BlocTrain
from spikepipe.methods.checkpoint import CheckpointedBPTT, Skipper, checkpointed_grads
from spikepipe.methods.local import partition
from spikepipe.methods.stepped import MethodError, logits, run_chunk
from spikepipe.methods.ttl import TTL
from spikepipe.train import OptimConfig, PlainBPTT
from spikepipe.train.data import batch_order, load_digits
from spikepipe.train.encoders import encode


def _net(name: str, t: int = 5, b: int = 3, seed: int = 0):
    net, x = zoo.build(name, timesteps=t, batch=b, seed=seed)
    y = torch.randint(0, 10, (b,), generator=torch.Generator().manual_seed(seed))
    return net, x, y


def _max_err(a: list[dict], b: list[dict]) -> float:
    return max(float((ga[k] - gb[k]).abs().max()) for ga, gb in zip(a, b, strict=True) for k in ga)


def test_stepped_forward_equals_zoo_forward_without_norm():
    net, x, _ = _net("snn-mlp", t=6)
    tr = PlainBPTT(net, OptimConfig(), total_steps=1)
    with torch.no_grad():
        ref = net(x)
        for chunk in (1, 2, 4, 6):
            assert torch.allclose(logits(net, tr.weights, x, chunk), ref, atol=1e-6)


def test_stepped_forward_equals_zoo_forward_at_one_timestep_with_batchnorm():
    # per-timestep batch statistics are the block's own statistics when T = 1 (the independent oracle)
    net, x, _ = _net("snn-cnn", t=1, b=4)
    tr = PlainBPTT(net, OptimConfig(), total_steps=1)
    with torch.no_grad():
        assert torch.allclose(logits(net, tr.weights, x), net(x), atol=1e-5)


@pytest.mark.parametrize("every", [1, 2, 3, 5, 8])
def test_checkpointed_gradients_equal_plain_bptt(every):
    net, x, y = _net("snn-mlp")
    tr = PlainBPTT(net, OptimConfig(), total_steps=1)
    loss, out, ref = tr.grads(x, y)  # H5's trainer through the zoo forward: an independent oracle
    l2, o2, got = checkpointed_grads(net, tr.weights, x, y, every)
    assert torch.allclose(l2, loss, atol=1e-6) and torch.allclose(o2, out, atol=1e-6)
    assert _max_err(got, ref) < 1e-5


@pytest.mark.parametrize("every", [1, 2])
def test_checkpointed_gradients_equal_full_graph_on_a_cnn(every):
    net, x, y = _net("snn-cnn", t=3, b=2)
    w = PlainBPTT(net, OptimConfig(), total_steps=1).weights
    _, _, ref = checkpointed_grads(net, w, x, y, None)
    _, _, got = checkpointed_grads(net, w, x, y, every)
    assert _max_err(got, ref) < 1e-5
    assert max(float(g.abs().max()) for gs in ref for g in gs.values()) > 0  # the check sees real gradients


@pytest.mark.parametrize("every", [2, 3, 5])
def test_skipper_without_skipping_is_checkpointing(every):
    net, x, y = _net("snn-mlp", t=7)
    w = PlainBPTT(net, OptimConfig(), total_steps=1).weights
    _, _, a = checkpointed_grads(net, w, x, y, every, 0)
    _, _, b = checkpointed_grads(net, w, x, y, every, 0)
    assert _max_err(a, b) == 0.0
    _, _, c = checkpointed_grads(net, w, x, y, every, 1)
    assert _max_err(a, c) > 1e-4  # skipping really drops gradient


@pytest.mark.parametrize("every,skip", [(2, 1), (3, 1), (4, 2), (3, 2)])
def test_skipper_equals_truncated_oracle(every, skip):
    """Oracle: one graph over all T in which the state is cut at segment starts and the skipped steps'
    outputs are detached; its gradient is what Skipper must compute."""
    net, x, y = _net("snn-mlp", t=7)
    w = PlainBPTT(net, OptimConfig(), total_steps=1).weights
    leaves = [{k: v.detach().requires_grad_() for k, v in ws.items()} for ws in w]
    state, parts = None, []
    for t0 in range(0, 7, every):
        state = None if state is None else [None if s is None else s.detach() for s in state]
        seg = x[t0:t0 + every]
        n = seg.shape[0]
        kept = n - skip if n > skip else 1
        outs, s_mid = run_chunk(net, leaves, seg[:kept], state)
        parts.append(outs[-1])
        if kept < n:
            outs2, state = run_chunk(net, leaves, seg[kept:], s_mid)
            parts.append(outs2[-1].detach())
        else:
            state = s_mid
    loss = F.cross_entropy(torch.cat(parts).mean(0), y)
    flat = [v for ws in leaves for v in ws.values()]
    gs = iter(torch.autograd.grad(loss, flat, allow_unused=True))
    ref = [{k: next(gs) for k in ws} for ws in leaves]
    _, _, got = checkpointed_grads(net, w, x, y, every, skip)
    assert _max_err(got, ref) < 1e-5


def test_ttl_with_one_window_and_one_block_is_bptt():
    net, x, y = _net("snn-mlp", t=5)
    tr = TTL(net, OptimConfig(), total_steps=1, example=x, window=5, blocks=1)
    _, _, ref = PlainBPTT(net, OptimConfig(), total_steps=1).grads(x, y)
    _, _, got, heads = tr.grads(x, y)
    assert heads == {} and _max_err(got, ref) < 1e-5
    tr2 = TTL(net, OptimConfig(), total_steps=1, example=x, window=2, blocks=2)
    _, out2, got2, heads2 = tr2.grads(x, y)
    assert set(heads2) == {0} and _max_err(got2, ref) > 1e-4
    with torch.no_grad():
        assert torch.allclose(out2, net(x), atol=1e-6)  # TTL's forward is the network's


@pytest.mark.parametrize("n,blocks,expect", [(4, 2, [(0, 2), (2, 4)]), (11, 3, [(0, 4), (4, 7), (7, 11)]),
                                             (4, (1, 3), [(0, 1), (1, 3), (3, 4)]), (2, 1, [(0, 2)])])
def test_partition(n, blocks, expect):
    assert partition(n, blocks) == expect


@pytest.mark.parametrize("n,blocks", [(3, 4), (4, (2, 2)), (4, (0,)), (4, 0)])
def test_partition_rejects(n, blocks):
    with pytest.raises(MethodError):
        partition(n, blocks)


def test_skipper_rejects_bad_skip():
    net, _, _ = _net("snn-mlp")
    with pytest.raises(MethodError):
        Skipper(net, OptimConfig(), total_steps=1, checkpoint_every=2, skip=2)


# ---------------------------------------------------------------- every mode trains on digits

T, BATCH, EPOCHS = 4, 32, 3


@pytest.fixture(scope="module")
def digits():
    return load_digits().reshaped((64,))


def _train(kind: str, data):
    torch.manual_seed(0)
    net, ex = zoo.build("snn-mlp", timesteps=T, batch=BATCH, seed=0)
    steps = len(batch_order(len(data.train), BATCH, seed=0, epoch=0))
    opt = OptimConfig(lr=3e-3)
    total = steps * EPOCHS
    tr = {
        "checkpoint": lambda: CheckpointedBPTT(net, opt, total_steps=total, checkpoint_every=2),
        "skipper": lambda: Skipper(net, opt, total_steps=total, checkpoint_every=2, skip=1),
        "ttl": lambda: TTL(net, opt, total_steps=total, example=ex, window=2, blocks=2),
        "bloctrain": lambda: BlocTrain(net, opt, total_steps=total, example=ex, epochs=EPOCHS + 1, blocks=2),
    }[kind]()
    losses = []
    for ep in range(EPOCHS if kind != "bloctrain" else EPOCHS + 1):
        order = batch_order(len(data.train), BATCH, seed=0, epoch=ep)
        st = tr.run_epoch(lambda n, o=order: (encode("direct", data.train.x[o[n]], T), data.train.y[o[n]]),
                          len(order))
        losses.append(st.losses)
    with torch.no_grad():
        acc = float((tr.logits(encode("direct", data.test.x, T)).argmax(1) == data.test.y).float().mean())
    return tr, losses, acc


@pytest.mark.parametrize("kind", ["checkpoint", "skipper", "ttl", "bloctrain"])
def test_each_mode_trains(kind, digits):
    tr, losses, acc = _train(kind, digits)
    first = sum(losses[0][:5]) / 5
    last = sum(losses[-1][-5:]) / 5 if kind != "bloctrain" else sum(losses[1][-5:]) / 5  # end of phase 0
    assert last < 0.6 * first
    assert acc > 0.5  # chance is 0.1
    if kind == "bloctrain":
        assert len(tr.class_sets) == 2 and set(tr.class_sets[1]) < set(tr.class_sets[0])
        assert len(tr.class_sets[1]) == 5
        assert sum(tr.exit_counts) == len(digits.test)  # each test sample left at exactly one block


@pytest.mark.parametrize("method,cls", [("checkpoint", CheckpointedBPTT), ("skipper", Skipper), ("ttl", TTL),
                                        ("bloctrain", BlocTrain), ("bptt", PlainBPTT)])
def test_make_trainer_for_the_cli(method, cls):
    from spikepipe.methods import make_trainer

    net, x, _ = _net("snn-mlp", t=9)
    tr = make_trainer(method, net, x, OptimConfig(), total_steps=4, epochs=2)
    assert type(tr) is cls
    if method == "skipper":
        assert (tr.every, tr.skip) == (3, 1)  # ceil(sqrt(9)) and half of it


def test_make_trainer_rejects_unknown():
    from spikepipe.methods import make_trainer

    net, x, _ = _net("snn-mlp")
    with pytest.raises(MethodError, match="valid"):
        make_trainer("nope", net, x, OptimConfig(), total_steps=1, epochs=1)


def test_ttl_with_zero_delays_matches_no_delays_and_delays_change_training(digits):
    x = encode("direct", digits.train.x[:64], T)
    y = digits.train.y[:64]

    def run(delays):
        net, ex = zoo.build("snn-mlp", timesteps=T, batch=32, seed=0)
        tr = TTL(net, OptimConfig(lr=3e-3), total_steps=4, example=ex, window=2, blocks=2, delays=delays)
        tr.run_epoch(lambda n: (x[:, 32 * n:32 * n + 32], y[32 * n:32 * n + 32]), 2)
        return tr

    a, b, c = run(None), run((0, 0)), run((1, 0))
    assert all(torch.equal(a.weights[i][k], b.weights[i][k]) for i in range(2) for k in a.weights[i])
    assert not torch.equal(a.weights[0]["synapse.weight"], c.weights[0]["synapse.weight"])
    with pytest.raises(MethodError):
        run((0,))
