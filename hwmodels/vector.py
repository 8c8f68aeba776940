"""Vector unit: element-wise neuron updates (LIF as a first-order IIR over T), pooling, normalisation, adds."""

from __future__ import annotations

from dataclasses import dataclass, field
from math import ceil

from hwmodels.errors import HardwareConfigError

# Operations per element per timestep on one lane. LIF forward: u = beta*u + x (FMA), compare, reset (select/sub).
# LIF backward through time: surrogate derivative, two FMAs for dL/du_t and the carry beta*dL/du_{t+1}, reset term.
DEFAULT_OPS_PER_ELEMENT: dict[str, int] = {
    "lif_fwd": 3,
    "lif_bwd": 5,
    "maxpool": 1,  # per input element: one compare
    "avgpool": 1,
    "batchnorm_fwd": 2,
    "batchnorm_bwd": 4,
    "add": 1,
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
        if not isinstance(self.lanes, int) or self.lanes < 1:
            raise HardwareConfigError(f"vector lanes must be a positive integer, got {self.lanes!r}")

    def cycles(self, op: str, elements: int, timesteps: int = 1) -> int:
        """Cycles to apply `op` to `elements` values at each of `timesteps` steps.

        An IIR over T is sequential in time but parallel across neurons, so lanes split the neurons and
        the time loop runs T times: ceil(elements / lanes) * T * ops.
        """
        if op not in self.ops_per_element:
            raise HardwareConfigError(f"vector unit has no op {op!r}; known: {sorted(self.ops_per_element)}")
        if elements <= 0 or timesteps <= 0:
            return 0
        return ceil(elements / self.lanes) * timesteps * self.ops_per_element[op]
