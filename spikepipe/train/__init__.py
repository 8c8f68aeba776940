"""Training: plain BPTT and training with exactly a schedule's gradient delays, on real data."""

from spikepipe.train.bptt import EpochStats, NonFiniteLossError, PlainBPTT
from spikepipe.train.optim import OptimConfig
from spikepipe.train.pipelined import ExactPipeline, GradientQueue, TrainerError, layer_timings


def run_from_options(point: dict) -> dict:
    """See spikepipe.train.runner.run_from_options (imported lazily: the runner pulls in data and schedules)."""
    from spikepipe.train.runner import run_from_options as _run

    return _run(point)


__all__ = ["EpochStats", "ExactPipeline", "GradientQueue", "NonFiniteLossError", "OptimConfig", "PlainBPTT",
           "TrainerError", "layer_timings", "run_from_options"]
