"""Schedule generators: each is `(graph, cluster, **options) -> Schedule`, looked up by name in the registry."""

from schedules.registry import UnknownScheduleError, generate, get, names
from schedules.validate import validate

__all__ = ["UnknownScheduleError", "generate", "get", "names", "validate"]
