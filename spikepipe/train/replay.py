"""The B-time recomputation of the exact trainer without weight stashing (spikepipe.train.pipelined): record what
enters every layer in the F-time run, and replay it in the B-time run as value = F-time, gradient = through the
B-time run (a straight-through swap)."""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch
from torch import nn
from torch.overrides import TorchFunctionMode


def _st(now: object, then: object) -> object:
    """Value `then` (recorded at F time), gradient through `now` (the B-time run): the straight-through swap."""
    if not isinstance(now, torch.Tensor) or not isinstance(then, torch.Tensor):
        return now
    return now + (then - now).detach() if now.requires_grad else then


# the ops by which a layer adds another layer's output inside itself (a residual add not at a module boundary)
_ADDS = {torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__}
_ADDS_IN_PLACE = {torch.Tensor.add_, torch.Tensor.__iadd__}


class EntryHooks:
    """Forward pre-hooks on every layer's entry module: record its tensor inputs (F-time run) or replace them by
    value = the recorded input, gradient = through the current run (B-time run).

    With `adds` (a model whose layers add another layer's output inside themselves, LayerMap.inner_adds) the
    same is done to those added tensors: every tensor an op produces is tagged with the layer running then (the
    last entry module called), and an add in layer l of a tensor tagged with another layer is recorded (F time)
    or swapped (B time) like an entry input, in call order. So the B-time recomputation of a layer starts from
    all of its F-time inputs, the residual included, as a block's does in the block-wise trainer."""

    def __init__(self, model: nn.Module, entries: Sequence[str | None], record: list[list] | None,
                 replay: list[list] | None, adds: list[list] | None = None,
                 synaptic: dict[int, int] | None = None, weights: set[int] | None = None) -> None:
        self.modules = dict(model.named_modules())
        self.entries, self.record, self.replay = entries, record, replay
        self.calls = [0] * len(entries)
        self.handles: list = []
        self.adds, self.add_calls = adds, [0] * len(entries)
        self.current = -1  # the layer whose entry module ran last (-1: before the first)
        self.tags: dict[int, tuple[object, int]] = {}  # id(tensor) -> (weak reference, layer that produced it)
        self.mode: _AddMode | None = None
        # a layer whose synaptic op is a functional call has no entry module: the op is found by its weight
        # (id of the tensor the run uses -> layer), and its operands other than weights are its entry inputs
        self.synaptic, self.weights = synaptic or {}, weights or set()

    def __enter__(self) -> EntryHooks:
        for layer, path in enumerate(self.entries):
            if path is not None:
                self.handles.append(self.modules[path].register_forward_pre_hook(
                    lambda _m, a, k, layer=layer: self._hook(layer, a, k), with_kwargs=True))
        if self.adds is not None or self.synaptic:
            self.mode = _AddMode(self)
            self.mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.mode is not None:
            self.mode.__exit__(*exc)
        for h in self.handles:
            h.remove()

    def _hook(self, layer: int, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        self.current = layer
        if self.record is not None:
            self.record[layer].append((args, kwargs))
            return None
        assert self.replay is not None
        i = self.calls[layer]
        self.calls[layer] += 1
        rec_args, rec_kwargs = self.replay[layer][i]
        with _untracked(self.mode):
            return (tuple(_st(a, r) for a, r in zip(args, rec_args, strict=True)),
                    {k: _st(v, rec_kwargs.get(k)) for k, v in kwargs.items()})

    def functional_op(self, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        """An op that uses a functional layer's synaptic weight: that layer runs now; record or swap its inputs
        (every tensor operand that is no weight) as an entry module's."""
        operands = (*args, *kwargs.values())
        layer = next((self.synaptic[id(a)] for a in operands if id(a) in self.synaptic), None)
        if layer is None or not any(isinstance(a, torch.Tensor) and id(a) not in self.weights for a in operands):
            return args, kwargs  # no input besides weights (w.t(), say): not the op that reads the layer's input

        def no_weights(v: object) -> object:
            return None if id(v) in self.weights else v

        if self.record is not None:
            self.current = layer
            self.record[layer].append((tuple(map(no_weights, args)), {k: no_weights(v) for k, v in kwargs.items()}))
            return args, kwargs
        swapped = self._hook(layer, args, kwargs)
        assert swapped is not None
        return swapped

    # -- adds of another layer's output (only with `adds`)
    def tag(self, out: object) -> None:
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.tags[id(t)] = (weakref.ref(t), self.current)

    def foreign(self, t: object) -> bool:
        """`t` was produced while another layer ran (not a parameter, not the network input: those are untagged)."""
        if not isinstance(t, torch.Tensor):
            return False
        tag = self.tags.get(id(t))
        return tag is not None and tag[0]() is t and tag[1] != self.current

    def swap(self, t: torch.Tensor) -> torch.Tensor:
        assert self.adds is not None
        layer = self.current
        if self.replay is None:
            self.adds[layer].append(t)
            return t
        i = self.add_calls[layer]
        self.add_calls[layer] += 1
        with _untracked(self.mode):
            return _st(t, self.adds[layer][i])  # type: ignore[return-value]


class _AddMode(TorchFunctionMode):
    def __init__(self, hooks: EntryHooks) -> None:
        super().__init__()
        self.hooks, self.off = hooks, False

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        if self.off:
            return func(*args, **kwargs)
        h = self.hooks
        if h.synaptic:
            args, kwargs = h.functional_op(args, kwargs)
        if h.adds is not None and (func in _ADDS or func in _ADDS_IN_PLACE):
            first = 1 if func in _ADDS_IN_PLACE else 0  # an in-place add's target stays its own
            args = tuple(h.swap(a) if i >= first and h.foreign(a) else a for i, a in enumerate(args))
        out = func(*args, **kwargs)
        h.tag(out)
        return out


class _untracked:
    """The swap's own arithmetic is not an op of the model: neither tagged nor swapped."""

    def __init__(self, mode: _AddMode | None) -> None:
        self.mode = mode

    def __enter__(self) -> None:
        if self.mode is not None:
            self.mode.off = True

    def __exit__(self, *exc: object) -> None:
        if self.mode is not None:
            self.mode.off = False
