"""Real-valued multiplies vs spike-driven accumulates of what each trainer executes, against an oracle that
inspects the operands of every GEMM and convolution torch runs (binary operand: values in {0, 1})."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from spikepipe import zoo
from spikepipe.methods import make_trainer
from spikepipe.methods.counts import executed_counts
from spikepipe.methods.registry import MethodOptions
from spikepipe.train import OptimConfig
from spikepipe.workload import load_workload

aten = torch.ops.aten


def _binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


class SplitCounter(TorchDispatchMode):
    """MACs of every mm/addmm/convolution (forward and backward) torch executes, split by a binary operand."""

    def __init__(self) -> None:
        super().__init__()
        self.multiplies = 0
        self.accumulates = 0

    def _add(self, macs: int, binary: bool) -> None:
        if binary:
            self.accumulates += macs
        else:
            self.multiplies += macs

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func.overloadpacket
        if packet in (aten.mm, aten.addmm):
            a, b = (args[0], args[1]) if packet is aten.mm else (args[1], args[2])
            self._add(a.shape[0] * a.shape[1] * b.shape[1], _binary(a) or _binary(b))
        elif packet is aten.convolution:
            x, w = args[0], args[1]
            self._add(out.numel() * w[0].numel(), _binary(x))
        elif packet is aten.convolution_backward:
            grad, x, w = args[0], args[1], args[2]
            mask = args[-1]
            macs = grad.numel() * w[0].numel()  # each of the two gradients costs one forward
            if mask[0]:
                self._add(macs, False)  # grad_input = grad . W: dense
            if mask[1]:
                self._add(macs, _binary(x))  # grad_weight = grad . X: accumulates when X is spikes
        return out


def _measure(opts: MethodOptions, network: str, t: int, b: int) -> tuple[int, int, int]:
    net, example = zoo.build(network, timesteps=t, batch=b, seed=0)
    x = torch.rand(t, b, *example.shape[2:], generator=torch.Generator().manual_seed(3))  # analog input
    y = torch.arange(b) % 10
    tr = make_trainer(opts, net, example, OptimConfig(), total_steps=2, epochs=1)
    with FlopCounterMode(display=False) as fc, SplitCounter() as sc:
        tr.run_epoch(lambda n: (x, y), 1)
    return sc.multiplies, sc.accumulates, fc.get_total_flops() // 2


CASES = [("bptt", {}, 4), ("checkpoint", {}, 5), ("skipper", {"checkpoint_every": 3, "skip": 1}, 7),
         ("skipper", {}, 8), ("ttl", {"window": 2}, 5), ("ttl", {"window": 1}, 3), ("ttl", {"window": 3}, 7)]
DEEP = [("ttl", {"window": 1, "blocks": 3}, 3), ("ttl", {"window": 4, "blocks": 4}, 4),
        ("ttl", {"window": 2, "blocks": (1, 3)}, 5)]


@pytest.mark.parametrize("network,method,params,t", [(n, *c) for n in ("snn-mlp", "snn-cnn") for c in CASES]
                         + [("snn-cnn", *c) for c in DEEP])
def test_multiplies_and_accumulates_equal_what_the_trainer_executes(network, method, params, t):
    opts = MethodOptions.of(method, **params)
    mul, acc, total = _measure(opts, network, t, 3)
    assert mul + acc == total  # the oracle sees every GEMM torch's own counter sees
    got = executed_counts(load_workload(network, batch=3, timesteps=t), opts)
    assert (got.macs, got.acs) == (mul, acc)


def test_spiking_layers_do_mostly_accumulates():
    got = executed_counts(load_workload("snn-cnn", batch=4, timesteps=4), MethodOptions())
    assert got.acs > got.macs > 0  # forward and weight gradient of every layer after the first
