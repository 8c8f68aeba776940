"""Training: plain BPTT and training with exactly a schedule's gradient delays, on real data, for any model the
front end accepts (spikepipe.train.model) and the user's own data (spikepipe.train.data, .inputs).

The event semantics, for other backends (e.g. a distributed one): `layer_timings(schedule, num_layers)` gives
each layer's F/B/W lag and cycle in the period, `event_order(timings, schedule.period_cycles, num_batches)` every
task of every minibatch in the order the schedule runs them (spikepipe.train.pipelined's docstring says what each
event reads and writes)."""

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


def run_from_options(point: dict) -> dict:
    """See spikepipe.train.runner.run_from_options (imported lazily: the runner pulls in data and schedules)."""
    from spikepipe.train.runner import run_from_options as _run

    return _run(point)


__all__ = ["EpochStats", "Event", "ExactPipeline", "GradientQueue", "LayerTiming", "ModelFn", "NonFiniteLossError",
           "OptimConfig", "PlainBPTT", "TrainerError", "event_order", "layer_timings", "run_from_options"]
