"""Test oracle (not shipped): an independent second tracer for multi-step [T, B, ...] models, see .core."""

from oracle_tracer.core import trace_generic
from oracle_tracer.neurons import neuron_spec_of

__all__ = ["trace_generic", "neuron_spec_of"]
