"""Training: plain BPTT and training with exactly a schedule's gradient delays, on real data."""

from spikepipe.train.bptt import EpochStats, NonFiniteLossError, PlainBPTT
from spikepipe.train.optim import OptimConfig
from spikepipe.train.pipelined import ExactPipeline, GradientQueue, TrainerError, layer_timings

__all__ = ["EpochStats", "ExactPipeline", "GradientQueue", "NonFiniteLossError", "OptimConfig", "PlainBPTT",
           "TrainerError", "layer_timings"]
