"""Measured costs: time every task and transfer of the distributed executor on this machine, and describe them to
the simulator as a hardware model (a measured-cost mode of the cost model, not a systolic array).

A measured-cost TaskGraph has bare-cycle tasks (ir.task_cycles charges them as given on every processor) with one
cycle = one nanosecond, and a measured-cost Cluster has processors at 1 GHz and links whose bandwidth and latency
are fitted to gloo point-to-point round trips. Schedules generated from that graph are the schedules run for real;
`executor_schedule` then sets each slot's duration to what the executor really does in that slot: the task timed
at the slot's own (micro-)batch size, plus rebuilding the layer's graph when B runs away from its F (see
spikepipe.distributed.worker). The simulator replays it (late slots run late) and its steady-state period is the
prediction.
"""

from __future__ import annotations

import copy
import logging
import statistics
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hwmodels.interconnect import Interconnect
from hwmodels.processor import Cluster, Processor
from spikepipe.ir import LayerSpec, Schedule, Task, TaskGraph, TaskKind, task_id
from spikepipe.train import netfn
from spikepipe.train.optim import LayerOptimizer, OptimConfig

log = logging.getLogger(__name__)
NS = 1e9  # cycles per second of the measured-cost processors: one cycle is one nanosecond


@dataclass(frozen=True)
class TaskCosts:
    """Seconds per task of every layer at one batch size, timed on one process (median of repeats)."""

    batch: int
    forward_s: tuple[float, ...]  # F_l: the block's forward, building its graph
    backward_s: tuple[float, ...]  # B_l: input and weight gradients through the block (the loss for the last)
    update_s: tuple[float, ...]  # W_l: the optimiser step
    output_bytes: tuple[int, ...]  # layer l's output (and its gradient): the message F_l -> F_k, B_k -> B_l


@dataclass(frozen=True)
class LinkCosts:
    """A gloo point-to-point message between two local processes: seconds = latency + bytes / bandwidth."""

    latency_s: float
    bytes_per_s: float
    samples: tuple[tuple[int, float], ...]  # (bytes, one-way seconds)


def _median_time(fn: Any, repeats: int, setup: Any = None) -> float:
    times = []
    for _ in range(repeats + 1):  # the first run warms caches and allocators up
        arg = setup() if setup else None
        t0 = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def measure_tasks(net: nn.Module, x: torch.Tensor, y: torch.Tensor, optim: OptimConfig, *,
                  repeats: int = 7) -> TaskCosts:
    """Time F, B and W of every block the way a rank runs them, on input x [T, B, ...] with labels y."""
    net = copy.deepcopy(net)
    weights = netfn.initial_weights(net)
    outs: list[torch.Tensor] = []
    fwd, bwd, upd, nbytes = [], [], [], []
    L = len(net.blocks)
    for i, block in enumerate(net.blocks):
        src, res = net.sources[i], net.residuals[i]

        def inputs(src: int | None = src, res: int | None = res) -> tuple:
            def one(s: int | None) -> torch.Tensor | None:
                if s is None:
                    return None
                return x if s == -1 else outs[s].detach().requires_grad_()
            return one(src), one(res)

        def leaves(i: int = i) -> dict:
            return {k: t.detach().requires_grad_() for k, t in weights[i].items()}

        def forward(_: Any, block: nn.Module = block, i: int = i) -> torch.Tensor:
            xin, rin = inputs()
            return netfn.call_block(block, leaves(i), xin, rin)

        fwd.append(_median_time(forward, repeats))

        def built(block: nn.Module = block, i: int = i) -> tuple:
            xin, rin = inputs()
            wl = leaves(i)
            out = netfn.call_block(block, wl, xin, rin)
            return out, [t for t in (xin, rin) if t is not None and t.requires_grad] + list(wl.values())

        def backward(arg: tuple, last: bool = i == L - 1) -> None:
            out, wrt = arg
            if last:
                loss = F.cross_entropy(out.mean(0), y)
                gout = torch.autograd.grad(loss, out, retain_graph=True)[0]
            else:
                gout = torch.ones_like(out)
            torch.autograd.grad(out, wrt, grad_outputs=gout, allow_unused=True)

        bwd.append(_median_time(backward, repeats, built))
        grads = {k: torch.randn_like(t) * 1e-3 for k, t in weights[i].items()}
        opt = LayerOptimizer(optim, weights[i])
        upd.append(_median_time(lambda _, i=i, opt=opt, grads=grads: opt.step(weights[i], grads, 1e-3), repeats))
        with torch.no_grad():
            xin, rin = inputs()
            out = netfn.call_block(block, weights[i], xin, rin)
        outs.append(out)
        nbytes.append(out.numel() * out.element_size())
    return TaskCosts(int(y.shape[0]), tuple(fwd), tuple(bwd), tuple(upd), tuple(nbytes))


def _timed_tasks(rank: int, job: bytes, out: Any) -> None:
    from spikepipe.distributed.worker import dumps, loads

    net, x, y, optim, repeats = loads(job)
    torch.set_num_threads(1)
    out.put((rank, dumps(measure_tasks(net, x, y, optim, repeats=repeats))))


def measure_tasks_concurrent(net: nn.Module, x: torch.Tensor, y: torch.Tensor, optim: OptimConfig, *,
                             processes: int, repeats: int = 7) -> TaskCosts:
    """measure_tasks in `processes` spawned processes at once, as P ranks share the machine's cores and memory;
    each task's time is the median over the processes. On a machine with a free core per rank this equals the
    one-process calibration; on a shared or smaller one it measures what the ranks will really get."""
    from spikepipe.distributed.launch import DistributedError
    from spikepipe.distributed.worker import dumps, loads

    ctx = torch.multiprocessing.get_context("spawn")
    q = ctx.Queue()
    job = dumps((net, x, y, optim, repeats))
    procs = [ctx.Process(target=_timed_tasks, args=(r, job, q), daemon=True) for r in range(processes)]
    for p in procs:
        p.start()
    got = []
    try:
        for _ in range(processes):
            got.append(loads(q.get(timeout=600)[1]))
    except Exception as exc:  # noqa: BLE001 - a lost calibration process: say so, no traceback
        raise DistributedError(f"a concurrent calibration process did not report ({type(exc).__name__})") from None
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join(5)

    def med(field: str) -> tuple[float, ...]:
        return tuple(statistics.median(vals) for vals in zip(*(getattr(c, field) for c in got), strict=True))

    return replace(got[0], forward_s=med("forward_s"), backward_s=med("backward_s"), update_s=med("update_s"))


def _pingpong(rank: int, port: int, sizes: tuple[int, ...], repeats: int, out: Any) -> None:
    import os

    import torch.distributed as dist

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=120))
    for j, size in enumerate(sizes):
        buf = torch.zeros(max(1, size // 4))
        times = []
        for _ in range(repeats + 2):
            t0 = time.perf_counter()
            if rank == 0:
                dist.send(buf, 1)
                dist.recv(buf, 1)
            else:
                dist.recv(buf, 0)
                dist.send(buf, 0)
            times.append((time.perf_counter() - t0) / 2)
        if rank == 0:
            out[j] = statistics.median(times[2:])
    dist.destroy_process_group()


def measure_link(sizes: tuple[int, ...] = (4096, 65536, 524288, 4194304), repeats: int = 15) -> LinkCosts:
    """One-way time of gloo messages between two spawned processes on loopback; least-squares line fit."""
    from spikepipe.distributed.launch import DistributedError, free_port

    ctx = torch.multiprocessing.get_context("spawn")
    out = ctx.Array("d", len(sizes), lock=False)
    port = free_port()
    procs = [ctx.Process(target=_pingpong, args=(r, port, sizes, repeats, out), daemon=True) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
        p.join(5)
    if alive or any(p.exitcode for p in procs):
        raise DistributedError("the link calibration's two gloo processes did not finish")
    xs, ys = [float(s) for s in sizes], list(out)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((a - mx) * (b - my) for a, b in zip(xs, ys, strict=True)) / sum((a - mx) ** 2 for a in xs)
    latency = my - slope * mx
    if slope <= 0 or latency < 0:  # a noisy (loaded) machine: the smallest message's time and the end points
        latency = min(ys)
        slope = max((ys[-1] - latency) / (xs[-1] - xs[0]), 1e-13)
    return LinkCosts(latency, 1.0 / slope, tuple(zip(sizes, ys, strict=True)))


def measured_graph(costs: TaskCosts, sources: tuple[int, ...], residuals: tuple, name: str,
                   timesteps: int) -> TaskGraph:
    """The workload with measured task times as bare cycles (ns) and the executor's messages as edge bytes."""
    tasks, edges = [], []
    L = len(sources)
    for layer in range(L):
        for kind, sec in ((TaskKind.F, costs.forward_s[layer]), (TaskKind.B, costs.backward_s[layer]),
                          (TaskKind.W, costs.update_s[layer])):
            tasks.append(Task(task_id(kind, layer), layer, kind, cycles=max(1, round(sec * NS))))
        for src in (sources[layer], residuals[layer]):
            if src is not None and src >= 0:
                edges.append((task_id("F", src), task_id("F", layer), costs.output_bytes[src]))
                edges.append((task_id("B", layer), task_id("B", src), costs.output_bytes[src]))
        edges.append((task_id("B", layer), task_id("W", layer), 0))
    edges.append((task_id("F", L - 1), task_id("B", L - 1), 0))
    specs = [LayerSpec(i, f"layer{i}", "linear", (1,), (1,),
                     inputs=tuple(s for s in (sources[i], residuals[i]) if s is not None)) for i in range(L)]
    return TaskGraph(specs, tasks, edges, batch=costs.batch, timesteps=timesteps, name=f"{name}-measured")


def measured_cluster(link: LinkCosts, processors: int) -> Cluster:
    proc = Processor(name="measured-cpu", freq_hz=NS)
    net = Interconnect(link_bytes_per_cycle=link.bytes_per_s / NS, link_latency_cycles=round(link.latency_s * NS))
    return Cluster.homogeneous(processors, proc, net)


def executor_schedule(schedule: Schedule, by_batch: dict[int, TaskCosts], *, stash: bool = True) -> Schedule:
    """The schedule with every slot lasting what the executor does there: the task at the slot's chunk size
    (micro-batch/shard, from `by_batch`) plus the F recompute of a B that runs away from its F (or without
    stashing)."""
    full = max(by_batch)
    f_proc = {(s.layer, s.microbatch, s.part): s.processor for s in schedule.slots if s.kind is TaskKind.F}
    slots = []
    for s in schedule.slots:
        size = max(1, round(full * s.fraction))
        if size not in by_batch:
            raise KeyError(f"no task costs measured at batch {size} (slot {s.id}); measure that size too")
        c = by_batch[size]
        sec = {TaskKind.F: c.forward_s, TaskKind.B: c.backward_s, TaskKind.W: c.update_s}[s.kind][s.layer]
        if s.kind is TaskKind.B and (not stash or f_proc.get((s.layer, s.microbatch, s.part)) != s.processor):
            sec += c.forward_s[s.layer]
        slots.append(replace(s, duration_cycles=max(1, round(sec * NS))))
    return replace(schedule, slots=tuple(slots))


def predict_seconds(schedule: Schedule, graph: TaskGraph, cluster: Cluster, by_batch: dict[int, TaskCosts], *,
                    stash: bool = True) -> float:
    """Simulated steady-state seconds per minibatch of the schedule as the executor runs it."""
    return simulated_seconds(executor_schedule(schedule, by_batch, stash=stash), graph, cluster)


def in_run_schedule(schedule: Schedule, plan: Any, timings: dict[int, list[tuple[int, float, float]]]) -> Schedule:
    """The schedule with every slot lasting the mean time its computations took in a real run (steady state:
    the middle half of the epoch). The simulator's replay of it isolates the simulator's own error (order,
    dependencies, transfers) from the calibration's (task times measured alone vs beside other ranks).
    A layer's update (event U) is charged to its W slots on that rank."""
    N = plan.num_batches
    lo, hi = N // 4, N - N // 4
    total: dict[tuple[int, str], float] = {}
    count: dict[tuple[int, str], int] = {}
    for rank, ts in timings.items():
        for event, t0, t1 in ts:
            e = plan.events[event]
            if not lo <= e.n < hi:
                continue
            key = (rank, e.slot if e.kind != "U" else f"U{e.layer}")
            total[key] = total.get(key, 0.0) + (t1 - t0)
            count[key] = count.get(key, 0) + 1
    mean = {k: total[k] / count[k] for k in total}
    w_slots: dict[tuple[int, int], int] = {}
    for s in schedule.slots:
        if s.kind is TaskKind.W:
            w_slots[(s.processor, s.layer)] = w_slots.get((s.processor, s.layer), 0) + 1
    slots = []
    for s in schedule.slots:
        sec = mean.get((s.processor, s.id), 0.0)
        if s.kind is TaskKind.W:
            sec += mean.get((s.processor, f"U{s.layer}"), 0.0) / w_slots[(s.processor, s.layer)]
        slots.append(replace(s, duration_cycles=max(1, round(sec * NS))))
    return replace(schedule, slots=tuple(slots))


def simulated_seconds(schedule: Schedule, graph: TaskGraph, cluster: Cluster) -> float:
    """Steady-state seconds per minibatch of the SimPy replay of `schedule` as given (late slots run late)."""
    from spikepipe.sim import simulate

    return float(simulate(schedule, cluster, graph=graph, record=False).simulated_period_cycles) / NS
