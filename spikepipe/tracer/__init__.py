"""Generic front end for any nn.Module: see spikepipe.tracer.core (tracing) and .neurons (library neurons)."""

from spikepipe.tracer.core import trace_generic
from spikepipe.tracer.neurons import neuron_spec_of

__all__ = ["trace_generic", "neuron_spec_of"]
