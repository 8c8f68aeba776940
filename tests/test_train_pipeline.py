"""The pipelined trainer against independent oracles: plain autograd + torch.optim, hand-computed delayed SGD,
and the schedule's own gradient delays counted as weight versions."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from train_nets import ScalarChain, TinySNN

from spikepipe.ir import Schedule, Slot, chain_graph, slot_lag_delays
from spikepipe.train import netfn
from spikepipe.train.bptt import PlainBPTT
from spikepipe.train.optim import OptimConfig
from spikepipe.train.pipelined import ExactPipeline, GradientQueue, TrainerError

T, B, STEPS = 4, 6, 5


def batches(n: int, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(T, B, 8, generator=g) * 1.5, torch.randint(0, 4, (B,), generator=g)) for _ in range(n)]


def periodic(slots: list[Slot], period: int, layers: int, name: str = "hand") -> Schedule:
    return Schedule(name, "periodic", max(s.processor for s in slots) + 1, period, tuple(slots), (),
                    slot_lag_delays(slots, layers, period))


def sequential_lag0(layers: int) -> Schedule:
    """Everything in one period on one processor: F0..F_L-1, then B_l W_l descending; all lags zero."""
    order = [f"F{i}" for i in range(layers)] + [x for i in reversed(range(layers)) for x in (f"B{i}", f"W{i}")]
    return periodic([Slot(t, 0, 10 * k, 10) for k, t in enumerate(order)], 10 * len(order), layers)


def layerpipe_hand(layers: int) -> Schedule:
    """Layer l on processor l: F at 0, B at 1, W at 2 (period 3); lags F: l, B and W: 2(L-1) - l.
    One hop per period each way, so delay(l) = 2 (L-1-l) (LayerPipe)."""
    slots = []
    for i in range(layers):
        back = 2 * (layers - 1) - i
        slots += [Slot(f"F{i}", i, 0, 1, lag=i), Slot(f"B{i}", i, 1, 1, lag=back), Slot(f"W{i}", i, 2, 1, lag=back)]
    return periodic(slots, 3, layers, "layerpipe-hand")


def test_functional_forward_equals_module_forward():
    net = TinySNN()
    x = batches(1)[0][0]
    torch.testing.assert_close(netfn.forward(net, netfn.initial_weights(net), x), net(x), rtol=0, atol=0)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_plain_bptt_equals_torch_optim(opt):
    cfg = OptimConfig(name=opt, lr=0.05 if opt == "sgd" else 0.01, schedule="constant", weight_decay=1e-3)
    data = batches(STEPS)
    ref = TinySNN()
    torch_opt = (torch.optim.SGD(ref.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=1e-3)
                 if opt == "sgd" else torch.optim.Adam(ref.parameters(), lr=cfg.lr, weight_decay=1e-3))
    for x, y in data:
        torch_opt.zero_grad()
        torch.nn.functional.cross_entropy(ref(x), y).backward()
        torch_opt.step()
    trainer = PlainBPTT(TinySNN(), cfg, total_steps=STEPS)
    trainer.run_epoch(lambda n: data[n], STEPS)
    for block, w in zip(ref.blocks, trainer.weights, strict=True):
        for k, p in block.named_parameters():
            torch.testing.assert_close(w[k], p.detach(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("opt,schedule", [("sgd", "cosine"), ("adam", "step"), ("adam", "cosine")])
@pytest.mark.parametrize("stash", [True, False])
@pytest.mark.parametrize("compensation", ["none", "spectrain", "pipemare"])
def test_zero_lag_pipeline_equals_plain_bptt(opt, schedule, stash, compensation):
    cfg = OptimConfig(name=opt, lr=0.05, schedule=schedule, step_every=2)
    data = batches(STEPS)
    ref = PlainBPTT(TinySNN(), cfg, total_steps=STEPS)
    s_ref = ref.run_epoch(lambda n: data[n], STEPS)
    pipe = ExactPipeline(TinySNN(), cfg, sequential_lag0(3), total_steps=STEPS, stash=stash,
                         compensation=compensation)
    s_pipe = pipe.run_epoch(lambda n: data[n], STEPS)
    assert pipe.measured_delays == (0, 0, 0)
    assert s_pipe.losses == pytest.approx(s_ref.losses, rel=1e-5, abs=1e-6)
    for a, b in zip(ref.weights, pipe.weights, strict=True):
        for wa, wb in zip(a.values(), b.values(), strict=True):  # block-relative vs model paths: same order
            torch.testing.assert_close(wa, wb, rtol=1e-5, atol=1e-6)


def test_zero_delay_gradient_queue_equals_plain_bptt():
    cfg = OptimConfig(name="sgd", lr=0.05)
    data = batches(STEPS)
    ref = PlainBPTT(TinySNN(), cfg, total_steps=STEPS)
    ref.run_epoch(lambda n: data[n], STEPS)
    q = GradientQueue(TinySNN(), cfg, (0, 0, 0), total_steps=STEPS)
    q.run_epoch(lambda n: data[n], STEPS)
    for a, b in zip(ref.weights, q.weights, strict=True):
        for wa, wb in zip(a.values(), b.values(), strict=True):
            torch.testing.assert_close(wa, wb, rtol=0, atol=0)


def _oracle(n_steps: int, xs: list[float], ys: list[int], lr: float, stash: bool) -> list[list[float]]:
    """Delayed SGD on ScalarChain by hand, versions derived by hand from layerpipe_hand(3) (period 3):
    F_l(n) reads version max(0, n - d_l) with d = (4, 2, 0); W_l(m) ends at (m + r_W + 1) * 3, B_l(n) reads at
    (n + r_W) * 3 + 1, so B sees version n (every earlier update). Returns [w0, w1, w2a, w2b] after each step."""
    d = (4, 2, 0)
    w0, w1, w2 = [0.7], [-0.4], [(0.3, -0.6)]
    hist = []
    for n in range(n_steps):
        f0, f1, f2 = w0[max(0, n - d[0])], w1[max(0, n - d[1])], w2[max(0, n - d[2])]
        b1, b2 = (f1, f2) if stash else (w1[n], w2[n])
        x, y = xs[n], ys[n]
        h0 = f0 * x
        h1 = f1 * h0
        z = (f2[0] * h1, f2[1] * h1)
        m = max(z)
        e = (math.exp(z[0] - m), math.exp(z[1] - m))
        p = (e[0] / sum(e), e[1] / sum(e))
        dz = (p[0] - (y == 0), p[1] - (y == 1))
        g2 = (dz[0] * h1, dz[1] * h1)
        gh1 = b2[0] * dz[0] + b2[1] * dz[1]
        g1 = gh1 * h0
        gh0 = b1 * gh1
        g0 = gh0 * x
        # updates of minibatch n land in the order W2, W1, W0 (all within the epoch, drained at the end)
        w2.append((w2[n][0] - lr * g2[0], w2[n][1] - lr * g2[1]))
        w1.append(w1[n] - lr * g1)
        w0.append(w0[n] - lr * g0)
        hist.append([w0[-1], w1[-1], *w2[-1]])
    return hist


@pytest.mark.parametrize("stash", [True, False])
def test_known_delay_pattern_gives_hand_computed_weights(stash):
    n = 9
    xs = [0.5 + 0.25 * i for i in range(n)]
    ys = [i % 2 for i in range(n)]
    lr = 0.3
    sched = layerpipe_hand(3)
    assert sched.gradient_delays == (4, 2, 0)
    net = ScalarChain(0.7, -0.4, (0.3, -0.6))
    pipe = ExactPipeline(net, OptimConfig(name="sgd", lr=lr, momentum=0.0, schedule="constant"), sched,
                         total_steps=n, stash=stash)
    data = [(torch.tensor([[[xs[i]]]], dtype=torch.float64), torch.tensor([ys[i]])) for i in range(n)]
    pipe.run_epoch(lambda i: data[i], n)
    want = _oracle(n, xs, ys, lr, stash)[-1]
    got = [float(pipe.weights[0]["blocks.0.weight"]), float(pipe.weights[1]["blocks.1.weight"]),
           *pipe.weights[2]["blocks.2.weight"].flatten().tolist()]
    assert got == pytest.approx(want, rel=1e-12, abs=1e-14)
    # stashing matters here (layer 1 has delay 2), so the two oracles differ: the test can tell them apart
    other = _oracle(n, xs, ys, lr, not stash)[-1]
    assert max(abs(a - b) for a, b in zip(want, other, strict=True)) > 1e-6
    assert pipe.observed == [{0: 1, 1: 1, 2: 1, 3: 1, 4: n - 4}, {0: 1, 1: 1, 2: n - 2}, {0: n}]


@functools.cache  # a Schedule is immutable and the default solve deterministic: each one is solved once per run
def _generated(name: str, processors: int, layers: int) -> Schedule:
    schedules = pytest.importorskip("schedules")
    from hwmodels.config import load_cluster

    g = chain_graph([(3000 + 500 * i, 2500, 2000 + 300 * i) for i in range(layers)], edge_bytes=256, batch=B)
    return schedules.generate(name, g, load_cluster(None, processors=processors))


@pytest.mark.parametrize("name,processors", [("layerpipe", 3), ("pipedream", 3), ("spikepipe", 3),
                                             ("layerpipe", 2), ("spikepipe", 2)])
@pytest.mark.parametrize("stash", [True, False])
def test_counted_versions_equal_schedule_delays(name, processors, stash):
    sched = _generated(name, processors, 3)
    n = 3 * sched.max_lag + 4
    data = batches(n)
    pipe = ExactPipeline(TinySNN(), OptimConfig(name="sgd", lr=0.05), sched, total_steps=n, stash=stash)
    pipe.run_epoch(lambda i: data[i], n)
    assert pipe.measured_delays == sched.gradient_delays
    for layer, d in enumerate(sched.gradient_delays):  # warm-up minibatch k sees delay min(k, d)
        assert pipe.observed[layer] == {k: (1 if k < d else n - d) for k in range(d + 1)}
    pipe.check_delays()


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_gradient_queue_equals_exact_stashing_but_not_no_stashing(opt):
    """With stashing, F_l(n) and B_l(n) use version n - d_l of layer l, which is exactly what the gradient queue's
    'current weights' are at step n; without stashing B sees newer weights, which the queue cannot express."""
    sched = layerpipe_hand(3)
    data = batches(12)
    cfg = OptimConfig(name=opt, lr=0.02)
    ref = PlainBPTT(TinySNN(), cfg, total_steps=12)
    ref.run_epoch(lambda i: data[i], 12)
    runs = {}
    for mode in ("stash", "no-stash", "queue"):
        t = (GradientQueue(TinySNN(), cfg, sched.gradient_delays, total_steps=12) if mode == "queue"
             else ExactPipeline(TinySNN(), cfg, sched, total_steps=12, stash=mode == "stash"))
        t.run_epoch(lambda i: data[i], 12)
        runs[mode] = t.weights
        assert all(torch.isfinite(w).all() for ws in t.weights for w in ws.values())
        assert not torch.equal(next(iter(t.weights[0].values())), ref.weights[0]["fc.weight"])
    for a, b in zip(runs["stash"], runs["queue"], strict=True):
        for wa, wb in zip(a.values(), b.values(), strict=True):
            torch.testing.assert_close(wa, wb, rtol=1e-6, atol=1e-7)
    assert not torch.allclose(runs["no-stash"][0]["blocks.0.fc.weight"], runs["queue"][0]["fc.weight"])


def test_schedule_for_other_network_is_rejected():
    with pytest.raises(TrainerError, match="no F, B or W slot for layer"):
        ExactPipeline(TinySNN(), OptimConfig(), layerpipe_hand(2), total_steps=1)


def test_flush_schedule_is_rejected_by_exact_mode():
    s = sequential_lag0(3)
    flush = Schedule("gpipe", "flush", 1, s.period_cycles, s.slots, (), s.gradient_delays)
    with pytest.raises(TrainerError, match="flush"):
        ExactPipeline(TinySNN(), OptimConfig(), flush, total_steps=1)
