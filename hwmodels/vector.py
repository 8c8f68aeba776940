"""Vector unit: element-wise neuron updates (LIF as a first-order IIR over T), pooling, normalisation, adds."""

from __future__ import annotations

from dataclasses import dataclass, field
from math import ceil
from numbers import Integral

from hwmodels.errors import HardwareConfigError

# Operations per element per timestep on one lane (one op per lane per cycle).
# LIF forward, a first-order IIR: u_t = beta*u_{t-1} + x_t (one FMA), spike s_t = [u_t >= theta] (compare),
#   reset u_t -= theta*s_t (select/sub).
# LIF backward through time: surrogate derivative sigma'(u_t - theta) (2: subtract, lookup/rational),
#   dL/du_t = dL/ds_t * sigma' + beta * dL/du_{t+1} (2 FMAs) and the reset term through the spike (1).
# Pooling counts per input element; normalisation needs a statistics pass (sum and sum of squares) and a
# scale-shift pass; residual add is one add forward and a pass-through backward that still costs a copy.
# Other neurons, per element per step (state update, fire, reset; backward: surrogate 2 plus one multiply-add per
# recurrence the gradient runs back through, plus the reset term):
# IF (SpikingJelly IFNode): u += x, compare, reset = 3; backward: surrogate 2, du chain 1 (beta = 1), reset 1 = 4.
# PLIF (ParametricLIFNode, H = V + (X - V) k with k = sigmoid(w)): subtract, FMA, compare, reset = 4; backward:
#   LIF's 5 plus dL/dk += dH (X - V) (1 FMA) = 6.
# Lapicque (snnTorch): mem = x*(R dt/RC) + (1 - dt/RC) mem: multiply, FMA, compare, reset = 4; backward 5.
# Synaptic (snnTorch, 2 states): syn = alpha syn + x (FMA), mem = beta mem + syn (FMA), compare, reset = 4;
#   backward: surrogate 2, dmem chain 1, reset 1, dsyn = dmem + alpha dsyn' 1 = 6.
# Alpha (snnTorch, 3 states): exc = alpha exc + x, inh = beta inh - x (2 FMAs), mem = tau (exc + inh) (add, mul),
#   compare, reset on all three states (3) = 8; backward: surrogate 2, mem 2, exc 1, inh 1, resets 3 = 9.
# neuron: a measured neuron whose VectorWork carries its own ops per element (the defaults here are LIF's).
DEFAULT_OPS_PER_ELEMENT: dict[str, int] = {
    "lif_fwd": 3,
    "lif_bwd": 5,
    "if_fwd": 3,
    "if_bwd": 4,
    "plif_fwd": 4,
    "plif_bwd": 6,
    "lapicque_fwd": 4,
    "lapicque_bwd": 5,
    "synaptic_fwd": 4,
    "synaptic_bwd": 6,
    "alpha_fwd": 8,
    "alpha_bwd": 9,
    "neuron_fwd": 3,
    "neuron_bwd": 5,
    "maxpool": 1,  # per input element: one compare
    "maxpool_bwd": 1,  # route the gradient to the arg-max (select)
    "avgpool": 1,
    "avgpool_bwd": 1,
    "batchnorm_fwd": 2,
    "batchnorm_bwd": 4,
    "layernorm_fwd": 4,  # statistics (2) and normalise + affine (2) per element
    "layernorm_bwd": 6,
    "scale": 1,  # multiply by a constant (attention's scale); its backward is the same multiply
    "scale_bwd": 1,
    "mul": 1,  # element-wise product of two layers' outputs; backward: one product for each operand's gradient
    "mul_bwd": 2,
    "add": 1,  # residual add
    "add_bwd": 1,  # gradient copied to both branches
    "loss": 4,
    "sgd_update": 2,
    "adam_update": 8,
    "copy": 1,
}


@dataclass(frozen=True)
class VectorUnit:
    lanes: int = 128
    ops_per_element: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_OPS_PER_ELEMENT), hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.lanes, int) or isinstance(self.lanes, bool) or self.lanes < 1:
            raise HardwareConfigError(f"vector lanes must be a positive integer, got {self.lanes!r}")

    def cycles(self, op: str, elements: int, timesteps: int = 1, ops: int | None = None) -> int:
        """Cycles to apply `op` to `elements` values at each of `timesteps` steps (`ops` per element, when
        given, replaces the table's count: a neuron whose update was measured).

        An IIR over T is sequential in time but parallel across neurons, so lanes split the neurons and
        the time loop runs T times: ceil(elements / lanes) * T * ops.
        """
        if op not in self.ops_per_element:
            raise HardwareConfigError(f"vector unit has no op {op!r}; known: {sorted(self.ops_per_element)}")
        for name, v in (("elements", elements), ("timesteps", timesteps)):
            if not isinstance(v, Integral) or isinstance(v, bool):
                raise HardwareConfigError(f"vector {name} must be an integer, got {v!r}")
        if elements <= 0 or timesteps <= 0:
            return 0
        if ops is not None and (not isinstance(ops, Integral) or isinstance(ops, bool) or ops < 1):
            raise HardwareConfigError(f"vector ops per element must be a positive integer, got {ops!r}")
        return ceil(elements / self.lanes) * timesteps * (ops if ops is not None else self.ops_per_element[op])

    def ops(self) -> list[str]:
        return sorted(self.ops_per_element)
