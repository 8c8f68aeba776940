"""From LayerSpecs to a costed TaskGraph: GEMM lowering, vector work, bytes on edges, memory held.

Per layer l and minibatch of B samples over T timesteps (docs/design.md section 4):
  F_l  synaptic GEMM over B*T (conv lowered: M = B*T*E*F, K = R*S*C_in/groups, N = C_out/groups), then the
       post ops on the vector unit (norm, residual add, LIF forward IIR over T, pooling).
  B_l  post ops backward (pooling, LIF backward through time with the surrogate, add, norm), then the
       input-gradient GEMM with transposed weights, dX[M x K] = dY[M x N] . W^T (skipped when the layer's only
       input is the network input: nobody needs that gradient). The loss is folded into the last layer's B.
  W_l  weight-gradient GEMM dW[K x N] = X^T[K x M] . dY[M x N] (the batch is the reduction) and the update;
       only for a layer with weights. A product of two activations (matmul, mul) or a concatenation has F and B
       only, and its B computes the gradient of every operand (matmul C = A.B: dA = dC.B^T and dB = A^T.dC,
       each with F's MACs).
Bytes: forward edges carry spikes packed as bits when the producer fires, otherwise values at `word_bytes`;
backward edges carry gradients at `word_bytes`; B_l -> W_l carries dY_l (B*T*E*F*C_out words), which costs
nothing when both run on one processor.
AC vs MAC: F_l's and W_l's GEMMs read the layer's input spikes (Gemm.binary_operand = "a" when every producer
fires), B_l's is dense; `ops_split` turns a GEMM into MACs and spike-driven ACs at a measured activity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from math import ceil, prod
from typing import Any

from hwmodels import Cluster, Dataflow, Processor, SystolicArray
from spikepipe.ir import (
    Gemm,
    LayerMemory,
    LayerSpec,
    SpikePipeError,
    Task,
    TaskGraph,
    TaskKind,
    VectorWork,
    task_id,
)
from spikepipe.layer_memory import kept_bytes, kept_items


class CostModelError(SpikePipeError):
    """A layer cannot be costed (bad shapes, unknown op)."""


@dataclass(frozen=True)
class Precision:
    word_bytes: int = 2  # activations, membrane potentials, gradients
    weight_bytes: int = 2
    optimizer_state_words: int = 2  # SGD-momentum: momentum + gradient buffer (Adam: 3)


@dataclass(frozen=True)
class GemmShape:
    m_per_sample_step: int  # M per sample per timestep (E*F for conv, 1 for linear)
    k: int
    n: int
    groups: int


def gemm_shape(layer: LayerSpec) -> GemmShape:
    """The forward GEMM of one sample at one timestep, before multiplying M by B*T."""
    if layer.op == "linear":  # (features,), or (tokens, features) for a Linear applied per token
        if not 1 <= len(layer.in_shape) <= 2 or layer.in_shape[:-1] != layer.out_shape[:-1]:
            raise CostModelError(f"layer {layer.name}: linear layer needs (features,) or (tokens, features) "
                                 f"shapes, got {layer.in_shape} -> {layer.out_shape}")
        rows = layer.in_shape[0] if len(layer.in_shape) == 2 else 1
        return GemmShape(rows, layer.in_shape[-1], layer.out_shape[-1], 1)
    if layer.op == "conv":
        if len(layer.in_shape) != 3 or len(layer.out_shape) != 3:
            raise CostModelError(f"layer {layer.name}: conv layer needs (C, H, W) shapes, got {layer.in_shape}")
        c_in, c_out, g = layer.in_shape[0], layer.out_shape[0], layer.groups
        if c_in % g or c_out % g:
            raise CostModelError(f"layer {layer.name}: channels {c_in}->{c_out} not divisible by groups {g}")
        e, f = layer.out_shape[1], layer.out_shape[2]
        return GemmShape(e * f, layer.kernel[0] * layer.kernel[1] * c_in // g, c_out // g, g)
    if layer.op in ("mul", "concat"):  # element-wise or a copy, on the vector unit: no GEMM
        return GemmShape(0, 0, 0, 1)
    if layer.op == "matmul":  # per sample-step: `heads` products (M x K) . (K x N)
        if len(layer.in_shape) != 3 or len(layer.out_shape) != 3 or layer.in_shape[:2] != layer.out_shape[:2]:
            raise CostModelError(f"layer {layer.name}: matmul needs (heads, M, K) -> (heads, M, N) shapes, got "
                                 f"{layer.in_shape} -> {layer.out_shape}")
        g, m, k = layer.in_shape
        return GemmShape(m, k, layer.out_shape[2], g)
    raise CostModelError(f"layer {layer.name}: unknown op {layer.op!r}")


def forward_macs(layer: LayerSpec, samples: int) -> int:
    """MACs of the synaptic op for `samples` sample-timesteps (the oracle tests compare with torch's counter)."""
    s = gemm_shape(layer)
    return s.m_per_sample_step * samples * s.k * s.n * s.groups


@dataclass(frozen=True)
class OpsSplit:
    """Arithmetic of some GEMMs: dense multiply-accumulates and spike-driven accumulates (expected count)."""

    macs: int = 0
    acs: float = 0.0

    def __add__(self, other: OpsSplit) -> OpsSplit:
        return OpsSplit(self.macs + other.macs, self.acs + other.acs)

    @property
    def total(self) -> float:
        """All operations, multiplies and accumulates alike."""
        return self.macs + self.acs


def ops_split(gemm: Gemm, activity: float | None = None) -> OpsSplit:
    """MACs and ACs of one GEMM (all `groups`). A GEMM whose A operand is binary (`gemm.binary_operand`) does one
    accumulate per non-zero spike and output column: dense MACs x activity ACs. `activity=None` means no
    measurement, the dense model: every operation is a MAC (what the cycle model assumes). Activity 0 gives the
    AC-free bound, 1 the all-AC bound."""
    if gemm.binary_operand is None or activity is None:
        return OpsSplit(gemm.macs, 0.0)
    if not 0.0 <= activity <= 1.0:
        raise CostModelError(f"spike activity must be in [0, 1], got {activity!r}")
    return OpsSplit(0, gemm.macs * activity)


def task_ops_split(task: Task, activity: Sequence[float | None] | None = None, fraction: float = 1.0) -> OpsSplit:
    """MACs and ACs of (a batch fraction of) a task; `activity[l]` is the input-spike activity of layer l (None:
    that layer dense)."""
    a = None if activity is None else activity[task.layer]
    total = OpsSplit()
    for g in task.scaled(fraction).gemms:
        total += ops_split(g, a)
    return total


def graph_ops_split(graph: TaskGraph, activity: Sequence[float | None] | None = None,
                    kinds: Sequence[TaskKind | str] = tuple(TaskKind)) -> OpsSplit:
    """MACs and ACs of one minibatch over the tasks of the given kinds (default F, B and W)."""
    wanted = {TaskKind(k) for k in kinds}
    total = OpsSplit()
    for t in graph.tasks:
        if t.kind in wanted:
            total += task_ops_split(t, activity)
    return total


def zero_skip_gemm(gemm: Gemm, activity: float | None, array: SystolicArray) -> Gemm:
    """The GEMM as an array that skips all-zero streamed steps computes it (the explicit zero-skipping mode; the
    default cycle model stays dense). Model: the array skips a streamed step of a fold when every entry of the
    binary operand A entering in that step is zero, spikes independent at rate `activity`. OS streams K and feeds
    min(R, M) entries of A per step; WS streams M and feeds min(R, K); IS holds A stationary and skips nothing.
    The streamed dimension shrinks to its expected share of steps with a spike, 1 - (1 - a)^entries."""
    if gemm.binary_operand is None or activity is None:
        return gemm
    if array.dataflow is Dataflow.OS:
        dim, entries = "k", min(array.rows, gemm.m)
    elif array.dataflow is Dataflow.WS:
        dim, entries = "m", min(array.rows, gemm.k)
    else:
        return gemm
    busy = 1.0 - (1.0 - activity) ** entries
    return replace(gemm, **{dim: max(1, ceil(getattr(gemm, dim) * busy))})


def zero_skip_graph(graph: TaskGraph, activity: Sequence[float | None]) -> TaskGraph:
    """The task graph with every binary-operand GEMM priced by `zero_skip_gemm` on the graph's reference array
    (for cycles only: energy is counted on the dense graph's work)."""
    array = graph.reference.array
    tasks = []
    for t in graph.tasks:
        gemms = tuple(zero_skip_gemm(g, activity[t.layer], array) for g in t.gemms)
        tasks.append(t if gemms == t.gemms else replace(t, gemms=gemms, cycles=0))
    return TaskGraph(graph.layers, tasks, graph.edges, batch=graph.batch, timesteps=graph.timesteps,
                     memory=graph.memory, reference=graph.reference, name=graph.name)


def _keeps_binary(layer: LayerSpec) -> bool:
    """Whether the spikes survive the post ops after the neuron: an average over more than one input makes values
    between 0 and 1 (a ResNet's global pool before its classifier); max pooling, flattening and an adaptive pool
    whose every window holds one input (e.g. 1x1 -> 7x7) keep them 0 or 1."""
    for p in layer.post_ops:
        if p.kind == "avgpool" and p.kernel != (1, 1):
            return False
        if p.kind == "adaptiveavgpool" and len(p.in_shape) == 3 and len(p.out_shape) == 3:
            for n_in, n_out in zip(p.in_shape[1:], p.out_shape[1:], strict=True):
                if any(-(-(i + 1) * n_in // n_out) - (i * n_in // n_out) > 1 for i in range(n_out)):
                    return False
    return True


def _elems(shape: Sequence[int]) -> int:
    return int(prod(shape))


def _post_vector(layer: LayerSpec, batch: int, timesteps: int, backward: bool) -> list[VectorWork]:
    """Vector work of the post ops, in execution order (reversed for backward)."""
    work: list[VectorWork] = []
    out_e = _elems(layer.out_shape) * batch
    for p in layer.post_ops:
        if p.kind == "scale":
            work.append(VectorWork("scale_bwd" if backward else "scale", _elems(p.in_shape) * batch, timesteps))
        if p.kind in ("batchnorm", "layernorm"):
            work.append(VectorWork(f"{p.kind}_bwd" if backward else f"{p.kind}_fwd", _elems(p.in_shape) * batch,
                                   timesteps))
        elif p.kind == "add":
            work.append(VectorWork(f"{p.kind}_bwd" if backward else p.kind, _elems(p.in_shape) * batch, timesteps))
    n = layer.neuron
    if n is not None:
        # the neuron's recurrence runs sequentially over T: elements per step, T steps (hwmodels.vector per kind)
        ops = n.ops_bwd if backward else n.ops_fwd
        work.append(VectorWork(f"{n.kind}_{'bwd' if backward else 'fwd'}", out_e, timesteps, ops_per_element=ops))
    for p in layer.post_ops:
        if p.kind in ("maxpool", "avgpool", "adaptiveavgpool"):
            op = "maxpool" if p.kind == "maxpool" else "avgpool"
            work.append(VectorWork(f"{op}_bwd" if backward else op, _elems(p.in_shape) * batch, timesteps))
    return list(reversed(work)) if backward else work


def build_task_graph(layers: Sequence[LayerSpec], *, batch: int, timesteps: int, processor: Processor | None = None,
                     name: str = "network", precision: Precision | None = None,
                     layout: Mapping[str, Any] | None = None) -> TaskGraph:
    """The costed task graph of one minibatch of `batch` samples over `timesteps` steps."""
    if batch < 1 or timesteps < 1:
        raise CostModelError(f"batch and timesteps must be positive, got B={batch}, T={timesteps}")
    if not layers:
        raise CostModelError("the network has no trainable (conv/linear) layers")
    proc = processor or Processor()
    prec = precision or Precision(word_bytes=proc.word_bytes, weight_bytes=proc.word_bytes)
    def bt_of(i: int) -> int:
        return batch * (timesteps if layers[i].per_step else 1)
    last = len(layers) - 1
    tasks: list[Task] = []
    edges: list[tuple[str, str, int]] = []
    memory: list[LayerMemory] = []
    # integrators without a spike function (NIR LI, I) send values, not spikes
    fires = [layer.neuron is not None and layer.neuron.kind not in ("li", "integrator") for layer in layers]
    spikes_out = [f and _keeps_binary(layer) for f, layer in zip(fires, layers, strict=True)]

    def out_bytes(i: int) -> int:
        e = _elems(layers[i].output_shape) * bt_of(i)
        return ceil(e / 8) if fires[i] else e * prec.word_bytes

    for layer in layers:
        i = layer.index
        # a layer after a reduction over time (a readout on mean spikes) runs once per sample, not per step
        steps = timesteps if layer.per_step else 1
        bt = batch * steps
        s = gemm_shape(layer)
        m = s.m_per_sample_step * bt
        feeds_from_network_only = all(src < 0 for src in layer.inputs)
        input_spikes = all(src >= 0 and fires[src] for src in layer.inputs)
        # the forward GEMM (A = X) and the weight-gradient GEMM (A = X^T) read the input spikes; B's is dense
        binary = "a" if all(src >= 0 and spikes_out[src] for src in layer.inputs) else None
        fwd = Gemm(m, s.k, s.n, "m", s.groups, binary)
        # F
        f_vec = _post_vector(layer, batch, steps, backward=False)
        # an element-wise product or a concatenation of layers' outputs: vector work only (a product, a copy)
        product = layer.op in ("mul", "concat")
        vop = "mul" if layer.op == "mul" else "copy"
        if product:
            f_vec.insert(0, VectorWork(vop, _elems(layer.out_shape) * batch, steps))
        # kept for B and W, item by item (spikepipe.layer_memory: spikes as bits, u_t, BN input, pool winners)
        saved = kept_bytes(kept_items(layer, fires, batch=batch, timesteps=steps, word_bytes=prec.word_bytes,
                                      last=i == last))
        # a product of two activations keeps its second operand too (for the gradient of the first)
        second = (s.groups * s.k * s.n * bt if layer.op == "matmul" else
                  _elems(layer.in_shape) * bt if layer.op == "mul" else 0)
        saved += ceil(second / 8) if input_spikes else second * prec.word_bytes
        tasks.append(Task(task_id(TaskKind.F, i), i, TaskKind.F, () if product else (fwd,), tuple(f_vec),
                          activation_bytes=saved))
        # B
        b_vec = _post_vector(layer, batch, steps, backward=True)
        if i == last:
            b_vec.insert(0, VectorWork("loss", _elems(layer.output_shape) * batch, 1))
        b_gemms = () if feeds_from_network_only else (Gemm(m, s.n, s.k, "m", s.groups),)
        if layer.op == "matmul":  # C = A B: dA = dC B^T and dB = A^T dC, per sample-step (batch in M)
            b_gemms = (Gemm(m, s.n, s.k, "m", s.groups), Gemm(s.k * bt, s.m_per_sample_step, s.n, "m", s.groups))
        elif product:  # mul: dA = dC * B and dB = dC * A; concat: the gradient split back (a copy)
            b_gemms = ()
            b_vec.append(VectorWork("mul_bwd" if vop == "mul" else "copy", _elems(layer.out_shape) * batch, steps))
        tasks.append(Task(task_id(TaskKind.B, i), i, TaskKind.B, b_gemms, tuple(b_vec)))
        # W: only a layer with weights has one (a product of activations learns nothing: no W task at all)
        weights = layer.weight_count
        if layer.has_weights:
            w_gemm = Gemm(s.k, m, s.n, "k", s.groups, binary)
            tasks.append(Task(task_id(TaskKind.W, i), i, TaskKind.W, (w_gemm,),
                              (VectorWork("sgd_update", weights, 1, per_batch=False),)))
        # affine parameters: per channel for batchnorm, per element of the last dim for layernorm
        norm_params = sum(2 * (p.in_shape[0] if p.kind == "batchnorm" else p.in_shape[-1])
                          for p in layer.post_ops if p.kind in ("batchnorm", "layernorm"))
        wb = (weights + norm_params) * prec.weight_bytes
        memory.append(LayerMemory(wb, wb * prec.optimizer_state_words))
        # edges
        srcs = {src for src in layer.inputs if src >= 0}
        srcs |= {p.source for p in layer.post_ops if p.kind == "add" and p.source is not None and p.source >= 0}
        for src in sorted(srcs):
            if src >= i:
                raise CostModelError(f"layer {layer.name} reads layer {src}, which is not earlier")
            grad = _elems(layers[src].output_shape) * bt_of(src) * prec.word_bytes
            edges.append((task_id(TaskKind.F, src), task_id(TaskKind.F, i), out_bytes(src)))
            edges.append((task_id(TaskKind.B, i), task_id(TaskKind.B, src), grad))
        # W needs dY, the gradient at the synaptic op's output (free when W runs where B ran). It also needs the
        # input X that F saved; the contract has no F->W edge, so X is counted in F's activation_bytes only.
        if layer.has_weights:
            edges.append((task_id(TaskKind.B, i), task_id(TaskKind.W, i), m * s.n * s.groups * prec.word_bytes))
    # the loss (folded into B_last) reads the last layer's output over all T
    edges.append((task_id(TaskKind.F, last), task_id(TaskKind.B, last), out_bytes(last)))
    return TaskGraph(layers, tasks, edges, batch=batch, timesteps=timesteps, memory=memory, reference=proc,
                     name=name, layout=layout)


def layer_weight_bytes(graph: TaskGraph, cluster: Cluster, layer: int) -> LayerMemory:
    """The weight and optimiser-state bytes of one layer as the replay holds them (weights at the word size when
    the graph does not say): the memory tracker and the energy model both read it here."""
    mem = graph.memory[layer]
    wb = mem.weight_bytes or graph.layers[layer].weight_count * cluster.processors[0].word_bytes
    return LayerMemory(wb, mem.optimizer_bytes)
