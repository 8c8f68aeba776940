"""The training-methods comparison on a SpikingJelly zoo model (experiments/training_methods/sjzoo.py, run.py --zoo):
memopt's trainer gives BPTT's gradients (level 1 is lossless, with and without compression), our methods run a
step on the zoo's ResNet through make_user_trainer and keep less than BPTT, and BlocTrain refuses it by name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("spikingjelly")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments" / "training_methods"))

from measure import MethodSpec, build, make  # noqa: E402

from spikepipe.methods.memory import kept_peak  # noqa: E402
from spikepipe.methods.registry import MethodError  # noqa: E402

NET, T, B = "sj-spiking_resnet18", 3, 4
pytestmark = pytest.mark.slow


def _batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(T, B, 1, 28, 28, generator=g), torch.randint(0, 10, (B,), generator=g)


def _trainer(name: str, blocks: int = 2):
    fn, ex = build(NET, timesteps=T, batch=B)
    return make(MethodSpec(name, blocks=blocks), fn, ex, 10, 1, 1e-3, NET)


@pytest.mark.parametrize("name", ["memopt", "memopt-compress"])
def test_memopt_on_the_zoo_model_gives_bptts_gradients(name):
    x, y = _batch()
    ref, got = _trainer("bptt").grads(x, y), _trainer(name).grads(x, y)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-5, atol=1e-6)  # loss
    for a, b in zip(ref[2], got[2], strict=True):
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-6)


def test_methods_run_a_step_on_the_zoo_model_and_keep_less_than_bptt():
    x, y = _batch()
    bptt = kept_peak(_trainer("bptt"), x, y)
    for name, blocks in (("checkpoint", 2), ("skipper-carry", 2), ("ttl", 1)):
        tr = _trainer(name, blocks)
        w0 = [w.clone() for ws in tr.weights for w in ws.values()]
        tr.run_epoch(lambda n: (x, y), 1)
        assert any(not torch.equal(a, b) for a, b in zip(w0, (w for ws in tr.weights for w in ws.values()), strict=True))
        assert kept_peak(tr, x, y) < bptt, name


def test_bloctrain_and_multi_block_ttl_refuse_the_zoo_resnet():
    for name in ("bloctrain", "ttl"):
        with pytest.raises(MethodError, match="not an nn.Sequential"):
            _trainer(name, blocks=2)
