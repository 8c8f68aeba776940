"""What a replay returns: the typed error, per-event records (for traces and Gantt charts) and SimResult."""

from __future__ import annotations

from dataclasses import dataclass, field

from spikepipe.ir import SpikePipeError


class SimulationError(SpikePipeError):
    """The replay found the schedule broken: a slot's input was not ready at its start (strict mode), the
    processors deadlock, or the options make no sense. `slot` and `minibatch` name the failing execution."""

    def __init__(self, message: str, *, slot: str | None = None, minibatch: int | None = None) -> None:
        super().__init__(message)
        self.slot = slot
        self.minibatch = minibatch


@dataclass(frozen=True)
class SlotRecord:
    """One execution of a slot: on `processor`, for `minibatch` (the iteration, for flush schedules)."""

    processor: int
    slot: str
    task: str
    minibatch: int
    microbatch: int
    scheduled_cycles: int  # when the schedule says it starts
    start_cycles: int
    end_cycles: int


@dataclass(frozen=True)
class TransferRecord:
    """One hop of a data transfer (or a whole collective when `link` is None and `collective` is set)."""

    src: str  # slot id (or collective id)
    dst: str
    minibatch: int
    link: tuple[int, int] | None
    start_cycles: int
    end_cycles: int
    bytes: int
    collective: bool = False


@dataclass(frozen=True)
class Violation:
    """A slot that ran later than the schedule says (non-strict mode) and why."""

    slot: str
    minibatch: int
    late_cycles: int
    reason: str  # "input" (data not there) or "processor" (previous slot overran) or "weights"


@dataclass(frozen=True)
class SimResult:
    schedule: str
    kind: str
    processors: int
    iterations: int
    period_cycles: int  # what the schedule claims
    simulated_period_cycles: float  # steady state, measured
    makespan_cycles: int  # first start to last end of all iterations (warm-up and drain included)
    steady_first_minibatch: int  # steady-state window: minibatches [steady_first_minibatch, iterations)
    utilisation: tuple[float, ...]  # per processor, busy share of the steady-state window
    compute_cycles_per_iteration: float
    comm_cycles_per_iteration: float  # transfers (latency + occupancy + queueing) and collectives
    comm_fraction: float  # comm / (comm + compute) time
    comm_bytes_per_iteration: int  # bytes that crossed a processor boundary (collectives included)
    comm_bytes_fraction: float  # share of all dependency (and collective) bytes that crossed
    link_utilisation_max: float  # busiest link's busy share of the steady window
    peak_memory_bytes: tuple[int, ...]  # per processor: weights + stashed versions + activations, at its peak
    weight_bytes: tuple[int, ...]  # per processor: one copy of every hosted layer's weights and optimiser state
    peak_stash_bytes: tuple[int, ...]
    peak_activation_bytes: tuple[int, ...]
    gradient_delays: tuple[int, ...]  # observed in the replay (max over the steady window), per layer
    late_slots: int
    max_late_cycles: int
    violations: tuple[Violation, ...]  # the first few, for the report
    events: int  # slot executions + transfer hops + collectives simulated
    wall_s: float
    # bytes x hops every processor put on links per iteration (transfers it sent, its share of collectives, weight
    # broadcasts it sent): what link energy is priced on
    link_bytes_per_processor: tuple[int, ...] = ()
    slot_records: tuple[SlotRecord, ...] = field(default=(), repr=False)
    transfer_records: tuple[TransferRecord, ...] = field(default=(), repr=False)
