"""TaskGraph transforms: what each memory-saving method does to the work, the edges and the memory of one
minibatch, so the schedulers and the simulator see its cost. `transform(graph, method, **params)` returns a new,
valid graph (every layer keeps its tasks: F and B, and W when it has weights; a local classifier on a layer
without weights gives it a W task for the classifier's weights; acyclic; positive costs).

checkpoint (checkpoint_every=c; default ceil(sqrt(T)), registry.MethodOptions)
    B_l re-runs F_l's work first (one extra forward: the recomputation). F_l holds only the membrane state at
    the ceil(T/c) - 1 non-zero checkpoints instead of every timestep's activations; B_l holds one recomputed
    segment's share of the activations (and the start-state gradient passed on) until W_l is done.
skipper (checkpoint_every=c, skip=s; default s = c // 2)
    as checkpoint, but only the kept steps of every segment (registry.segments, the steps the trainer runs)
    are recomputed, backpropagated and enter W: recomputation, B's own work and W's GEMM cover exactly those.
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
    the hard-class share of the samples: its batch-proportional work and memory scale by h**g for block g. All
    blocks at once in one graph: a bound, not the trainer's schedule (block g+1's classes are known only after
    block g trained). `simulate`, `compare` and `sweep` schedule BlocTrain's phases instead (methods.phases
    builds a task graph per phase, methods.phased schedules and combines them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from math import ceil, prod

from hwmodels import Cluster
from spikepipe.ir import Gemm, LayerMemory, Task, TaskGraph, TaskKind, VectorWork, task_id
from spikepipe.methods.local import BLOCTRAIN_HEAD_POOL, HEAD_POOL, head_features, head_input_shape, partition
from spikepipe.methods.registry import TRANSFORM_METHODS as METHODS  # noqa: F401 - re-exported
from spikepipe.methods.registry import MethodOptions, segments
from spikepipe.methods.stepped import MethodError


def _elems(shape: Sequence[int]) -> int:
    return int(prod(shape))


def _state_bytes(graph: TaskGraph, layer: int) -> int:
    """Membrane state of one layer at one timestep for the whole minibatch."""
    spec = graph.layers[layer]
    if spec.neuron is None:
        return 0
    return _elems(spec.out_shape) * graph.batch * graph.reference.word_bytes


def _steps_vector(v: VectorWork, kept: int, t_total: int) -> VectorWork:
    """Vector work over `kept` of the T timesteps (work done once per minibatch, or not over T, is left alone)."""
    if not v.per_batch or v.timesteps != t_total:
        return v
    return replace(v, timesteps=kept)


def _steps_gemm(g: Gemm, kept: int, t_total: int) -> Gemm:
    """The GEMM over `kept` of the T timesteps: M (F, B) or K (W) holds B*T*E*F, exactly divisible by T."""
    dim = getattr(g, g.batch_dim)
    return replace(g, **{g.batch_dim: max(1, -(-dim * kept // t_total))})


def _rebuild(graph: TaskGraph, tasks: dict[str, Task], edges: list[tuple[str, str, int]],
             memory: Sequence[LayerMemory] | None = None, suffix: str = "") -> TaskGraph:
    fresh = [replace(t, cycles=0) if (t.gemms or t.vector) else t for t in tasks.values()]
    return TaskGraph(graph.layers, fresh, edges, batch=graph.batch, timesteps=graph.timesteps,
                     memory=memory if memory is not None else graph.memory, reference=graph.reference,
                     name=f"{graph.name}+{suffix}" if suffix else graph.name, layout=graph.layout)


def _tasks(graph: TaskGraph) -> dict[str, Task]:
    return {t.id: t for t in graph.tasks}


def without_input_gradient(graph: TaskGraph, b: Task) -> Task:
    """B without the input-gradient GEMMs, which costs appends last: one, or one per operand for a product of two
    activations (matmul)."""
    n = 2 if graph.layers[b.layer].op == "matmul" else 1
    return replace(b, gemms=b.gemms[:max(0, len(b.gemms) - n)])


def anchor_backward(tasks: dict[str, Task], edges: list[tuple[str, str, int]]) -> None:
    """Add F_l -> B_l for every B left without a predecessor: a layer whose outputs only feed later blocks (V of an
    attention block cut after Q K^T) gets no gradient back across the border, but its B still reads what its F
    saved, so it cannot run before F (the edge is implied through the loss in the whole graph)."""
    fed = {v for _, v, _ in edges}
    for t in list(tasks.values()):
        if t.kind is TaskKind.B and t.id not in fed:
            edges.append((task_id(TaskKind.F, t.layer), t.id, 0))


def weight_task(tasks: dict[str, Task], edges: list[tuple[str, str, int]], layer: int) -> Task:
    """Layer `layer`'s W task. A layer without weights has none; a local classifier on its output brings weights
    to learn, so it gets a W task without work (the caller adds the classifier's GEMM) and the edge B -> W."""
    wid = task_id(TaskKind.W, layer)
    if wid not in tasks:
        tasks[wid] = Task(wid, layer, TaskKind.W)
        edges.append((task_id(TaskKind.B, layer), wid, 0))
    return tasks[wid]


def checkpoint(graph: TaskGraph, every: int, skip: int = 0, carry: bool = False) -> TaskGraph:
    """Checkpointing (skip 0) or Skipper, pricing exactly the steps the trainer recomputes (registry.segments)."""
    t_total = graph.timesteps
    segs = segments(t_total, every, skip)
    kept = sum(sg.kept for sg in segs)
    longest = max(sg.kept for sg in segs)
    tasks = _tasks(graph)
    for layer in range(graph.num_layers):
        f, b = (tasks[task_id(k, layer)] for k in (TaskKind.F, TaskKind.B))
        w = tasks.get(task_id(TaskKind.W, layer))  # None: a layer without weights
        if not f.gemms and not f.vector:  # a bare-cycle graph: recompute F's cycles, shrink by the kept share
            tasks[b.id] = replace(b, cycles=ceil((f.cycles + b.cycles) * kept / t_total))
            if w is not None:
                tasks[w.id] = replace(w, cycles=max(1, ceil(w.cycles * kept / t_total)))
            continue
        recompute_g = tuple(_steps_gemm(g, kept, t_total) for g in f.gemms)
        recompute_v = tuple(_steps_vector(v, kept, t_total) for v in f.vector)
        own_g = tuple(_steps_gemm(g, kept, t_total) for g in b.gemms)
        own_v = tuple(_steps_vector(v, kept, t_total) for v in b.vector)
        # held for the backward: the checkpoints (the first is the zero state) until their segment is done, the
        # start-state gradient handed to the earlier segment when it is used, and one segment's activations
        handed = _state_bytes(graph, layer) if (skip == 0 or carry) and len(segs) > 1 else 0
        tasks[b.id] = replace(b, gemms=recompute_g + own_g, vector=recompute_v + own_v,
                              activation_bytes=b.activation_bytes + handed
                              + ceil(f.activation_bytes * longest / t_total))
        tasks[f.id] = replace(f, activation_bytes=_state_bytes(graph, layer) * (len(segs) - 1))
        if w is not None:
            tasks[w.id] = replace(w, gemms=tuple(_steps_gemm(g, kept, t_total) for g in w.gemms))
    name = f"ckpt{every}" if not skip else f"skipper{every}-{skip}" + ("c" if carry else "")
    return _rebuild(graph, tasks, list(graph.edges), suffix=name)


def _head_features(graph: TaskGraph, layer: int, pool: int) -> int:
    return head_features(head_input_shape(graph.layers[layer]), pool)


def local(graph: TaskGraph, blocks: int | Sequence[int] = 2, *, classes: int | None = None,
          detector: bool = False, hard_fraction: float = 1.0, suffix: str = "local",
          pool: int = HEAD_POOL) -> TaskGraph:
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
    edges = [(u, v, nbytes) for u, v, nbytes in graph.edges]
    for _a, b in ranges[:-1] if not bare else ():  # bare-cycle graphs have no shapes to price a classifier
        e = b - 1
        fin = _head_features(graph, e, pool)
        f, bt = (tasks[task_id(k, e)] for k in (TaskKind.F, TaskKind.B))
        w = weight_task(tasks, edges, e)
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
    # the gradient stops at the block border: B edges across it are gone
    def crosses(u: str, v: str) -> bool:
        return tasks[u].kind is tasks[v].kind is TaskKind.B and block_of[tasks[u].layer] != block_of[tasks[v].layer]

    edges = [(u, v, nbytes) for u, v, nbytes in edges if not crosses(u, v)]
    for _a, b in ranges[:-1]:
        edges.append((task_id(TaskKind.F, b - 1), task_id(TaskKind.B, b - 1), 0))
    anchor_backward(tasks, edges)
    # a block's first layer computes no input gradient when nothing upstream in its block needs it
    for a, _b in ranges[1:]:
        t = tasks[task_id(TaskKind.B, a)]
        if t.gemms and not any(graph.task(v).kind is TaskKind.B and block_of[graph.task(v).layer] == block_of[a]
                               for v in graph.successors(t.id)):
            tasks[t.id] = without_input_gradient(graph, t)
    if hard_fraction < 1.0:
        for g, (a, b) in enumerate(ranges):
            share = hard_fraction ** g
            for layer in range(a, b):
                for tid in [task_id(k, layer) for k in TaskKind if task_id(k, layer) in tasks]:
                    tasks[tid] = tasks[tid].scaled(share) if share < 1.0 else tasks[tid]
        edges = [(u, v, ceil(nb * hard_fraction ** block_of[tasks[v].layer])) for u, v, nb in edges]
    return _rebuild(graph, tasks, edges, memory, suffix=suffix)


def ttl(graph: TaskGraph, window: int = 2, blocks: int | Sequence[int] = 2) -> TaskGraph:
    if window < 1:
        raise MethodError(f"TTL window must be at least 1, got {window}")
    g = local(graph, blocks, suffix=f"ttl{window}")
    share = min(window, graph.timesteps) / graph.timesteps
    tasks = {t.id: replace(t, activation_bytes=ceil(t.activation_bytes * share)) for t in g.tasks}
    return _rebuild(g, tasks, list(g.edges), g.memory)


@dataclass(frozen=True)
class AlignedGraph:
    """`aligned`'s answer: the transformed graph, its block borders (the first layer of every block after the
    first) and whether they are the stages' borders (False: the rounds cycled, the stages cut through blocks)."""

    graph: TaskGraph
    borders: tuple[int, ...]
    aligned: bool


def aligned(graph: TaskGraph, cluster: Cluster, method: str = "local", stages: int | None = None,
            **params: object) -> AlignedGraph:
    """The graph transformed with local-loss blocks equal to the contiguous pipeline stages the schedulers
    (schedules.stages) will choose on it. The local classifiers change the stage costs, so the borders are
    iterated to a fixed point; when the rounds cycle without one, the borders are the last round's and
    `aligned` is False (the stages then cut through some blocks)."""
    from schedules.stages import stage_ranges

    cuts = [a for a, _ in stage_ranges(graph, cluster, stages)[1:]]
    h = graph
    for _ in range(6):
        h = transform(graph, method, blocks=cuts, **params)
        new = [a for a, _ in stage_ranges(h, cluster, stages)[1:]]
        if new == cuts:
            return AlignedGraph(h, tuple(cuts), True)
        cuts = new
    return AlignedGraph(h, tuple(cuts), False)


def transform(graph: TaskGraph, method: str | MethodOptions, **params: object) -> TaskGraph:
    """The task graph of one minibatch trained with `method` (see the module docstring for each one); the
    parameters and their defaults are registry.MethodOptions', the same the trainer uses."""
    opts = method if isinstance(method, MethodOptions) else MethodOptions.of(method, **params)
    t = graph.timesteps
    if opts.name == "bptt":
        return graph
    if opts.name in ("checkpoint", "skipper"):
        return checkpoint(graph, opts.every(t), opts.skipped(t), carry=opts.skipper_gradient == "carry")
    if opts.name == "ttl":
        return ttl(graph, opts.window, opts.blocks)
    if opts.name == "local":
        return local(graph, opts.blocks)
    return local(graph, opts.blocks, detector=True, hard_fraction=opts.hard_fraction, suffix="bloctrain",
                 pool=BLOCTRAIN_HEAD_POOL)
