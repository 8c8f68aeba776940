"""What a training method keeps alive for the backward pass, counted honestly.

Two kinds of tensors are kept between a forward and the backward that needs them:
- tensors autograd saves (`torch.autograd.graph.saved_tensors_hooks` sees every one of them, including the
  checkpointed membrane states that come back as leaves requiring grad);
- state a method holds outside autograd (checkpoints, the gradient handed from one segment to the next, the
  membrane state carried between TTL's windows). Methods report it through a `Probe` (`hold` / `drop`).

`KeptBytes` counts both, each byte once: a tensor is charged the bytes of its own elements, not the storage it
views (a slice of the input is the slice's size), and views that overlap in one storage are charged their union
(the same storage saved twice, or saved and held, is one). Model parameters (and anything else passed as
`exclude`) are not kept *for* the backward, they exist anyway, and are not counted; copies made of them (a
repeated BatchNorm weight) are. A strided view that is not one dense block is charged its own elements and
merged only with identical views (an upper bound where such views overlap; the methods here save none).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class Probe:
    """Where a method reports the tensors it holds outside autograd. The default does nothing."""

    def hold(self, tensors: Iterable[torch.Tensor | None]) -> object:
        return None

    def drop(self, token: object) -> None:
        return None


NO_PROBE = Probe()


def _span(t: torch.Tensor) -> tuple[int, int] | None:
    """[start, end) bytes of the storage that `t` covers, or None when it is not one dense block."""
    es = t.element_size()
    if t.numel() == 0:
        return (0, 0)
    extent = 1 + sum((s - 1) * abs(st) for s, st in zip(t.shape, t.stride(), strict=True))
    if extent != t.numel() or any(st < 0 for st in t.stride()):
        return None
    start = t.storage_offset() * es
    return (start, start + extent * es)


def _union(intervals: Iterable[tuple[int, int]]) -> int:
    total, end = 0, -1
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


class KeptBytes(Probe):
    """Live and peak bytes of everything kept for the backward (see the module docstring).

    Use as `with meter: ...` (installs the saved-tensor hooks) and give it to the method as its probe."""

    def __init__(self, exclude: Iterable[torch.Tensor] = ()) -> None:
        self.excluded = {t.untyped_storage().data_ptr() for t in exclude}
        self.views: dict[int, dict[Any, list[int]]] = {}  # storage -> view key -> [refcount, bytes]
        self.charged: dict[int, int] = {}  # storage -> bytes charged now
        self.current = 0
        self.peak = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    # -- bookkeeping
    def _key(self, t: torch.Tensor) -> tuple[int, Any, int] | None:
        ptr = t.untyped_storage().data_ptr()
        if ptr in self.excluded or t.device.type == "meta":
            return None
        span = _span(t)
        key = ("span", span) if span is not None else ("view", t.storage_offset(), tuple(t.shape), t.stride())
        return ptr, key, t.numel() * t.element_size()

    def _recharge(self, ptr: int) -> None:
        views = self.views.get(ptr, {})
        spans = [k[1] for k in views if k[0] == "span"]
        own = sum(v[1] for k, v in views.items() if k[0] == "view")
        new = _union(spans) + own
        self.current += new - self.charged.get(ptr, 0)
        if views:
            self.charged[ptr] = new
        else:
            self.charged.pop(ptr, None)
            self.views.pop(ptr, None)
        self.peak = max(self.peak, self.current)

    def _add(self, t: torch.Tensor) -> tuple[int, Any] | None:
        k = self._key(t)
        if k is None:
            return None
        ptr, key, nbytes = k
        ent = self.views.setdefault(ptr, {}).setdefault(key, [0, nbytes])
        ent[0] += 1
        if ent[0] == 1:
            self._recharge(ptr)
        return ptr, key

    def _remove(self, ref: tuple[int, Any] | None) -> None:
        if ref is None:
            return
        ptr, key = ref
        ent = self.views[ptr][key]
        ent[0] -= 1
        if ent[0] == 0:
            del self.views[ptr][key]
            self._recharge(ptr)

    # -- autograd's saved tensors
    def _pack(self, t: torch.Tensor) -> Any:
        return _Saved(self, self._add(t), t)

    @staticmethod
    def _unpack(h: Any) -> torch.Tensor:
        return h.t

    def __enter__(self) -> KeptBytes:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)

    # -- state held outside autograd (Probe)
    def hold(self, tensors: Iterable[torch.Tensor | None]) -> object:
        return [self._add(t) for t in tensors if t is not None]

    def drop(self, token: object) -> None:
        for ref in token or ():  # type: ignore[union-attr]
            self._remove(ref)


class _Saved:
    """A saved tensor's handle: its bytes stay charged until autograd frees the handle."""

    def __init__(self, owner: KeptBytes, ref: tuple[int, Any] | None, t: torch.Tensor) -> None:
        self.owner, self.ref, self.t = owner, ref, t

    def __del__(self) -> None:
        self.owner._remove(self.ref)


def trainer_parameters(trainer: Any) -> list[torch.Tensor]:
    """Every parameter tensor a trainer owns (layer weights, buffers, local classifiers, detectors): not counted."""
    out = [w for ws in trainer.weights for w in ws.values()] + list(trainer.net.buffers())
    for name in ("heads", "detectors"):
        heads = getattr(trainer, name, None)
        if heads is not None:
            out += [v for p in heads.params.values() for v in p.values()]
    return out


def kept_peak(trainer: Any, x: torch.Tensor, y: torch.Tensor) -> int:
    """Peak bytes kept for the backward during one training step of `trainer` on (x, y) (BlocTrain: one step of
    its current phase). The trainer's own state held outside autograd is seen through its `probe`."""
    meter = KeptBytes(exclude=trainer_parameters(trainer))
    had = hasattr(trainer, "probe")
    if had:
        trainer.probe = meter
    try:
        with meter:
            if hasattr(trainer, "train_step"):
                trainer.train_step(x, y)
            else:
                trainer.run_epoch(lambda n: (x, y), 1)
    finally:
        if had:
            trainer.probe = NO_PROBE
    return meter.peak
