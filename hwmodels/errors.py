"""Typed errors of the hardware models (library code raises, only the CLI prints)."""


class HardwareConfigError(ValueError):
    """A hardware description is invalid (bad size, unknown dataflow, malformed TOML, ...)."""
