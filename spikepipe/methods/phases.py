"""BlocTrain's training as the sequence of task graphs its phases really run (the trainer's schedule).

Phase g is a network of layers 0 .. b_g - 1 (the later blocks do not exist for it yet):
  frozen layers (blocks before g)  forward only, on every sample of the minibatch (the hard-class detector of
                                   block g-1 trains on all of them); they keep nothing for a backward. Their B and
                                   W tasks do no work (1-cycle placeholders: the task graph keeps every layer's
                                   tasks; a layer without weights has no W, frozen or not).
  block g                          forward, backward and weight gradients on the samples of its class set C_g,
                                   hard_fraction**g of the minibatch; its first layer computes no input gradient.
  classifiers                      block g's local classifier (unless g is last) and block g-1's detector (g > 0).
`phase_graphs` returns them in order; a schedule of phase g runs for that phase's minibatches, so the training cost
is the sum over phases of (minibatches in phase g) x (cycles per minibatch of phase g) (`phase_totals`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from math import ceil

from spikepipe.ir import Gemm, LayerMemory, Task, TaskGraph, TaskKind, VectorWork, task_id
from spikepipe.methods.local import BLOCTRAIN_HEAD_POOL, head_features, head_input_shape, partition
from spikepipe.methods.transforms import anchor_backward, weight_task, without_input_gradient


def _head(graph: TaskGraph, tasks: dict[str, Task], edges: list[tuple[str, str, int]], memory: list[LayerMemory],
          e: int, batch: int, outs: int, input_grad: bool) -> None:
    """A linear head (outs outputs) on layer e's pooled output over `batch` samples: its GEMMs and weights
    (the gradient of its input only when the block under it trains)."""
    fin = head_features(head_input_shape(graph.layers[e]), BLOCTRAIN_HEAD_POOL)
    f, b = (tasks[task_id(k, e)] for k in (TaskKind.F, TaskKind.B))
    w = weight_task(tasks, edges, e)
    tasks[f.id] = replace(f, gemms=f.gemms + (Gemm(batch, fin, outs, "m"),))
    tasks[b.id] = replace(b, gemms=((Gemm(batch, outs, fin, "m"),) if input_grad else ()) + b.gemms,
                          vector=(VectorWork("loss", batch * outs, 1),) + b.vector)
    tasks[w.id] = replace(w, gemms=w.gemms + (Gemm(fin, batch, outs, "k"),))
    m = memory[e]
    extra = (fin * outs + outs) * graph.reference.word_bytes
    ratio = m.optimizer_bytes // max(1, m.weight_bytes)
    memory[e] = LayerMemory(m.weight_bytes + extra, m.optimizer_bytes + extra * ratio)


def phase_graphs(graph: TaskGraph, blocks: int | Sequence[int] = 2, hard_fraction: float = 0.5) -> list[TaskGraph]:
    n = graph.num_layers
    ranges = partition(n, blocks)
    classes = int(graph.layers[-1].output_shape[0])
    out = []
    for g, (a, b) in enumerate(ranges):
        share = hard_fraction ** g
        sub = max(1, ceil(graph.batch * share))
        tasks: dict[str, Task] = {}
        for layer in range(b):
            f, *rest = graph.tasks_of(layer)  # F, B and (a layer with weights) W
            if layer < a:
                tasks[f.id] = replace(f, cycles=0, activation_bytes=0)
                for t in rest:
                    tasks[t.id] = Task(t.id, layer, t.kind, cycles=1)
                continue
            for t in (f, *rest):
                tasks[t.id] = replace(t.scaled(share), cycles=0) if share < 1.0 else replace(t, cycles=0)
            bt = tasks[task_id(TaskKind.B, layer)]
            if layer == a and a > 0 and bt.gemms:  # nothing before block g needs its input gradient
                tasks[bt.id] = without_input_gradient(graph, bt)
        memory = list(graph.memory[:b])
        edges: list[tuple[str, str, int]] = []
        if b < n:
            _head(graph, tasks, edges, memory, b - 1, sub, classes, input_grad=True)
        if g > 0:  # block g-1's hard-class detector
            _head(graph, tasks, edges, memory, a - 1, graph.batch, 1, input_grad=False)
        for u, v, nbytes in graph.edges:
            tu, tv = graph.task(u), graph.task(v)
            if tu.layer >= b or tv.layer >= b:
                continue
            if tu.kind is TaskKind.B or tv.kind in (TaskKind.B, TaskKind.W):
                if tv.layer < a or tu.layer < a:  # no gradient reaches the frozen blocks
                    continue
            edges.append((u, v, ceil(nbytes * share) if tv.layer >= a else nbytes))
        if b < n:
            edges.append((task_id(TaskKind.F, b - 1), task_id(TaskKind.B, b - 1), 0))  # the local loss
        for e in range(a):  # frozen layers (and the detector on a-1): B and W follow their F, as schedules expect
            edges.append((task_id(TaskKind.F, e), task_id(TaskKind.B, e), 0))
            if task_id(TaskKind.W, e) in tasks:
                edges.append((task_id(TaskKind.B, e), task_id(TaskKind.W, e), 0))
        anchor_backward(tasks, edges)
        tasks = {k: (replace(t, cycles=0) if (t.gemms or t.vector) else t) for k, t in tasks.items()}
        out.append(TaskGraph(graph.layers[:b], tasks.values(), edges, batch=graph.batch,
                             timesteps=graph.timesteps, memory=memory, reference=graph.reference,
                             name=f"{graph.name}+bloctrain-phase{g}"))
    return out


def phase_totals(per_phase_cycles: Sequence[int], minibatches_per_phase: Sequence[int]) -> int:
    """Training cycles of the whole run: each phase's cycles per minibatch times its minibatches."""
    return sum(c * m for c, m in zip(per_phase_cycles, minibatches_per_phase, strict=True))
