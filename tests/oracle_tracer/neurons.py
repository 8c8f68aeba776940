"""Spiking neurons of three libraries read into one NeuronSpec, keeping the user's neuron semantics.

NeuronSpec's model is u_t = beta * u_{t-1} + x_t, spike when u crosses `threshold`, then reset.

- ours (spikepipe.snn.LIF): read as is.
- snnTorch `Leaky`: the same recurrence (beta * mem + input); fires when mem > threshold; reset 'subtract' or
  'zero' ('none' cannot be costed as a spiking layer and is refused). snnTorch applies the reset one step late
  by default (reset_delay=True); NeuronSpec has no field for that, the costs do not depend on it.
- SpikingJelly `LIFNode`: H_t = V_{t-1} + (X_t - (V_{t-1} - V_reset)) / tau with decay_input=True, or
  H_t = V_{t-1} - (V_{t-1} - V_reset) / tau + X_t with decay_input=False; fires when H >= v_threshold
  (fire_on_equal=True); v_reset=None is a soft reset (subtract), v_reset=0.0 a hard reset to zero.
  With V_reset = 0 both are our recurrence with beta = 1 - 1/tau:
    decay_input=False: V_t = beta V_{t-1} + X_t, threshold = v_threshold;
    decay_input=True:  V_t = beta V_{t-1} + X_t / tau; in the scaled potential u = tau * V this is exactly
                       u_t = beta u_{t-1} + X_t with threshold tau * v_threshold (a subtractive reset of
                       v_threshold in V is a reset of tau * v_threshold in u), so threshold = tau * v_threshold.
  A hard reset to a non-zero V_reset also leaks towards V_reset, which NeuronSpec cannot express: refused.
- SpikingJelly `IFNode`: H_t = V_{t-1} + X_t, i.e. beta = 1.
Other neurons of these libraries (Synaptic, Alpha, ParametricLIFNode, ...) raise UnsupportedLayerError.
"""

from __future__ import annotations

import torch
from torch import nn

from spikepipe.ir import NeuronSpec

# surrogate names as NeuronSpec spells them (see spikepipe.snn.SURROGATES); unknown ones keep a lower-case name
_SURROGATE_NAMES = {"atan": "atan", "fast_sigmoid": "fast-sigmoid", "fastsigmoid": "fast-sigmoid",
                    "sigmoid": "sigmoid", "triangular": "triangle", "triangle": "triangle"}


def _library(module: nn.Module) -> str:
    return type(module).__module__.split(".", 1)[0]


def _surrogate_name(raw: str) -> str:
    key = raw.lower()
    return _SURROGATE_NAMES.get(key, key)


def is_spiking_neuron(module: nn.Module) -> bool:
    """True for any neuron type of our library, snnTorch or SpikingJelly (supported or not)."""
    from spikepipe.snn import LIF

    if isinstance(module, LIF):
        return True
    names = {c.__name__ for c in type(module).__mro__}
    lib = _library(module)
    return (lib == "snntorch" and "SpikingNeuron" in names) or (lib == "spikingjelly" and "BaseNode" in names)


def neuron_spec_of(module: nn.Module, path: str) -> NeuronSpec:
    """NeuronSpec of a supported neuron, or UnsupportedLayerError naming the module's path and type."""
    from spikepipe.frontend import UnsupportedLayerError
    from spikepipe.snn import LIF

    if isinstance(module, LIF):
        return NeuronSpec(beta=round(float(module.beta), 6), threshold=module.threshold, reset=module.reset,
                          surrogate=module.surrogate, learn_beta=module.learn_beta,
                          fire_on_equal=module.fire_on_equal)
    cls = type(module).__name__
    lib = _library(module)
    if lib == "snntorch" and cls == "Leaky":
        return _snntorch_leaky(module, path)
    if lib == "spikingjelly" and cls in ("LIFNode", "IFNode"):
        return _spikingjelly_lif(module, path)
    raise UnsupportedLayerError(
        f"module {path!r} ({lib}.{cls}) is a neuron type the front end does not model; use our LIF, "
        f"snnTorch Leaky or SpikingJelly LIFNode/IFNode")


def _snntorch_leaky(m: nn.Module, path: str) -> NeuronSpec:
    from spikepipe.frontend import UnsupportedLayerError

    reset = getattr(m, "_reset_mechanism", "subtract")
    if reset not in ("subtract", "zero"):
        raise UnsupportedLayerError(f"module {path!r} (snntorch.Leaky) has reset_mechanism={reset!r}; "
                                    f"only 'subtract' and 'zero' are modelled")
    if getattr(m, "inhibition", False):
        raise UnsupportedLayerError(f"module {path!r} (snntorch.Leaky) uses inhibition, which is not modelled")
    grad = getattr(m, "spike_grad", None)
    qual = getattr(grad, "__qualname__", type(grad).__name__)
    raw = qual.split(".", 1)[0]  # "atan.<locals>.inner" -> "atan"; "ATan.apply" -> "ATan"
    return NeuronSpec(beta=round(float(m.beta.detach()), 6), threshold=round(float(torch.as_tensor(m.threshold).detach()), 6), reset=reset,
                      surrogate=_surrogate_name(raw), learn_beta=isinstance(m.beta, nn.Parameter),
                      fire_on_equal=False)


def _spikingjelly_lif(m: nn.Module, path: str) -> NeuronSpec:
    from spikepipe.frontend import UnsupportedLayerError

    cls = type(m).__name__
    v_reset = m.v_reset
    if v_reset is not None and float(v_reset) != 0.0:
        raise UnsupportedLayerError(f"module {path!r} (spikingjelly.{cls}) resets to v_reset={v_reset}; only a "
                                    f"soft reset (v_reset=None) or a hard reset to 0.0 is modelled")
    thr = float(m.v_threshold)
    if cls == "IFNode":
        beta = 1.0
    else:
        tau = float(m.tau)
        beta = 1.0 - 1.0 / tau
        if m.decay_input:
            thr *= tau
    sg = type(getattr(m, "surrogate_function", None)).__name__
    return NeuronSpec(beta=round(beta, 6), threshold=round(thr, 6), reset="subtract" if v_reset is None else "zero",
                      surrogate=_surrogate_name(sg), learn_beta=False, fire_on_equal=True)
