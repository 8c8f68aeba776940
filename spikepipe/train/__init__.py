"""Training: plain BPTT and training with exactly a schedule's gradient delays, on real data, for any model the
front end accepts (spikepipe.train.model) and the user's own data (spikepipe.train.data, .inputs).

The event semantics, for other backends (e.g. a distributed one): `layer_timings(schedule, num_layers)` gives
each layer's F/B/W lag and cycle in the period, `event_order(timings, schedule.period_cycles, num_batches)` every
task of every minibatch in the order the schedule runs them (spikepipe.train.pipelined's docstring says what each
event reads and writes).

A whole run, with the trainer picked for the config (a method, a distributed backend), is spikepipe.training's
`run` and `run_from_options`: they sit above this package and the methods built on it."""

from spikepipe.train.bptt import EpochStats, NonFiniteLossError, PlainBPTT
from spikepipe.train.model import ModelFn
from spikepipe.train.optim import OptimConfig
from spikepipe.train.pipelined import (
    Event,
    ExactPipeline,
    GradientQueue,
    LayerTiming,
    TrainerError,
    event_order,
    layer_timings,
)

__all__ = ["EpochStats", "Event", "ExactPipeline", "GradientQueue", "LayerTiming", "ModelFn", "NonFiniteLossError",
           "OptimConfig", "PlainBPTT", "TrainerError", "event_order", "layer_timings"]
