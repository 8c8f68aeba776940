"""The project's vocabulary: layers, tasks, task graphs (spikepipe.ir.graph) and schedules (spikepipe.ir.schedule).

Plain, immutable data. Imports nothing of the project except hwmodels (to price a task on a processor).

Layer   one trainable SNN layer: a synaptic op (conv/linear) with what follows it up to the next synaptic op
        (normalisation, LIF neuron, pooling, residual add). Layers are numbered 0..L-1 in topological order.
Task    one training pass of one layer for one minibatch: F (forward), B (input gradient), W (weight gradient);
        a layer without weights (a product of two activations) has F and B only (TaskGraph.kinds).
Slot    one execution of (a part of) a task on a processor inside a schedule.
Period  a schedule repeats every period_cycles; a slot with lag r works in period k on minibatch k - r.
Delay   per layer, the number of weight updates between the version F read and the one applying its gradient.
"""

from spikepipe.ir.graph import (
    Gemm,
    GraphError,
    LayerMemory,
    LayerSpec,
    NeuronSpec,
    PostOp,
    ScheduleError,
    SpikePipeError,
    Task,
    TaskGraph,
    TaskKind,
    VectorWork,
    chain_graph,
    task_cycles,
    task_id,
)
from spikepipe.ir.schedule import (
    Collective,
    Dependency,
    Schedule,
    Slot,
    lower_bound_cycles,
    slot_lag_delays,
)

__all__ = [
    "SpikePipeError",
    "GraphError",
    "ScheduleError",
    "TaskKind",
    "NeuronSpec",
    "PostOp",
    "LayerSpec",
    "Gemm",
    "VectorWork",
    "Task",
    "task_id",
    "task_cycles",
    "LayerMemory",
    "TaskGraph",
    "chain_graph",
    "Slot",
    "Dependency",
    "Collective",
    "Schedule",
    "slot_lag_delays",
    "lower_bound_cycles",
]
