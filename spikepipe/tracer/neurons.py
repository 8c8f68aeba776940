"""Spiking neurons of our library, snnTorch and SpikingJelly read into one NeuronSpec, keeping each library's
firing and reset semantics. The vector-unit cost of each kind is in hwmodels.vector (ops per element per step,
forward and backward through time); `kind` picks the row, `state_vars` counts what BPTT keeps per step.

- ours (spikepipe.snn.LIF): u_t = beta u_{t-1} + x_t, fires at u > threshold (or >= with fire_on_equal).
- snnTorch (fires at mem > threshold; with reset_delay the reset lands one step late; costs do not depend on it):
    Leaky     mem = beta mem + x                                            kind lif, 1 state
    Lapicque  mem = x R dt/(RC) + (1 - dt/(RC)) mem                         kind lapicque, 1 state
    Synaptic  syn = alpha syn + x; mem = beta mem + syn                     kind synaptic, 2 states
    Alpha     exc = alpha exc + x; inh = beta inh - x; mem = tau_a (exc + inh)   kind alpha, 3 states
    RLeaky, RSynaptic: a recurrent synapse (a GEMM per timestep, sequential in T) is refused, named.
- SpikingJelly (fires at H >= v_threshold; resets in the same step; v_reset None = subtract, 0.0 = to zero):
    IFNode             H = V + X                                            kind if
    LIFNode            decay_input: H = V + (X - V)/tau, else H = V - V/tau + X   kind lif (beta = 1 - 1/tau;
                       with decay_input the threshold is scaled by tau: in u = tau V the update is ours)
    ParametricLIFNode  as LIFNode with 1/tau = sigmoid(w) learnt             kind plif (+ dL/dw per step)
    other BaseNode     ops counted by running one single step of the real neuron on one element (see
                       counted_ops): kind "neuron" with ops_fwd / ops_bwd carried in the spec.
- any module with a `spikepipe_neuron` attribute holding a NeuronSpec states its own (spikepipe.nir_import).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from spikepipe.ir import NeuronSpec
from spikepipe.tracer.errors import UnsupportedLayerError

_SURROGATES = {"atan": "atan", "fast_sigmoid": "fast-sigmoid", "fastsigmoid": "fast-sigmoid", "atangrad": "atan",
               "sigmoid": "sigmoid", "triangular": "triangle", "triangle": "triangle"}
_SNNTORCH = {"Leaky": ("lif", 1), "Lapicque": ("lapicque", 1), "Synaptic": ("synaptic", 2), "Alpha": ("alpha", 3)}
_SNNTORCH_RECURRENT = ("RLeaky", "RSynaptic")
_SJ_NAMED = ("IFNode", "LIFNode", "ParametricLIFNode")
SUPPORTED = ("spikepipe LIF; snnTorch Leaky, Lapicque, Synaptic, Alpha; SpikingJelly IFNode, LIFNode, "
             "ParametricLIFNode and other BaseNode subclasses")


def library_class(module: nn.Module) -> tuple[str, str]:
    """(library, class name) of the first class in the MRO that comes from snnTorch or SpikingJelly."""
    for cls in type(module).__mro__:
        root = cls.__module__.split(".")[0]
        if root in ("snntorch", "spikingjelly"):
            return root, cls.__name__
    return "", type(module).__name__


def is_neuron(module: nn.Module) -> bool:
    """Any spiking neuron of the three libraries, supported or not."""
    from spikepipe.snn import LIF

    if isinstance(module, LIF) or isinstance(getattr(module, "spikepipe_neuron", None), NeuronSpec):
        return True
    lib, _ = library_class(module)
    names = {c.__name__ for c in type(module).__mro__}
    return (lib == "snntorch" and "SpikingNeuron" in names) or (lib == "spikingjelly" and "BaseNode" in names)


def steps_over_dim0(module: nn.Module) -> bool | None:
    """Whether a neuron steps over dim 0 of its input (multi-step: [T, ...]) or treats its input as one step
    (snnTorch, SpikingJelly step_mode "s"); None when the module does not say."""
    from spikepipe.snn import LIF

    if isinstance(module, LIF):
        return True
    lib, _ = library_class(module)
    if lib == "snntorch":
        return False
    if lib == "spikingjelly":
        mode = getattr(module, "step_mode", None)
        return {"m": True, "s": False}.get(mode) if isinstance(mode, str) else None
    return None


def _surrogate(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    name = name.split(".")[0].lower()  # snnTorch: "atan.<locals>.inner"; SpikingJelly: class "ATan"
    return _SURROGATES.get(name, name)


def _scalar(v: Any) -> float:
    return float(torch.as_tensor(v).detach().reshape(-1)[0])


def neuron_spec(module: nn.Module, path: str = "") -> NeuronSpec | None:
    """The NeuronSpec of a spiking neuron, None if `module` is not a neuron; UnsupportedLayerError (naming the
    module path and type) for a neuron that cannot be costed."""
    from spikepipe.snn import LIF

    if isinstance(module, LIF):
        return NeuronSpec(beta=round(float(module.beta), 6), threshold=float(module.threshold), reset=module.reset,
                          surrogate=module.surrogate, learn_beta=module.learn_beta,
                          fire_on_equal=module.fire_on_equal)
    own = getattr(module, "spikepipe_neuron", None)
    if isinstance(own, NeuronSpec):  # a module that states its own neuron (the NIR reader's, or a user's)
        return own
    if not is_neuron(module):
        return None
    lib, cls = library_class(module)
    where = f"module {path or '<root>'} ({lib}.{cls})"
    if lib == "snntorch":
        return _snntorch(module, cls, where)
    return _spikingjelly(module, cls, where)


def _snntorch(m: Any, cls: str, where: str) -> NeuronSpec:
    if cls in _SNNTORCH_RECURRENT:
        raise UnsupportedLayerError(f"{where}: recurrent neurons (a synapse from the layer's own spikes, a GEMM per "
                                    f"timestep sequential in T) are not costed; supported: {SUPPORTED}")
    if cls not in _SNNTORCH:
        raise UnsupportedLayerError(f"{where}: snnTorch neuron {cls} is not supported; supported: {SUPPORTED}")
    reset = str(getattr(m, "reset_mechanism", "subtract"))
    if reset not in ("subtract", "zero"):
        raise UnsupportedLayerError(f"{where}: reset_mechanism {reset!r} is not a spiking reset; use 'subtract' "
                                    f"or 'zero'")
    if getattr(m, "inhibition", False):
        raise UnsupportedLayerError(f"{where}: inhibition (winner-take-all across the layer) is not modelled")
    kind, states = _SNNTORCH[cls]
    beta = _scalar(m.beta) if getattr(m, "beta", None) is not None else 0.0
    alpha = _scalar(m.alpha) if getattr(m, "alpha", None) is not None else 0.0
    learn = any(isinstance(getattr(m, a, None), nn.Parameter) for a in ("beta", "alpha"))
    return NeuronSpec(beta=round(beta, 6), threshold=round(_scalar(m.threshold), 6), reset=reset,  # type: ignore[arg-type]
                      surrogate=_surrogate(m.spike_grad), learn_beta=learn, fire_on_equal=False, kind=kind,
                      state_vars=states, alpha=round(alpha, 6))


def _spikingjelly(m: Any, cls: str, where: str) -> NeuronSpec:
    v_reset = getattr(m, "v_reset", None)
    reset = "subtract" if v_reset is None else "zero"
    surrogate = _surrogate(getattr(m, "surrogate_function", None))
    named = next((c.__name__ for c in type(m).__mro__ if c.__name__ in _SJ_NAMED
                  and c.__module__.startswith("spikingjelly")), None)
    if named == cls and v_reset is not None and float(v_reset) != 0.0:
        raise UnsupportedLayerError(f"{where}: a hard reset to v_reset={v_reset} (not 0.0) also leaks towards "
                                    f"v_reset, which the cost model's neuron cannot express; use v_reset=None "
                                    f"(subtract) or 0.0")
    thr = float(m.v_threshold)
    if cls == "IFNode":
        return NeuronSpec(beta=1.0, threshold=thr, reset=reset, surrogate=surrogate,  # type: ignore[arg-type]
                          fire_on_equal=True, kind="if")
    if cls in ("LIFNode", "ParametricLIFNode"):
        plif = cls == "ParametricLIFNode"
        tau = 1.0 / torch.sigmoid(m.w.detach()).item() if plif else float(m.tau)
        threshold = thr * (tau if m.decay_input else 1.0)
        return NeuronSpec(beta=round(1.0 - 1.0 / tau, 6), threshold=round(threshold, 9), reset=reset,  # type: ignore[arg-type]
                          surrogate=surrogate, learn_beta=plif, fire_on_equal=True, kind="plif" if plif else "lif")
    fwd, states = counted_ops(m, where)
    fwd = max(fwd, 3)  # at least charge, fire and reset (a fused or scripted update counts as one call)
    # backward through time: one multiply-add per forward op (the chain rule), plus the surrogate (2)
    return NeuronSpec(beta=0.0, threshold=thr, reset=reset, surrogate=surrogate,  # type: ignore[arg-type]
                      learn_beta=any(True for _ in m.parameters()), fire_on_equal=True, kind="neuron",
                      state_vars=states, ops_fwd=fwd, ops_bwd=fwd + 2)


class _CountOps(TorchFunctionMode):
    """Counts element-wise torch operations (those returning a tensor) of one neuron step."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        out = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", "")
        if isinstance(out, torch.Tensor) and name not in ("__get__", "__set__", "detach", "clone", "to",
                                                          "contiguous", "float", "view", "reshape", "flatten"):
            self.ops += 1
        return out


def counted_ops(module: nn.Module, where: str) -> tuple[int, int]:
    """(element-wise ops of one single step, state variables) of a SpikingJelly neuron, measured by running one
    step of a copy on one element (the second of two steps, so state initialisation is not counted)."""
    try:
        node: Any = copy.deepcopy(module).cpu()
        node.step_mode = "s"
        node.reset()
        x = torch.full((1,), 0.5)
        node(x)
        counter = _CountOps()
        with torch.no_grad(), counter:
            node(x)
        memories = getattr(node, "_memories", {})  # SpikingJelly's MemoryModule keeps its state here
        states = sum(1 for v in memories.values() if isinstance(v, torch.Tensor)) or 1
    except Exception as exc:  # noqa: BLE001 - any failure means the neuron cannot be measured
        raise UnsupportedLayerError(f"{where}: cannot measure this neuron's state update on one element "
                                    f"({type(exc).__name__}: {exc}); supported: {SUPPORTED}") from None
    if counter.ops < 1 or not math.isfinite(counter.ops):
        raise UnsupportedLayerError(f"{where}: one step of this neuron runs no tensor operation; supported: "
                                    f"{SUPPORTED}")
    return counter.ops, states
