"""Schedule generators: each is `(graph, cluster, options=None, **keywords) -> Schedule`, its options declared
once as a frozen dataclass (schedules.options), looked up by name in the registry."""

from schedules.registry import UnknownScheduleError, generate, get, names, option_targets, options_class
from schedules.validate import validate

__all__ = ["UnknownScheduleError", "generate", "get", "names", "option_targets", "options_class", "validate"]
