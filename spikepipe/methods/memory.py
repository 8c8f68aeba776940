"""What a training method keeps alive for the backward pass, counted honestly.

Two kinds of tensors are kept between a forward and the backward that needs them:
- tensors autograd saves (`torch.autograd.graph.saved_tensors_hooks` sees every one of them, including the
  checkpointed membrane states that come back as leaves requiring grad);
- state a method holds outside autograd (checkpoints, the gradient handed from one segment to the next, the
  membrane state carried between TTL's windows). Methods report it through a `Probe` (`hold` / `drop`).

`KeptBytes` counts both, each byte once: a tensor is charged the bytes of its own elements, not the storage it
views (a slice of the input is the slice's size), and views that overlap in one storage are charged their union
(the same storage saved twice, or saved and held, is one); an expanded view is charged the bytes it really
touches, not its broadcast size. Model parameters (and anything else passed as
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
    dims = [(s, st) for s, st in zip(t.shape, t.stride(), strict=True) if st != 0]  # broadcast dims: no bytes
    extent = 1 + sum((s - 1) * abs(st) for s, st in dims)
    if extent != _distinct(t) or any(st < 0 for _, st in dims):
        return None
    start = t.storage_offset() * es
    return (start, start + extent * es)


def _distinct(t: torch.Tensor) -> int:
    """Elements of storage a view touches: an expanded (stride-0) dimension repeats the same bytes."""
    n = 1
    for size, stride in zip(t.shape, t.stride(), strict=True):
        if stride != 0:
            n *= size
    return n


def _union(intervals: Iterable[tuple[int, int]]) -> int:
    total, end = 0, -1
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


_BIT_WEIGHTS = (128, 64, 32, 16, 8, 4, 2, 1)


class PackedSpikes:
    """A binary float tensor stored as 1 bit per element (lossless: unpack gives the same values)."""

    def __init__(self, t: torch.Tensor) -> None:
        self.shape, self.dtype, self.numel = t.shape, t.dtype, t.numel()
        flat = t.detach().reshape(-1).to(torch.uint8)
        pad = (-flat.numel()) % 8
        if pad:
            flat = torch.cat([flat, flat.new_zeros(pad)])
        w = torch.tensor(_BIT_WEIGHTS, dtype=torch.uint8)
        self.bits = (flat.view(-1, 8) * w).sum(1, dtype=torch.uint8)

    def unpack(self) -> torch.Tensor:
        w = torch.tensor(_BIT_WEIGHTS, dtype=torch.uint8)
        flat = self.bits.unsqueeze(1).bitwise_and(w).ne(0).reshape(-1)[:self.numel]
        return flat.to(self.dtype).reshape(self.shape)


def is_spikes(t: torch.Tensor) -> bool:
    """A floating tensor whose values are all 0 or 1 (what spike packing may store as bits)."""
    return t.is_floating_point() and t.numel() > 0 and bool(((t == 0) | (t == 1)).all())


def spike_packing() -> torch.autograd.graph.saved_tensors_hooks:
    """Saved-tensor hooks that store every binary tensor autograd saves as bits (lossless spike compression)."""
    return torch.autograd.graph.saved_tensors_hooks(
        lambda t: PackedSpikes(t) if is_spikes(t) else t,
        lambda h: h.unpack() if isinstance(h, PackedSpikes) else h)


class KeptBytes(Probe):
    """Live and peak bytes of everything kept for the backward (see the module docstring).

    Use as `with meter: ...` (installs the saved-tensor hooks) and give it to the method as its probe."""

    def __init__(self, exclude: Iterable[torch.Tensor] = (), pack_spikes: bool = False) -> None:
        self.pack_spikes = pack_spikes  # store saved spikes as bits (spike_packing) and count the bits
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
        return ptr, key, _distinct(t) * t.element_size()

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
        if self.pack_spikes and self._key(t) is not None and is_spikes(t):
            packed = PackedSpikes(t)
            return _Saved(self, self._add(packed.bits), packed)
        return _Saved(self, self._add(t), t)

    @staticmethod
    def _unpack(h: Any) -> torch.Tensor:
        return h.t.unpack() if isinstance(h.t, PackedSpikes) else h.t

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


def kept_peak(trainer: Any, x: torch.Tensor, y: torch.Tensor, pack_spikes: bool = False) -> int:
    """Peak bytes kept for the backward during one training step of `trainer` on (x, y) (BlocTrain: one step of
    its current phase). The trainer's own state held outside autograd is seen through its `probe`.
    `pack_spikes`: the step runs with saved spikes stored as bits (spike_packing), and they are counted so."""
    meter = KeptBytes(exclude=trainer_parameters(trainer), pack_spikes=pack_spikes)
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
