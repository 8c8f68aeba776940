"""Measured spike activity per layer, with forward hooks on any torch model (docs/design.md section 4).

For every traced layer (a synaptic op: conv or linear, named by its module path) the meter counts, over every call
the model makes (a time-looped model calls once per step, a multi-step one once):
- input activity   the fraction of non-zero entries of the tensor entering the synaptic op, and whether that
                   tensor is binary (all entries 0 or 1): only then is it a spike operand that costs ACs;
- output activity  the fraction of spikes the layer emits: the output of the first module to finish after the
                   synaptic op (before the next one runs) that turns a non-binary input into a binary output, i.e.
                   its neuron (own LIF, snnTorch, SpikingJelly: whatever module fires). None without a neuron.
The JSON file carries the model, data set, epoch, samples and timesteps with the layers; `simulate --activity`
reads the input activities back in the network's layer order (matched by layer name).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from math import prod
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spikepipe.ir import LayerSpec, SpikePipeError, TaskGraph


class ActivityError(SpikePipeError):
    """An activity file is unreadable or does not fit the network."""


@dataclass(frozen=True)
class LayerActivity:
    index: int
    name: str
    input_activity: float  # fraction of non-zero entries entering the synaptic op
    input_binary: bool  # the input is a spike tensor (all entries 0 or 1)
    output_activity: float | None  # fraction of spikes the layer's neuron emits (None: no neuron)
    input_elements: int = 0  # entries of the input per sample per timestep (checks the file fits the network)
    # non-zero share of the GEMM operand the synaptic op really multiplies: the lowered (im2col) input of a conv,
    # where zero padding and strides make it differ from the input's; the input itself for a linear layer.
    # ACs = this x dense MACs is then exactly one accumulate per spike and weight it meets (None: not measured)
    gemm_activity: float | None = None


    @property
    def operand_activity(self) -> float:
        """What the AC count is priced at: the GEMM operand's activity where measured, else the input's."""
        return self.input_activity if self.gemm_activity is None else self.gemm_activity


@dataclass(frozen=True)
class ActivityReport:
    model: str
    dataset: str
    epoch: int | None  # None: an untrained model
    samples: int
    timesteps: int
    layers: tuple[LayerActivity, ...]
    history: tuple[Mapping[str, Any], ...] = field(default=())  # earlier epochs (train --activity-out)

    def input_activities(self) -> list[float]:
        return [la.input_activity for la in self.layers]

    def operand_activities(self) -> list[float]:
        return [la.operand_activity for la in self.layers]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = [asdict(la) for la in self.layers]
        d["history"] = [dict(h) for h in self.history]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "activity") -> ActivityReport:
        try:
            layers = tuple(LayerActivity(int(la["index"]), str(la["name"]), float(la["input_activity"]),
                                         bool(la["input_binary"]),
                                         None if la.get("output_activity") is None else float(la["output_activity"]),
                                         int(la.get("input_elements", 0)),
                                         None if la.get("gemm_activity") is None else float(la["gemm_activity"]))
                           for la in d["layers"])
            rep = cls(str(d["model"]), str(d["dataset"]), None if d.get("epoch") is None else int(d["epoch"]),
                      int(d["samples"]), int(d["timesteps"]), layers, tuple(d.get("history", ())))
        except (KeyError, TypeError, ValueError) as exc:
            raise ActivityError(f"{source}: not an activity file ({type(exc).__name__}: {exc}); write one with "
                                "`spikepipe activity` or `spikepipe train --activity-out`") from None
        for la in rep.layers:
            for key in ("input_activity", "output_activity", "gemm_activity"):
                v = getattr(la, key)
                if v is not None and not 0.0 <= v <= 1.0:
                    raise ActivityError(f"{source}: layer {la.name}: {key} {v} is not in [0, 1]")
        return rep

    def for_graph(self, graph: TaskGraph, source: str = "activity") -> list[float | None]:
        """Input activity of every layer of the graph, matched by layer name (and checked by input size)."""
        by_name = {la.name: la for la in self.layers}
        hint = f"{source} was measured on {self.model}; measure it on network {graph.name}"
        if len(self.layers) != graph.num_layers:
            raise ActivityError(f"{hint} ({len(self.layers)} layers, the network has {graph.num_layers})")
        for s in graph.layers:
            la = by_name.get(s.name)
            if la is None:
                raise ActivityError(f"{hint} (it has no layer {s.name!r})")
            want = int(prod(s.in_shape))
            if la.input_elements and la.input_elements != want:
                raise ActivityError(f"{hint} (layer {s.name} takes {want} inputs per sample, the file measured "
                                    f"{la.input_elements})")
        # a layer whose input was measured not binary (e.g. after an average pool) does dense MACs: None
        return [by_name[s.name].operand_activity if by_name[s.name].input_binary else None for s in graph.layers]


def _lowered_counts(module: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> tuple[int, int] | None:
    """(non-zeros, entries) of a 2D convolution's im2col operand, without building it: a convolution of the
    non-zero mask with a kernel of ones counts, per output position and group, the taps that see a non-zero.
    None for other modules (their operand is the input) and for padding modes other than zeros."""
    if not isinstance(module, nn.Conv2d) or module.padding_mode != "zeros" or y is None:
        return None
    x4 = x.reshape(-1, *x.shape[-3:])  # multi-step [T, B, C, H, W] modules fold T into the batch
    g = module.groups
    ones = torch.ones(g, module.in_channels // g, *module.kernel_size, dtype=torch.float32)
    occ = torch.nn.functional.conv2d((x4 != 0).float(), ones, None, module.stride, module.padding,
                                     module.dilation, g)
    positions = occ.numel() // g  # output positions (batch x E x F)
    taps = module.in_channels // g * prod(module.kernel_size)
    return int(occ.sum(dtype=torch.float64)), positions * taps * g


def _binary(t: torch.Tensor) -> bool:
    return bool(((t == 0) | (t == 1)).all())


def _first_tensor(x: Any) -> torch.Tensor | None:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (tuple, list)) and x:
        return _first_tensor(x[0])
    return None


class ActivityMeter:
    """Counts non-zero entries with forward hooks while the model runs; use as a context manager."""

    def __init__(self, model: nn.Module, layers: Sequence[LayerSpec]) -> None:
        self.model = model
        self.layers = tuple(layers)
        self._index = {s.name: s.index for s in layers}
        self._handles: list[Any] = []
        self.reset()

    def reset(self) -> None:
        self.in_nnz: dict[int, int] = defaultdict(int)
        self.in_numel: dict[int, int] = defaultdict(int)
        self.in_binary: dict[int, bool] = defaultdict(lambda: True)
        self.out_nnz: dict[int, int] = defaultdict(int)
        self.out_numel: dict[int, int] = defaultdict(int)
        self.op_nnz: dict[int, int] = defaultdict(int)  # non-zeros of the lowered GEMM operand
        self.op_numel: dict[int, int] = defaultdict(int)
        self._last: int | None = None  # the synaptic op that ran most recently
        self._fired: set[int] = set()  # layers whose neuron already fired since their synaptic op ran

    def _hook(self, name: str):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            x, y = _first_tensor(args), _first_tensor(output)
            if name in self._index:
                i = self._index[name]
                if x is not None:
                    nnz = int(torch.count_nonzero(x))
                    self.in_nnz[i] += nnz
                    self.in_numel[i] += x.numel()
                    self.in_binary[i] = self.in_binary[i] and _binary(x)
                    lowered = _lowered_counts(module, x, y)
                    self.op_nnz[i] += lowered[0] if lowered else nnz
                    self.op_numel[i] += lowered[1] if lowered else x.numel()
                self._last = i
                self._fired.discard(i)
                return
            i = self._last
            if i is None or i in self._fired or x is None or y is None or not y.is_floating_point():
                return
            if _binary(y) and not _binary(x):  # a neuron: non-binary in, spikes out
                self.out_nnz[i] += int(torch.count_nonzero(y))
                self.out_numel[i] += y.numel()
                self._fired.add(i)

        return hook

    def __enter__(self) -> ActivityMeter:
        names = set(self._index)
        # every module but the root: a neuron need not be a leaf (SpikingJelly's holds its surrogate function,
        # and runs a fused kernel in eval that never calls it); inner hooks fire first, so a neuron counts once
        for name, mod in self.model.named_modules():
            if mod is not self.model:
                self._handles.append(mod.register_forward_hook(self._hook(name)))
        missing = names - {n for n, _ in self.model.named_modules()}
        if missing:
            self.__exit__()
            raise ActivityError(f"the model has no module {sorted(missing)[0]!r} of its traced layers")
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def layer_activities(self) -> tuple[LayerActivity, ...]:
        out = []
        for s in self.layers:
            i = s.index
            if not self.in_numel[i]:
                raise ActivityError(f"layer {s.name} never ran; the model's forward does not call it")
            out.append(LayerActivity(i, s.name, self.in_nnz[i] / self.in_numel[i], self.in_binary[i],
                                     self.out_nnz[i] / self.out_numel[i] if self.out_numel[i] else None,
                                     int(prod(s.in_shape)),
                                     self.op_nnz[i] / self.op_numel[i] if self.op_numel[i] else None))
        return tuple(out)


@torch.no_grad()
def measure(model: nn.Module, layers: Sequence[LayerSpec], inputs: Iterable[torch.Tensor], *, model_name: str,
            dataset: str, epoch: int | None = None,
            forward: Callable[[torch.Tensor], Any] | None = None, time_major: bool = True) -> ActivityReport:
    """Run `model` in eval mode on every input ([T, B, ...] as the model takes it) and count its spikes.
    `forward` runs the model another way (a trainer's functional call with its own weights); the hooks on the
    model's modules see it all the same."""
    was_training = model.training
    model.eval()
    samples = timesteps = 0
    run = forward or model
    try:
        with ActivityMeter(model, layers) as meter:
            for x in inputs:
                _reset_state(model)
                run(x)
                if time_major:
                    timesteps, samples = int(x.shape[0]), samples + int(x.shape[1])
                else:  # [B, ...]: the model runs its own time loop
                    samples += int(x.shape[0])
    finally:
        model.train(was_training)
    return ActivityReport(model_name, dataset, epoch, samples, timesteps, meter.layer_activities())


def measure_split(model: nn.Module, example: torch.Tensor, x: torch.Tensor, *, encoder: str, seed: int,
                  model_name: str, dataset: str, epoch: int | None = None, samples: int = 256,
                  forward: Callable[[torch.Tensor], Any] | None = None, calibrate: bool = False) -> ActivityReport:
    """Activity on the first `samples` samples of a split (x: [N, ...] in the model's sample shape), encoded over
    the example's T and run in minibatches of its B (what `spikepipe activity` and `train --activity-out` do)."""
    from spikepipe.frontend import trace
    from spikepipe.train.encoders import encode

    t, b = int(example.shape[0]), int(example.shape[1])
    layers = trace(model, example[:, :1])
    x = x[:samples]
    batches = [encode(encoder, x[i:i + b], t, seed=seed + i) for i in range(0, len(x), b)]
    if calibrate:
        calibrate_batchnorm(model, batches, forward)
    return measure(model, layers, batches, model_name=model_name, dataset=dataset, epoch=epoch, forward=forward)


def with_history(reports: Sequence[ActivityReport]) -> ActivityReport:
    """The last epoch's report, with every epoch's layers (in order) as its history."""
    if not reports:
        raise ActivityError("no activity was measured")
    hist = tuple({"epoch": r.epoch, "layers": [asdict(la) for la in r.layers]} for r in reports)
    last = reports[-1]
    return ActivityReport(last.model, last.dataset, last.epoch, last.samples, last.timesteps, last.layers, hist)


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, inputs: Iterable[torch.Tensor],
                        forward: Callable[[torch.Tensor], Any] | None = None) -> int:
    """Running statistics of every batch norm from a pass over `inputs` (cumulative average), then eval mode.
    An untrained network's defaults (mean 0, variance 1) leave most of its neurons silent; calibrated, every
    pre-activation is normalised as training would. Returns the number of batch norms calibrated."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    run = forward or model
    for x in inputs:
        _reset_state(model)
        run(x)
    _reset_state(model)
    model.eval()
    return len(bns)


def _reset_state(model: nn.Module) -> None:
    """Neuron state belongs to one minibatch (SpikingJelly's MemoryModule, snnTorch's init_hidden)."""
    for mod in model.modules():
        reset = getattr(mod, "reset", None)
        if callable(reset) and mod is not model and type(mod).__module__.startswith(("spikingjelly", "snntorch")):
            reset()


def write_report(path: str | Path, report: ActivityReport) -> Path:
    from spikepipe.io import write_json

    return write_json(path, report.to_dict())


def read_report(path: str | Path) -> ActivityReport:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise ActivityError(f"activity file {path} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ActivityError(f"activity file {path} is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ActivityError(f"activity file {path} must hold one JSON object")
    return ActivityReport.from_dict(data, source=f"activity file {path}")


def load_split(dataset: str, data_dir: str | None, split: str) -> torch.Tensor:
    """The samples of one split of a data set (digits, fashion-mnist or FILE.npz), [N, ...] floats in [0, 1]."""
    from spikepipe.train.data import load_dataset

    if dataset.endswith(".npz"):
        from spikepipe.train import data as data_mod

        loader = getattr(data_mod, "load_npz", None)
        if loader is None:
            raise ActivityError("this build reads .npz data sets only in `spikepipe train`; use digits or "
                                "fashion-mnist")
        ds = loader(dataset)
    else:
        ds = load_dataset(dataset, data_dir)
    return getattr(ds, split).x


def fit_shape(x: torch.Tensor, shape: tuple[int, ...], resize: bool, dataset: str) -> torch.Tensor:
    """Samples in the network's sample shape: as they are, reshaped when only the layout differs, or (`resize`)
    images resized bilinearly to H x W with their channels repeated."""
    import torch.nn.functional as F

    n = x.shape[0]
    if tuple(x.shape[1:]) == tuple(shape):
        return x
    if x[0].numel() == prod(shape):
        return x.reshape(n, *shape)
    if not resize or len(shape) != 3:
        raise ActivityError(f"{dataset} samples have shape {tuple(x.shape[1:])}, the network takes {tuple(shape)}; "
                            "pick a network built for it or pass --resize")
    img = x.reshape(n, -1, *x.shape[-2:]) if x.dim() >= 3 else None
    if img is None:
        raise ActivityError(f"--resize needs image samples, {dataset} has shape {tuple(x.shape[1:])}")
    img = F.interpolate(img, size=shape[1:], mode="bilinear", align_corners=False)
    return img.repeat(1, -(-shape[0] // img.shape[1]), 1, 1)[:, :shape[0]]


def load_weights(model: nn.Module, path: str, network: str) -> None:
    """A trained state_dict (train's model.pt) loaded into the network, or a one-line error saying why not."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except FileNotFoundError:
        raise ActivityError(f"weights file {path} not found") from None
    except (RuntimeError, OSError, KeyError, TypeError) as exc:
        raise ActivityError(f"weights file {path} does not fit {network}: {str(exc).splitlines()[0]}") from None
