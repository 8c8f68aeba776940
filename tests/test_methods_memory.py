"""Kept-for-backward memory of every method on a tiny network, against bytes computed by hand.

The network: x [T, B, K] -> Linear(K, N, no bias) -> LIF -> Linear(N, C). What each op needs for its backward
(float32, 4 bytes; parameters are not counted):
  first linear      its input x at every kept step               a = B*K*4 per step (a slice of x: its own bytes)
  LIF               the surrogate's input u - threshold per step   u = B*N*4 per step
  second linear     its input, the spikes, per step               u per step
  loss              log-softmax output, int64 target, total weight L = B*C*4 + B*8 + 4
State held outside autograd: checkpoints (u each), the gradient handed to the earlier segment (u), the loss
gradient g_out (o = B*C*4), TTL's carried membrane (u).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from spikepipe import zoo
from spikepipe.methods.bloctrain import BlocTrain
from spikepipe.methods.checkpoint import CheckpointedBPTT, Skipper
from spikepipe.methods.memory import KeptBytes, kept_peak
from spikepipe.methods.ttl import TTL
from spikepipe.train import OptimConfig, PlainBPTT

K, N, C = 5, 7, 4


def _tiny(t: int) -> nn.Module:
    torch.manual_seed(0)
    blocks = [zoo.SpikingBlock(nn.Linear(K, N, bias=False), neuron=zoo._lif()),
              zoo.SpikingBlock(nn.Linear(N, C), neuron=None)]
    return zoo.SNNNet("tiny", blocks, [-1, 0], [None, None], t, (K,), C)


def _data(t: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = (torch.rand(t, b, K, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    return x, torch.arange(b) % C


def _units(b: int) -> tuple[int, int, int, int]:
    return b * K * 4, b * N * 4, b * C * 4 + b * 8 + 4, b * C * 4


@pytest.mark.parametrize("t,b", [(1, 2), (4, 3), (7, 5)])
def test_bptt_keeps_every_step(t, b):
    a, u, loss, _ = _units(b)
    x, y = _data(t, b)
    expect = t * (a + 2 * u) + loss
    assert kept_peak(PlainBPTT(_tiny(t), OptimConfig(), total_steps=2), x, y) == expect
    stepped = CheckpointedBPTT(_tiny(t), OptimConfig(), total_steps=2, checkpoint_every=None)
    assert kept_peak(stepped, x, y) == expect


@pytest.mark.parametrize("t,b,every,skip", [(6, 3, 2, 0), (6, 3, 3, 0), (7, 2, 3, 0), (8, 4, 4, 1), (8, 4, 4, 2),
                                            (9, 3, 4, 3), (5, 2, 1, 0), (6, 3, 6, 0)])
def test_checkpoint_and_skipper_count_checkpoints_and_one_segment(t, b, every, skip):
    a, u, _, o = _units(b)
    x, y = _data(t, b)
    starts = list(range(0, t, every))
    n = len(starts)
    best = 0
    for k, t0 in enumerate(starts):
        t1 = min(t, t0 + every)
        kept = t1 - skip - t0 if t1 - t0 > skip else 1
        held = k * u + (u if skip == 0 and k < n - 1 else 0)  # checkpoints 1..k, the handed-on gradient
        best = max(best, o + held + kept * (a + 2 * u))
    cls = Skipper if skip else CheckpointedBPTT
    tr = cls(_tiny(t), OptimConfig(), total_steps=2, checkpoint_every=every, skip=skip)
    assert kept_peak(tr, x, y) == best


@pytest.mark.parametrize("t,b,window", [(6, 3, 2), (5, 2, 2), (6, 4, 3), (4, 3, 1), (4, 3, 4)])
def test_ttl_keeps_one_block_over_one_window(t, b, window):
    a, u, loss, _ = _units(b)
    x, y = _data(t, b)
    best = 0
    for t0 in range(0, t, window):
        w = min(window, t - t0)
        carried = u if t0 else 0  # the membrane state handed over from the previous window
        block0 = w * (a + u) + u + loss + carried  # + the local classifier's input (time mean, B x N)
        block1 = w * u + loss + carried + u  # + block 0's new state, held until the window ends
        best = max(best, block0, block1)
    tr = TTL(_tiny(t), OptimConfig(), total_steps=2, example=x, window=window, blocks=2)
    assert kept_peak(tr, x, y) == best


@pytest.mark.parametrize("t,b", [(4, 6), (6, 8)])
def test_bloctrain_phases_keep_only_their_block(t, b):
    a, u, loss, _ = _units(b)
    x, y = _data(t, b)
    tr = BlocTrain(_tiny(t), OptimConfig(), total_steps=4, example=x, epochs=2, blocks=2)
    assert kept_peak(tr, x, y) == t * (a + u) + u + loss  # phase 0: block 0 and its classifier's input
    tr.epoch, tr.class_sets = 1, [list(range(C)), [0, 1]]  # phase 1 on the hard classes {0, 1}
    hard = int(torch.isin(y, torch.tensor([0, 1])).sum())
    _, uh, loss_h, _ = _units(hard)
    detector = u + 2 * b * 4  # detector head input (B x N) and BCE's input and target
    assert kept_peak(tr, x, y) == max(t * uh + loss_h, detector)  # frozen block 0 keeps nothing


def test_slices_are_charged_their_own_bytes_and_shared_storage_once():
    base = torch.zeros(10, 4)
    meter = KeptBytes()
    tok = meter.hold([base[2:5]])
    assert meter.current == 3 * 4 * 4
    tok2 = meter.hold([base[4:8], base[2:5]])  # overlap of one row, and the same slice again
    assert meter.current == 6 * 4 * 4
    meter.drop(tok)
    assert meter.current == 6 * 4 * 4  # base[2:5] is still held by tok2
    meter.drop(tok2)
    assert meter.current == 0 and meter.peak == 6 * 4 * 4
    meter.hold([base.t()])  # a transposed view is one dense block: the whole tensor
    assert meter.current == base.numel() * 4


def test_parameters_are_not_counted_but_checkpointed_state_leaves_are():
    w = torch.randn(3, 3, requires_grad=True)
    meter = KeptBytes(exclude=[w])
    s = torch.randn(2, 3).requires_grad_()  # a checkpointed state coming back as a leaf that requires grad
    with meter:
        out = (s @ w).sum()
    assert meter.current == s.numel() * 4
    del out
    assert meter.current == 0


def test_checkpointing_keeps_less_than_bptt_by_the_expected_factor():
    t, b = 16, 4
    a, u, loss, o = _units(b)
    x, y = _data(t, b)
    every = math.ceil(math.sqrt(t))
    bptt = kept_peak(PlainBPTT(_tiny(t), OptimConfig(), total_steps=2), x, y)
    ck = kept_peak(CheckpointedBPTT(_tiny(t), OptimConfig(), total_steps=2, checkpoint_every=every), x, y)
    assert bptt == t * (a + 2 * u) + loss
    assert ck == o + (t // every - 1) * u + every * (a + 2 * u)


def test_an_expanded_view_is_charged_the_bytes_it_touches():
    meter = KeptBytes()
    meter.hold([torch.zeros(()).expand(100, 50)])
    assert meter.current == 4
    meter.hold([torch.zeros(3, 1).expand(3, 7)])
    assert meter.current == 4 + 3 * 4


@pytest.mark.parametrize("cls,kw", [(PlainBPTT, {}), (CheckpointedBPTT, {"checkpoint_every": 2}),
                                    (Skipper, {"checkpoint_every": 3, "skip": 1})])
def test_spike_packing_is_lossless_and_stores_spikes_as_bits(cls, kw):
    from spikepipe.methods.memory import spike_packing

    t, b = 6, 3
    a, u, loss, o = _units(b)
    x, y = _data(t, b)  # the input is binary too: it is packed as well
    plain = cls(_tiny(t), OptimConfig(), total_steps=2, **kw).grads(x, y)[2]
    with spike_packing():
        packed = cls(_tiny(t), OptimConfig(), total_steps=2, **kw).grads(x, y)[2]
    for g0, g1 in zip(plain, packed, strict=True):
        for k in g0:
            assert torch.equal(g0[k], g1[k])
    full = kept_peak(cls(_tiny(t), OptimConfig(), total_steps=2, **kw), x, y)
    small = kept_peak(cls(_tiny(t), OptimConfig(), total_steps=2, **kw), x, y, pack_spikes=True)
    if cls is PlainBPTT:  # the saved input [T*B, K] and spikes [T*B, N] shrink to one bit per element
        assert full - small == t * (a + u) - -(-t * b * K // 8) - -(-t * b * N // 8)
    assert small < full
