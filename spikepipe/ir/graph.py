"""The vocabulary of workloads: layers, tasks and task graphs (schedules: spikepipe.ir.schedule).

Plain, immutable data; the words (layer, task, slot, period, delay) are defined in spikepipe.ir.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from math import ceil
from typing import Any, Literal

import networkx as nx

from hwmodels import Processor


class SpikePipeError(Exception):
    """Base of the project's typed errors. The CLI turns these into one `error:` line and exit status 2."""


class GraphError(SpikePipeError):
    """A task graph is malformed (cycle, missing task, non-positive cost)."""


class ScheduleError(SpikePipeError):
    """A schedule is invalid; the message carries the schedule grid with the failing slot marked."""


class TaskKind(StrEnum):
    F = "F"
    B = "B"
    W = "W"


# ---------------------------------------------------------------- layers


@dataclass(frozen=True)
class NeuronSpec:
    """LIF neuron attached after a layer's synaptic op. u_t = beta*u_{t-1} + x_t; spike when u crosses threshold."""

    beta: float = 0.9
    threshold: float = 1.0
    reset: Literal["subtract", "zero"] = "subtract"
    surrogate: str = "atan"
    learn_beta: bool = False
    fire_on_equal: bool = False  # SpingJelly fires at u >= threshold, snnTorch and ours at u > threshold
    # which state update (hwmodels.vector prices "<kind>_fwd" / "<kind>_bwd"): lif, if, plif, lapicque, synaptic,
    # alpha; "neuron" is a measured one whose ops per element per step are ops_fwd / ops_bwd
    kind: str = "lif"
    state_vars: int = 1  # state values per neuron kept per step for BPTT (membrane, synaptic current, ...)
    alpha: float = 0.0  # synaptic-current decay (snnTorch Synaptic / Alpha)
    ops_fwd: int = 0
    ops_bwd: int = 0


@dataclass(frozen=True)
class PostOp:
    """A stateless op folded into a layer (costed on the vector unit). `kind` in
    batchnorm, maxpool, avgpool, adaptiveavgpool, dropout, flatten, add. Shapes are per sample per timestep."""

    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    source: int | None = None  # for "add": the layer whose output is added (-1: the network input)


@dataclass(frozen=True)
class LayerSpec:
    """One trainable layer. Shapes are per sample per timestep: (C, H, W) for conv, (F,) for linear."""

    index: int
    name: str  # module path of the synaptic op, e.g. "layers.3.conv"
    # "matmul": a product of two activations (spiking self-attention), shapes (heads, M, K) -> (heads, M, N),
    # with no weights: its inputs are the two operands' layers (one if both come from the same layer)
    # "mul": an element-wise product of two layers' outputs (Spike-driven Transformer), "concat": a
    # concatenation of several (along channels): both vector work only, no weights
    op: Literal["conv", "linear", "matmul", "mul", "concat"]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]  # of the synaptic op itself (before post ops)
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    bias: bool = False
    neuron: NeuronSpec | None = None
    post_ops: tuple[PostOp, ...] = ()
    inputs: tuple[int, ...] = (-1,)  # layers feeding the synaptic op; -1 is the network input
    # module paths that make up the layer in the user's model (synaptic op, its neuron, norm / pool modules it
    # owns), in call order: the trainer reads which parameters belong to which layer from these
    modules: tuple[str, ...] = ()
    # False: the layer runs once per sample, after a reduction over time (a readout on spikes averaged over T)
    per_step: bool = True

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape after post ops: what the next layer receives."""
        return self.post_ops[-1].out_shape if self.post_ops else self.out_shape

    @property
    def has_weights(self) -> bool:
        """False for a product of two activations, an element-wise product or a concatenation: nothing to learn."""
        return self.op not in ("matmul", "mul", "concat")

    @property
    def kinds(self) -> tuple[TaskKind, ...]:
        """The tasks the cost model gives this layer: F, B and W, or F and B only for a layer without weights
        (no weight gradient, no update, no gradient delay; docs/design.md section 4.1)."""
        return tuple(TaskKind) if self.has_weights else (TaskKind.F, TaskKind.B)

    @property
    def weight_count(self) -> int:
        if not self.has_weights:
            return 0
        if self.op == "linear":  # (features,) or (tokens, features): the weights see the features
            c_in, c_out = self.in_shape[-1], self.out_shape[-1]
            return c_in * c_out + (c_out if self.bias else 0)
        c_in, c_out = self.in_shape[0], self.out_shape[0]
        return c_out * (c_in // self.groups) * self.kernel[0] * self.kernel[1] + (c_out if self.bias else 0)

    @property
    def skip_sources(self) -> tuple[int, ...]:
        """Layers whose outputs reach this layer other than by plain chaining (inputs and residual adds)."""
        srcs = [i for i in self.inputs if i != self.index - 1 and i >= 0]
        srcs += [p.source for p in self.post_ops if p.kind == "add" and p.source is not None and p.source >= 0]
        return tuple(sorted(set(srcs)))


# ---------------------------------------------------------------- work and tasks


@dataclass(frozen=True)
class Gemm:
    """C[m x n] = A[m x k] . B[k x n] for the whole minibatch. `batch_dim` names the dimension proportional to it
    (m for F and B, k for W, where the batch is the reduction); scaling a task to a micro-batch scales only that."""

    m: int
    k: int
    n: int
    batch_dim: Literal["m", "k", "n"] = "m"
    groups: int = 1  # grouped convolutions run `groups` independent GEMMs of this shape
    # "a" when the A operand is a binary spike tensor (the task's layer's input spikes): such a GEMM performs
    # accumulates (AC) at the measured spike activity instead of MACs (costs.ops_split); cycles stay dense
    binary_operand: Literal["a"] | None = None

    def scaled(self, fraction: float) -> Gemm:
        if fraction == 1.0:
            return self
        dim = max(1, ceil(getattr(self, self.batch_dim) * fraction))
        return replace(self, **{self.batch_dim: dim})

    @property
    def macs(self) -> int:
        return self.m * self.k * self.n * self.groups


@dataclass(frozen=True)
class VectorWork:
    """Element-wise work on the vector unit: `elements` values (whole minibatch, batch-proportional) per step,
    over `timesteps` sequential steps."""

    op: str
    elements: int
    timesteps: int = 1
    per_batch: bool = True  # False for work done once per minibatch whatever its size (the optimiser update)
    ops_per_element: int = 0  # > 0: ops per element per step given here (a measured neuron), not by the unit

    def scaled(self, fraction: float) -> VectorWork:
        if fraction == 1.0 or not self.per_batch:
            return self
        return replace(self, elements=max(1, ceil(self.elements * fraction)))


@dataclass(frozen=True)
class Task:
    id: str  # "F3", "B3", "W3"
    layer: int
    kind: TaskKind
    gemms: tuple[Gemm, ...] = ()
    vector: tuple[VectorWork, ...] = ()
    cycles: int = 0  # on the graph's reference processor, whole minibatch
    # memory: held from this task's end until the layer's W of the same minibatch ends (its B for a layer without
    # W) (saved activations, membrane potentials, spikes for BPTT); batch-proportional.
    activation_bytes: int = 0

    def scaled(self, fraction: float) -> Task:
        return replace(
            self,
            gemms=tuple(g.scaled(fraction) for g in self.gemms),
            vector=tuple(v.scaled(fraction) for v in self.vector),
            activation_bytes=ceil(self.activation_bytes * fraction),
        )


def task_id(kind: TaskKind | str, layer: int) -> str:
    return f"{TaskKind(kind).value}{layer}"


def task_cycles(task: Task, processor: Processor, fraction: float = 1.0) -> int:
    """Cycles of (a batch fraction of) a task on a processor, priced from its work, not from `task.cycles`."""
    if not task.gemms and not task.vector:  # a bare-cycles task (synthetic graphs) costs the same everywhere
        return max(1, ceil(task.cycles * fraction))
    t = task.scaled(fraction)
    total = 0
    for g in t.gemms:
        total += g.groups * processor.gemm_cycles(g.m, g.k, g.n)
    for v in t.vector:
        total += processor.vector.cycles(v.op, v.elements, v.timesteps, ops=v.ops_per_element or None)
    return max(1, total)


@dataclass(frozen=True)
class LayerMemory:
    weight_bytes: int  # parameters
    optimizer_bytes: int  # optimiser state (momentum / Adam moments) and the gradient buffer


class TaskGraph:
    """The workload: tasks of every layer for one minibatch, with data edges carrying bytes.

    Immutable after construction (build a new one to change it). Backed by a networkx DiGraph whose nodes are
    task ids with attribute `task`, and whose edges have attribute `bytes` (batch-proportional).
    """

    def __init__(
        self,
        layers: Sequence[LayerSpec],
        tasks: Iterable[Task],
        edges: Iterable[tuple[str, str, int]],
        *,
        batch: int,
        timesteps: int,
        memory: Sequence[LayerMemory] | None = None,
        reference: Processor | None = None,
        name: str = "network",
        validate: bool = True,
        layout: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        # how the front end found T and B ({"layout": "multi-step", "timesteps_source": ..., ...}); reported
        # beside timesteps and batch wherever they are
        self.layout: dict[str, Any] = dict(layout or {})
        self.layers: tuple[LayerSpec, ...] = tuple(layers)
        self.batch = batch
        self.timesteps = timesteps
        self.reference = reference or Processor()
        self.memory: tuple[LayerMemory, ...] = tuple(memory) if memory is not None else tuple(
            LayerMemory(0, 0) for _ in self.layers
        )
        g = nx.DiGraph()
        for t in tasks:
            if t.id in g:
                raise GraphError(f"duplicate task id {t.id!r}")
            if t.cycles <= 0 and (t.gemms or t.vector):
                t = replace(t, cycles=task_cycles(t, self.reference))
            g.add_node(t.id, task=t)
        for src, dst, nbytes in edges:
            for end in (src, dst):
                if end not in g:
                    raise GraphError(f"edge {src}->{dst} names unknown task {end!r}")
            g.add_edge(src, dst, bytes=int(nbytes))
        self._g = g
        self._topo: tuple[str, ...] | None = None
        # task_cycles by (task, processor, fraction): the graph is immutable, and the flush schedules price the
        # same micro-batch slices thousands of times (zero-bubble on resnet18 at P=8: 38,000 calls for 315
        # distinct prices)
        self._priced: dict[tuple[str, Processor, float], int] = {}
        # the kinds of every layer's tasks, in F, B, W order: a layer without weights has no W task
        present = {(d["task"].layer, d["task"].kind) for _, d in g.nodes(data=True)}
        self._kinds: tuple[tuple[TaskKind, ...], ...] = tuple(
            tuple(k for k in TaskKind if (layer, k) in present) for layer in range(len(self.layers)))
        if validate:
            self.validate()

    # -- read access
    @property
    def nx(self) -> nx.DiGraph:
        """A copy of the underlying graph (callers may mutate it freely)."""
        return self._g.copy()

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def kinds(self, layer: int) -> tuple[TaskKind, ...]:
        """The kinds of layer `layer`'s tasks in F, B, W order: (F, B, W), or (F, B) for a layer without W."""
        return self._kinds[layer]

    def has_task(self, layer: int, kind: TaskKind | str) -> bool:
        """Whether the layer has a task of this kind (every layer has F and B; W only a layer with weights)."""
        return TaskKind(kind) in self._kinds[layer]

    def tasks_of(self, layer: int) -> tuple[Task, ...]:
        """The layer's tasks in F, B, W order."""
        return tuple(self.task(task_id(k, layer)) for k in self._kinds[layer])

    @property
    def weightless_layers(self) -> tuple[int, ...]:
        """Layers without a W task: no weight gradient, no update, gradient delay 0."""
        return tuple(i for i, ks in enumerate(self._kinds) if TaskKind.W not in ks)

    def task(self, tid: str) -> Task:
        try:
            return self._g.nodes[tid]["task"]
        except KeyError:
            raise GraphError(f"no task {tid!r}") from None

    @property
    def tasks(self) -> tuple[Task, ...]:
        return tuple(self.task(t) for t in self.topological_order())

    @property
    def edges(self) -> tuple[tuple[str, str, int], ...]:
        return tuple((u, v, d["bytes"]) for u, v, d in self._g.edges(data=True))

    def predecessors(self, tid: str) -> tuple[str, ...]:
        return tuple(self._g.predecessors(tid))

    def successors(self, tid: str) -> tuple[str, ...]:
        return tuple(self._g.successors(tid))

    def edge_bytes(self, src: str, dst: str) -> int:
        return self._g.edges[src, dst]["bytes"]

    def topological_order(self) -> tuple[str, ...]:
        """Deterministic: lexicographic topological sort by (kind order, layer)."""
        if self._topo is None:
            rank = {"F": 0, "B": 1, "W": 2}

            def key(tid: str) -> tuple[int, int]:
                t = self._g.nodes[tid]["task"]
                return (rank[t.kind.value], t.layer if t.kind is TaskKind.F else -t.layer)

            self._topo = tuple(nx.lexicographical_topological_sort(self._g, key=key))
        return self._topo

    def cycles(self, tid: str, processor: Processor | None = None, fraction: float = 1.0) -> int:
        t = self.task(tid)
        if (processor is None or processor == self.reference) and fraction == 1.0:
            return t.cycles
        key = (tid, processor or self.reference, fraction)
        out = self._priced.get(key)
        if out is None:
            out = self._priced[key] = task_cycles(t, key[1], fraction)
        return out

    def total_cycles(self, processor: Processor | None = None) -> int:
        return sum(self.cycles(t, processor) for t in self._g.nodes)

    def weight_bytes(self, layer: int) -> int:
        return self.memory[layer].weight_bytes

    # -- checks
    def validate(self) -> None:
        g = self._g
        if not nx.is_directed_acyclic_graph(g):
            cycle = nx.find_cycle(g)
            raise GraphError(f"task graph has a cycle: {' -> '.join(u for u, _ in cycle)}")
        for tid, data in g.nodes(data=True):
            t = data["task"]
            if t.id != tid or t.id != task_id(t.kind, t.layer):
                raise GraphError(f"task id {tid!r} does not match its kind and layer ({t.kind.value}{t.layer})")
            if t.cycles <= 0:
                raise GraphError(f"task {tid} has non-positive cost {t.cycles}")
            if not 0 <= t.layer < max(1, len(self.layers)):
                raise GraphError(f"task {tid} names layer {t.layer}, graph has {len(self.layers)}")
        for layer, spec in enumerate(self.layers):
            # a layer with weights has F, B and W; one without (spiking attention's products) F and B, and a W only
            # if a method gives it weights to learn (a local classifier on its output)
            for kind in spec.kinds:
                if task_id(kind, layer) not in g:
                    raise GraphError(f"layer {layer} ({spec.name}) has no {kind.value} task")
        for u, v, d in g.edges(data=True):
            if d["bytes"] < 0:
                raise GraphError(f"edge {u}->{v} has negative bytes {d['bytes']}")

    # -- serialisation
    def to_dict(self, processor: Processor | None = None) -> dict[str, Any]:
        tasks = []
        for tid in self.topological_order():
            t = self.task(tid)
            tasks.append({
                "id": t.id,
                "layer": t.layer,
                "layer_name": self.layers[t.layer].name if self.layers else "",
                "kind": t.kind.value,
                "cycles": self.cycles(tid, processor),
                "macs": sum(g.macs for g in t.gemms),
                "activation_bytes": t.activation_bytes,
            })
        edges = [{"src": u, "dst": v, "bytes": b} for u, v, b in self.edges]
        return {"network": self.name, "batch": self.batch, "timesteps": self.timesteps, **self.layout_info(),
                "tasks": tasks, "edges": edges}

    def layout_info(self) -> dict[str, Any]:
        """How T and B were found (empty for graphs not built by the front end)."""
        return {k: v for k, v in self.layout.items() if k not in ("timesteps", "batch")}

    def __repr__(self) -> str:
        return f"TaskGraph({self.name!r}, layers={len(self.layers)}, tasks={self._g.number_of_nodes()})"


def chain_graph(costs: Sequence[tuple[int, ...]], edge_bytes: int = 0, *, name: str = "chain",
                batch: int = 1, timesteps: int = 1) -> TaskGraph:
    """A bare layer chain with given (F, B, W) cycles per layer: for tests and synthetic workloads. A layer given
    as (F, B) has no weights and no W task (a product of two activations, LayerSpec op "mul").

    Tasks carry no work, only cycles, so they cost the same on every processor and cannot be micro-batched
    faithfully (a fraction f of a task is priced as ceil(f * cycles)).
    """
    tasks, edges = [], []
    n = len(costs)
    for layer, c in enumerate(costs):
        if len(c) not in (2, 3):
            raise GraphError(f"chain layer {layer}: give (F, B, W) or (F, B) cycles, got {tuple(c)}")
        for kind, cyc in zip(TaskKind, c, strict=False):
            tasks.append(Task(task_id(kind, layer), layer, kind, cycles=int(cyc)))
        if layer + 1 < n:
            edges.append((task_id("F", layer), task_id("F", layer + 1), edge_bytes))
            edges.append((task_id("B", layer + 1), task_id("B", layer), edge_bytes))
        if len(c) == 3:
            edges.append((task_id("B", layer), task_id("W", layer), 0))
    if n:
        edges.append((task_id("F", n - 1), task_id("B", n - 1), 0))
    layers = [LayerSpec(i, f"layer{i}", "linear" if len(c) == 3 else "mul", (1,), (1,), inputs=(i - 1,))
              for i, c in enumerate(costs)]
    return TaskGraph(layers, tasks, edges, batch=batch, timesteps=timesteps, name=name)
