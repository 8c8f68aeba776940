"""A user's module as the time-chunked methods (checkpoint, skipper, ttl, bloctrain) run it: one timestep at a time,
with its neurons' state carried from one call to the next.

The methods of this package run a network over chunks of timesteps and need the neuron state at a chunk border
(spikepipe.methods.stepped). A user's module keeps that state in its own neurons: SpikingJelly MemoryModules
(`v`, and whatever else `register_memory` declared) and snnTorch neurons (their non-persistent buffers `mem`,
`syn`, ...). `UserNet` calls the model once per timestep, in its own step mode: a multi-step model ([T, B, ...]
in) on x[t:t+1], a single-step one (snnTorch `init_hidden`, SpikingJelly step mode "s") on x[t]. Between calls the
state stays in the neurons; at a chunk border it is read out (`State` entries: one dict per layer, "path:attr" ->
tensor) and written back, so a chunk can be re-run from a checkpoint with its state as a leaf of the graph.

This is sound only when stepping reproduces the model's own forward, which is checked once (in eval mode, on a
random input shaped like the example): a forward that resets its neurons, or that mixes timesteps before a later
layer, is refused by name. A model whose time loop is inside its forward ([B, ...] in: snnTorch tutorial style)
cannot be stepped from outside at all and is refused too. Training-mode BatchNorm sees one timestep's batch per
call (per-timestep statistics, as the methods use on the built-in networks, spikepipe.methods.stepped).

Blocks of layers (TTL with more than one block, BlocTrain) run a contiguous range of layers on their own. That
needs an nn.Sequential whose layers are its top-level children in a chain (SpikingJelly and snnTorch Sequentials
are); block l is the children from layer l's synaptic op up to the next layer's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.func import functional_call

from spikepipe.methods.bloctrain import BlocTrain
from spikepipe.methods.local import partition
from spikepipe.methods.registry import MethodError, MethodOptions
from spikepipe.train.model import ModelFn, readout, reset_module

Weights = dict[str, torch.Tensor]
STEP_TOLERANCE = 1e-4  # stepped vs whole-forward logits (float32 sums in another order)


def state_slots(model: nn.Module) -> list[tuple[str, nn.Module, tuple[str, ...]]]:
    """(path, module, state attribute names) of every neuron that keeps state between calls."""
    out = []
    for path, m in model.named_modules():
        if "MemoryModule" in {c.__name__ for c in type(m).__mro__} and getattr(m, "_memories", None):
            out.append((path, m, tuple(m._memories)))
        elif type(m).__module__.startswith("snntorch") and getattr(m, "_non_persistent_buffers_set", None):
            out.append((path, m, tuple(sorted(m._non_persistent_buffers_set))))
    return out


def _sequential_blocks(fn: ModelFn) -> tuple[list[list[int]] | None, str]:
    """The top-level children of each layer (None and why not when the model cannot be cut into layers)."""
    model, m = fn.model, fn.map
    name = type(model).__name__
    if not isinstance(model, nn.Sequential) or type(model).forward is not nn.Sequential.forward:
        return None, f"{name} is not an nn.Sequential (its forward is its own code)"
    if m.inner_adds or any(p != ((i - 1,) if i else (-1,)) for i, p in enumerate(m.producers)):
        return None, f"the layers of {name} are not a chain (a layer reads another than the one before it)"
    index = {k: i for i, k in enumerate(model._modules)}
    starts = []
    for layer, entry in enumerate(m.entries):
        if entry is None or entry.split(".")[0] not in index:
            return None, f"layer {layer} of {name} is not inside one of its children"
        starts.append(index[entry.split(".")[0]])
    if any(b <= a for a, b in zip(starts, starts[1:], strict=False)):
        return None, f"two layers of {name} share one top-level child"
    bounds = [0, *starts[1:], len(index)]
    blocks = [list(range(a, b)) for a, b in zip(bounds, bounds[1:], strict=False)]
    for layer, names in enumerate(m.params):
        for p in names:
            if index.get(p.split(".")[0]) not in blocks[layer]:
                return None, f"parameter {p} of {name} is used by layer {layer} but sits in another layer's children"
    return blocks, ""


class UserNet:
    """A ModelFn run one timestep at a time (see the module docstring); what stepped.run_chunk delegates to."""

    def __init__(self, fn: ModelFn, method: str) -> None:
        name = type(fn.model).__name__
        if not fn.time_major:
            raise MethodError(
                f"--method {method} runs the model one timestep at a time and carries its neuron state between "
                f"segments of timesteps; {name} runs its own time loop inside forward (layout {fn.feeding.layout}), "
                f"which cannot be stepped from outside: write it as a multi-step module ([T, B, ...] in, e.g. "
                f"SpikingJelly step mode 'm') or a single-step one (snnTorch init_hidden=True, SpikingJelly step "
                f"mode 's') and let the trainer run the steps")
        self.fn, self.model, self.method = fn, fn.model, method
        self.num_layers = fn.num_layers
        self.sources = tuple(range(-1, self.num_layers - 1))
        self.residuals = (None,) * self.num_layers
        self.slots = state_slots(self.model)
        self._frozen: dict[str, torch.Tensor] = {}  # buffer copies while frozen_buffers is active
        self.blocks, self.why_no_blocks = _sequential_blocks(fn)
        self.children = list(self.model.children())
        self.example = self._time_major_example()
        self._check()

    # -- the state of the neurons
    def _slot_layer(self, path: str) -> int:
        if self.blocks is None:
            return self.num_layers - 1  # run whole: all state moves with the last layer
        top = list(self.model._modules).index(path.split(".")[0])
        return next(i for i, b in enumerate(self.blocks) if top in b)

    def _load_state(self, layers: Sequence[int], state: Sequence[object] | None) -> None:
        for path, m, names in self.slots:
            layer = self._slot_layer(path)
            if layer not in layers:
                continue
            entry = None if state is None else state[layer]
            if entry is None:
                reset_module(m)
                continue
            for a in names:
                setattr(m, a, entry[f"{path}:{a}"])

    def _read_state(self, layers: Sequence[int], state: list) -> list:
        entries: dict[int, dict[str, object]] = {}
        for path, m, names in self.slots:
            layer = self._slot_layer(path)
            if layer in layers:
                entries.setdefault(layer, {}).update({f"{path}:{a}": getattr(m, a) for a in names})
        for layer in layers:
            state[layer] = entries.get(layer)
        return state

    # -- one chunk of timesteps
    def _at(self, x: torch.Tensor, t: int) -> torch.Tensor:
        return x[t] if self.fn.single_step else x[t:t + 1]

    def _record(self, out: object, last: bool) -> torch.Tensor:
        """One step's output of a layer as [B, ...] (the last layer's as logits [B, C])."""
        if last:
            return readout(out)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out if self.fn.single_step else out[0]

    def run_chunk(self, weights: Sequence[Weights], x: torch.Tensor, state: list | None,
                  layers: range | None = None, inputs: dict[int, torch.Tensor] | None = None,
                  whole: bool | None = None) -> tuple[list[torch.Tensor | None], list]:
        """stepped.run_chunk for this model: layers `layers` (default all) over the chunk x [c, B, ...]."""
        n = self.num_layers
        layers = range(n) if layers is None else layers
        whole = self.blocks is None if whole is None else whole
        if whole and list(layers) != list(range(n)):
            raise MethodError(f"--method {self.method} runs blocks of layers on their own; {self.why_no_blocks}")
        flat: Weights = dict(self._frozen)
        for w in weights:
            flat.update(w)
        self._load_state(layers, state)
        outs: list[torch.Tensor | None] = [None] * n
        if whole:
            outs[-1] = torch.stack([readout(functional_call(self.model, flat, (self._at(x, t),)))
                                    for t in range(x.shape[0])])
        else:
            subs = [{k[len(f"{i}."):]: v for k, v in flat.items() if k.startswith(f"{i}.")}
                    for i in range(len(self.children))]
            per: dict[int, list[torch.Tensor]] = {i: [] for i in layers}
            first = layers[0]
            for t in range(x.shape[0]):
                h: object = self._at(x if first == 0 else (inputs or {})[first - 1], t)
                for i in layers:
                    for c in self.blocks[i]:
                        h = functional_call(self.children[c], subs[c], (h,))
                    per[i].append(self._record(h, i == n - 1))
            for i in layers:
                outs[i] = torch.stack(per[i])
        new_state = list(state) if state is not None else [None] * n
        return outs, self._read_state(layers, new_state)

    # -- what the trainers and the memory meter read
    def initial_weights(self) -> list[Weights]:
        return self.fn.initial_weights()

    def buffers(self) -> Iterator[torch.Tensor]:
        return self.model.buffers()

    def named_buffers(self) -> Iterator[tuple[str, torch.Tensor]]:
        return self.model.named_buffers()

    def eval_logits(self, weights: Sequence[Weights], x: torch.Tensor) -> torch.Tensor:
        """Evaluation: the model's own forward in eval mode (equal to stepping it, as checked at the start)."""
        return self.fn.eval_logits(weights, x)

    @contextlib.contextmanager
    def frozen_buffers(self) -> Iterator[None]:
        """Runs inside see copies of the buffers other than neuron state (BatchNorm's running statistics): a
        re-run of a chunk must not update them a second time. Copies, not a restore in place: autograd may have
        saved the buffers the re-run read."""
        state = {f"{p}.{a}" if p else a for p, _, names in self.slots for a in names}
        self._frozen = {k: b.clone() for k, b in self.model.named_buffers() if k not in state}
        try:
            yield
        finally:
            self._frozen = {}

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        was = self.model.training
        self.model.eval()
        try:
            yield
        finally:
            self.model.train(was)

    def _time_major_example(self) -> torch.Tensor:
        ex = self.fn.example
        return ex.unsqueeze(0).expand(self.fn.timesteps, *ex.shape) if self.fn.single_step else ex

    def _check(self) -> None:
        """Stepping (whole, and block by block when the model has blocks) must give the model's own logits."""
        g = torch.Generator().manual_seed(0)
        ex = self.example
        x = torch.rand(ex.shape[0], 2, *ex.shape[2:], generator=g) * 2
        weights = self.fn.initial_weights()
        with torch.no_grad(), self.evaluating(), self.frozen_buffers():
            want = self.fn.eval_logits(weights, x)
            ways = [True] + ([False] if self.blocks is not None else [])
            for whole in ways:
                got = self.run_chunk(weights, x, None, whole=whole)[0][-1].mean(0)
                diff = float((got - want).abs().max())
                if diff > STEP_TOLERANCE * (1 + float(want.abs().max())):
                    if not whole:
                        self.blocks, self.why_no_blocks = None, (f"running the children of "
                                                                 f"{type(self.model).__name__} one after another "
                                                                 f"does not give its forward's logits")
                        continue
                    raise MethodError(
                        f"--method {self.method} runs the model one timestep at a time with its neuron state "
                        f"carried between calls; for {type(self.model).__name__} that does not reproduce its own "
                        f"forward (largest logit difference {diff:.3g}): its forward resets its neurons or mixes "
                        f"timesteps (e.g. a mean over time before a later layer)")


class UserBlocTrain(BlocTrain):
    """BlocTrain on a user's Sequential: evaluated with the model in eval mode (its BatchNorm statistics)."""

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        with self.net.evaluating():
            return super().logits(x)


def make_user_trainer(method: str, fn: ModelFn, optim: object, *, total_steps: int, epochs: int, seed: int = 0,
                      **params: object) -> object:
    """The trainer of `spikepipe train --method NAME` for a user's module (see the module docstring)."""
    from spikepipe.methods import make_trainer

    opts = MethodOptions.of(method, **params)
    net = UserNet(fn, opts.name)
    if opts.name in ("ttl", "bloctrain") and len(partition(net.num_layers, opts.blocks)) > 1 and net.blocks is None:
        raise MethodError(f"--method {opts.name} cuts the model into blocks of layers with a local classifier "
                          f"after each, which needs an nn.Sequential whose layers are its top-level children in a "
                          f"chain: {net.why_no_blocks}" + ("; --blocks 1 truncates in time only"
                                                           if opts.name == "ttl" else ""))
    with net.frozen_buffers():  # building the local classifiers runs the model once: no statistics from that
        if opts.name == "bloctrain":
            return UserBlocTrain(net, optim, total_steps=total_steps, example=net.example, epochs=epochs,
                                 blocks=opts.blocks, hard_fraction=opts.hard_fraction,
                                 exit_confidence=opts.exit_confidence, seed=seed)
        return make_trainer(opts, net, net.example, optim, total_steps=total_steps, epochs=epochs, seed=seed)
