"""Errors of the front end (re-exported by spikepipe.frontend)."""

from spikepipe.ir import SpikePipeError


class UnsupportedLayerError(SpikePipeError):
    """The model contains a module or operation the front end cannot cost."""


class TraceError(SpikePipeError):
    """The model could not be run on the example input, or its structure or layout is inconsistent."""
