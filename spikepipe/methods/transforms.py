"""TaskGraph transforms: what each memory-saving method does to the work, the edges and the memory of one
minibatch, so the schedulers and the simulator see its cost. `transform(graph, method, **params)` returns a new,
valid graph (every layer keeps F, B and W; acyclic; positive costs).

checkpoint (every=c)
    B_l re-runs F_l's work first (one extra forward: the recomputation). F_l holds only the membrane state at
    the ceil(T/c) checkpoints instead of every timestep's activations; B_l holds the c/T share of the
    activations that one recomputed segment needs until W_l is done.
skipper (every=c, skip=s)
    as checkpoint, but only the kept (c-s)/c of the timesteps are recomputed, backpropagated and enter W:
    the recomputation, B's own work and W's GEMM shrink by that fraction, and so does the segment memory.
ttl (window=k, blocks=...)
    local losses (below) plus truncation in time: windows of k steps run forward and backward in turn, so a
    layer holds k/T of its activations. The per-step backward work of the IIR is unchanged in the cost model
    (the vector unit charges ceil(elements/lanes) * T * ops with no per-step latency); what truncation buys is
    memory, and the local losses cut work.
local (blocks=...)
    each block of layers but the last gets a local classifier on its last layer e (time mean, 2x2 pool, linear):
    its GEMMs join F_e, B_e (with the loss) and W_e, and its weights join layer e's memory. B edges that cross a
    block border are removed and F_e -> B_e added (the local loss), so a block's backward starts as soon as its
    own forward is done; the first layer of every later block no longer computes an input gradient.
bloctrain (blocks=..., hard_fraction=h)
    local, plus a hard-class detector beside each local classifier, and every block after the first sees only
    the hard-class share of the samples: its batch-proportional work and memory scale by h**g for block g.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from math import ceil, prod

from hwmodels import Cluster
from spikepipe.ir import Gemm, LayerMemory, Task, TaskGraph, TaskKind, VectorWork, task_id
from spikepipe.methods.local import HEAD_POOL, partition
from spikepipe.methods.stepped import MethodError

METHODS = ("bptt", "checkpoint", "skipper", "ttl", "local", "bloctrain")


def _elems(shape: Sequence[int]) -> int:
    return int(prod(shape))


def _state_bytes(graph: TaskGraph, layer: int) -> int:
    """Membrane state of one layer at one timestep for the whole minibatch."""
    spec = graph.layers[layer]
    if spec.neuron is None:
        return 0
    return _elems(spec.out_shape) * graph.batch * graph.reference.word_bytes


def _scale_time(v: VectorWork, keep: float) -> VectorWork:
    """Vector work over fewer timesteps (work done once per minibatch is left alone)."""
    if not v.per_batch:
        return v
    if v.timesteps > 1:
        return replace(v, timesteps=max(1, ceil(v.timesteps * keep)))
    return v


def _scale_gemm(g: Gemm, keep: float) -> Gemm:
    # M (F, B) and K (W) hold B*T: fewer timesteps shrink exactly the batch dimension
    return g.scaled(keep)


def _rebuild(graph: TaskGraph, tasks: dict[str, Task], edges: list[tuple[str, str, int]],
             memory: Sequence[LayerMemory] | None = None, suffix: str = "") -> TaskGraph:
    fresh = [replace(t, cycles=0) if (t.gemms or t.vector) else t for t in tasks.values()]
    return TaskGraph(graph.layers, fresh, edges, batch=graph.batch, timesteps=graph.timesteps,
                     memory=memory if memory is not None else graph.memory, reference=graph.reference,
                     name=f"{graph.name}+{suffix}" if suffix else graph.name, layout=graph.layout)


def _tasks(graph: TaskGraph) -> dict[str, Task]:
    return {t.id: t for t in graph.tasks}


def checkpoint(graph: TaskGraph, every: int = 2, skip: int = 0) -> TaskGraph:
    t_total = graph.timesteps
    if not 1 <= every or not 0 <= skip < every:
        raise MethodError(f"need every >= 1 and 0 <= skip < every, got every={every}, skip={skip}")
    keep = (every - skip) / every
    seg = min(every, t_total) / t_total
    tasks = _tasks(graph)
    for layer in range(graph.num_layers):
        f, b, w = (tasks[task_id(k, layer)] for k in TaskKind)
        if not f.gemms and not f.vector:  # a bare-cycle graph: recompute F's cycles, shrink by the kept share
            tasks[b.id] = replace(b, cycles=ceil((f.cycles + b.cycles) * keep))
            tasks[w.id] = replace(w, cycles=max(1, ceil(w.cycles * keep)))
            continue
        recompute_g = tuple(_scale_gemm(g, keep) for g in f.gemms)
        recompute_v = tuple(_scale_time(v, keep) for v in f.vector)
        own_g = tuple(_scale_gemm(g, keep) for g in b.gemms)
        own_v = tuple(_scale_time(v, keep) if v.op != "loss" else v for v in b.vector)
        tasks[b.id] = replace(b, gemms=recompute_g + own_g, vector=recompute_v + own_v,
                              activation_bytes=b.activation_bytes + ceil(f.activation_bytes * seg * keep))
        tasks[f.id] = replace(f, activation_bytes=_state_bytes(graph, layer) * ceil(t_total / every))
        tasks[w.id] = replace(w, gemms=tuple(_scale_gemm(g, keep) for g in w.gemms))
    name = f"ckpt{every}" if not skip else f"skipper{every}-{skip}"
    return _rebuild(graph, tasks, list(graph.edges), suffix=name)


def _head_features(graph: TaskGraph, layer: int) -> int:
    shape = graph.layers[layer].output_shape
    if len(shape) == 3:
        return shape[0] * min(HEAD_POOL, shape[1]) * min(HEAD_POOL, shape[2])
    return _elems(shape)


def local(graph: TaskGraph, blocks: int | Sequence[int] = 2, *, classes: int | None = None,
          detector: bool = False, hard_fraction: float = 1.0, suffix: str = "local") -> TaskGraph:
    n = graph.num_layers
    ranges = partition(n, blocks)
    block_of = [g for g, (a, b) in enumerate(ranges) for _ in range(a, b)]
    classes = classes or _elems(graph.layers[-1].output_shape)
    outs = classes + (1 if detector else 0)  # the detector is one more output column of the same head GEMM
    wb = graph.reference.word_bytes
    batch = graph.batch
    tasks = _tasks(graph)
    memory = list(graph.memory)
    bare = all(not t.gemms and not t.vector for t in tasks.values())
    for _a, b in ranges[:-1] if not bare else ():  # bare-cycle graphs have no shapes to price a classifier
        e = b - 1
        fin = _head_features(graph, e)
        f, bt, w = (tasks[task_id(k, e)] for k in TaskKind)
        pooled = _elems(graph.layers[e].output_shape) * batch
        tasks[f.id] = replace(f, gemms=f.gemms + (Gemm(batch, fin, outs, "m"),),
                              vector=f.vector + (VectorWork("avgpool", pooled, graph.timesteps),))
        tasks[bt.id] = replace(bt, gemms=(Gemm(batch, outs, fin, "m"),) + bt.gemms,
                               vector=(VectorWork("loss", batch * outs, 1),
                                       VectorWork("avgpool_bwd", pooled, graph.timesteps)) + bt.vector)
        tasks[w.id] = replace(w, gemms=w.gemms + (Gemm(fin, batch, outs, "k"),),
                              vector=w.vector + (VectorWork("sgd_update", fin * outs + outs, 1, per_batch=False),))
        head_bytes = (fin * outs + outs) * wb
        m = memory[e]
        memory[e] = LayerMemory(m.weight_bytes + head_bytes,
                                m.optimizer_bytes + head_bytes * (m.optimizer_bytes // max(1, m.weight_bytes)))
    edges = []
    for u, v, nbytes in graph.edges:
        tu, tv = graph.task(u), graph.task(v)
        if tu.kind is TaskKind.B and tv.kind is TaskKind.B and block_of[tu.layer] != block_of[tv.layer]:
            continue  # the gradient stops at the block border
        edges.append((u, v, nbytes))
    for _a, b in ranges[:-1]:
        edges.append((task_id(TaskKind.F, b - 1), task_id(TaskKind.B, b - 1), 0))
    # a block's first layer computes no input gradient when nothing upstream in its block needs it
    for a, _b in ranges[1:]:
        t = tasks[task_id(TaskKind.B, a)]
        if t.gemms and not any(graph.task(v).kind is TaskKind.B and block_of[graph.task(v).layer] == block_of[a]
                               for v in graph.successors(t.id)):
            tasks[t.id] = replace(t, gemms=t.gemms[:-1])  # the input-gradient GEMM is appended last by costs
    if hard_fraction < 1.0:
        for g, (a, b) in enumerate(ranges):
            share = hard_fraction ** g
            for layer in range(a, b):
                for k in TaskKind:
                    tid = task_id(k, layer)
                    tasks[tid] = tasks[tid].scaled(share) if share < 1.0 else tasks[tid]
        edges = [(u, v, ceil(nb * hard_fraction ** block_of[graph.task(v).layer])) for u, v, nb in edges]
    return _rebuild(graph, tasks, edges, memory, suffix=suffix)


def ttl(graph: TaskGraph, window: int = 2, blocks: int | Sequence[int] = 2) -> TaskGraph:
    if window < 1:
        raise MethodError(f"TTL window must be at least 1, got {window}")
    g = local(graph, blocks, suffix=f"ttl{window}")
    share = min(window, graph.timesteps) / graph.timesteps
    tasks = {t.id: replace(t, activation_bytes=ceil(t.activation_bytes * share)) for t in g.tasks}
    return _rebuild(g, tasks, list(g.edges), g.memory)


def aligned(graph: TaskGraph, cluster: Cluster, method: str = "local", stages: int | None = None,
            **params: object) -> tuple[TaskGraph, list[int], bool]:
    """The graph transformed with local-loss blocks equal to the contiguous pipeline stages the schedulers
    (schedules.stages) will choose on it. The local classifiers change the stage costs, so the borders are
    iterated to a fixed point. Returns (graph, borders, aligned?): when the rounds cycle without a fixed point,
    the borders are the last round's and `aligned?` is False (the stages then cut through some blocks)."""
    from schedules.stages import stage_ranges

    cuts = [a for a, _ in stage_ranges(graph, cluster, stages)[1:]]
    h = graph
    for _ in range(6):
        h = transform(graph, method, blocks=cuts, **params)
        new = [a for a, _ in stage_ranges(h, cluster, stages)[1:]]
        if new == cuts:
            return h, cuts, True
        cuts = new
    return h, cuts, False


def transform(graph: TaskGraph, method: str, **params: object) -> TaskGraph:
    """The task graph of one minibatch trained with `method` (see the module docstring for each one)."""
    if method == "bptt":
        return graph
    if method == "checkpoint":
        return checkpoint(graph, int(params.get("every", 2)))  # type: ignore[arg-type]
    if method == "skipper":
        return checkpoint(graph, int(params.get("every", 4)), int(params.get("skip", 1)))  # type: ignore[arg-type]
    if method == "ttl":
        return ttl(graph, int(params.get("window", 2)), params.get("blocks", 2))  # type: ignore[arg-type]
    if method == "local":
        return local(graph, params.get("blocks", 2))  # type: ignore[arg-type]
    if method == "bloctrain":
        h = float(params.get("hard_fraction", 0.5))  # type: ignore[arg-type]
        if not 0.0 < h <= 1.0:
            raise MethodError(f"hard_fraction must be in (0, 1], got {h}")
        return local(graph, params.get("blocks", 2), detector=True, hard_fraction=h,  # type: ignore[arg-type]
                     suffix="bloctrain")
    raise MethodError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
