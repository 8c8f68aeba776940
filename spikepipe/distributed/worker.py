"""One rank of a distributed epoch: runs its events of the Plan in order, with point-to-point messages.

The computations are the emulation's (spikepipe.train.pipelined), block by block with the same calls in the same
order, so a rank reproduces the single-process numbers: F_l reads the weight version the schedule implies (sent by
the layer's owner when another rank updates it), B_l backpropagates through the graph F_l built when both run on
this rank with weight stashing, and otherwise rebuilds layer l's graph from the inputs and the weights it must use
(the stashed version F read, or the version current at B time without stashing): the same values as the
emulation. Input gradients are summed in the emulation's order. U applies the optimiser step of the layer
(after an all-reduce of the gradient among the ranks that share the layer's W slots).
"""

from __future__ import annotations

import os
import pickle
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from spikepipe.distributed.plan import Plan
from spikepipe.distributed.stages import Stages
from spikepipe.train.bptt import EpochStats
from spikepipe.train.optim import LayerOptimizer, OptimConfig, lr_at, pipemare_scale

# phases a rank publishes in the shared status array (the launcher names a dead or hung rank's slot from them)
STARTING, RECEIVING, COMPUTING, SENDING, FINISHED = range(5)
STATUS_FIELDS = 3  # per rank: global event index, phase, minibatches finished


@dataclass
class Job:
    """Everything a rank needs for one epoch (pickled to the spawned process; tensors go through shared memory)."""

    backend: str
    port: int
    epoch: int
    stages: Stages  # only the computations of the layers this rank runs F or B of
    optim: OptimConfig
    total_steps: int
    base_step: int
    weights: list[dict[str, torch.Tensor]]  # the epoch's start weights ({} for layers this rank has no task of)
    opt_states: list[dict]  # ({} for layers this rank does not update)
    velocity: list[dict[str, torch.Tensor] | None]  # SpecTrain: each layer's velocity at the epoch's start
    plan: Plan
    xs: torch.Tensor | None  # [N, T, B, ...] the epoch's encoded inputs (only on ranks that read them)
    ys: torch.Tensor | None  # [N, B] labels (only on ranks that compute the loss)
    batch: int
    shapes: dict[tuple[int, int], tuple[int, ...]]  # (layer, chunk) -> output shape
    chunk_slices: tuple[tuple[int, int], ...]
    stash: bool
    compensation: str
    delays: tuple[int, ...]
    anneal_steps: int
    threads: int
    timeout_s: float
    fault: str | None  # test hook "RANK:SLOT:N:exit|hang[:EPOCH]" (epoch counted from 0)
    device: str = "cpu"  # cpu (gloo) or cuda (nccl: rank r on cuda:r)


def to_device(obj: Any, device: torch.device | str) -> Any:
    """Tensors inside dicts, lists and tuples moved to a device (optimiser states, weights, results)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def flat(ts: list[torch.Tensor | None], like: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors (None as zeros) and append a presence mask, so None gradients survive the trip."""
    parts = [(t if t is not None else torch.zeros_like(w)).reshape(-1) for t, w in zip(ts, like, strict=True)]
    mask = torch.tensor([0.0 if t is None else 1.0 for t in ts], dtype=like[0].dtype if like else torch.float32,
                        device=like[0].device if like else None)
    return torch.cat(parts + [mask])


def unflat(buf: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor | None]:
    out, i = [], 0
    mask = buf[buf.numel() - len(like):]
    for j, w in enumerate(like):
        t = buf[i:i + w.numel()].view_as(w)
        i += w.numel()
        out.append(t.clone() if mask[j] > 0 else None)
    return out


class Rank:
    def __init__(self, rank: int, job: Job, status: Any) -> None:
        self.rank, self.job, self.plan, self.status = rank, job, job.plan, status
        self.device = torch.device("cuda", rank % torch.cuda.device_count()) if job.device == "cuda" else \
            torch.device("cpu")
        self.stages = job.stages
        for m in self.stages.modules.values():
            m.to(self.device)
        weights = [to_device(w, self.device) for w in job.weights]
        self.names = [list(w) for w in weights]
        self.like = [[w[k] for k in names] for w, names in zip(weights, self.names, strict=True)]
        L = self.plan.num_layers
        self.store: list[dict[int, dict[str, torch.Tensor]]] = [{0: dict(w)} for w in weights]
        self.vel: list[dict[int, dict[str, torch.Tensor] | None]] = [
            {0: to_device(v, self.device)} for v in job.velocity]  # SpecTrain: velocity per version
        self.current = [dict(w) for w in weights]  # W ranks: the newest weights of their layers
        self.version = [0] * L
        self.opts: dict[int, LayerOptimizer] = {}
        for layer, ranks in self.plan.w_ranks.items():
            if rank in ranks:
                opt = LayerOptimizer(job.optim, weights[layer])
                opt.load_state_dict(to_device(job.opt_states[layer], self.device))
                self.opts[layer] = opt
        self.acts: dict[tuple, torch.Tensor] = {}
        self.graphs: dict[tuple, tuple] = {}
        self.grads: dict[tuple, torch.Tensor] = {}
        self.wgrads: dict[tuple, list[torch.Tensor | None]] = {}
        self.acc: dict[tuple, list[torch.Tensor | None]] = {}
        self.meta: dict[tuple, int] = {}
        self.observed: dict[int, dict[int, int]] = {}
        self.stats: list[tuple[int, int, float, int, int]] = []  # (n, chunk, loss share, correct, samples)
        self.pending: list[tuple[Any, torch.Tensor]] = []
        self.timings: list[tuple[int, float, float]] = []
        self.groups: dict[tuple[int, ...], Any] = {}

    # -- status for the launcher
    def _mark(self, event: int, phase: int) -> None:
        base = self.rank * STATUS_FIELDS
        self.status[base] = event
        self.status[base + 1] = phase

    # -- messages
    def _empty(self, n: int | tuple[int, ...]) -> torch.Tensor:
        return torch.empty(n, device=self.device)

    def _buffer(self, key: tuple) -> torch.Tensor:
        kind = key[0]
        if kind == "act":
            return self._empty(self.job.shapes[(key[1], key[3])])
        if kind == "grad":
            src = self.stages.producers[key[1]][key[2]]
            return self._empty(self.job.shapes[(src, key[4])])
        size = sum(w.numel() for w in self.like[key[1]])
        if kind == "wgrad":  # flat gradients plus a presence mask
            return self._empty(size + len(self.like[key[1]]))
        if kind == "ver":  # flat weights, flat velocity (SpecTrain only), has-velocity flag, version number
            return self._empty(size * (2 if self.job.compensation == "spectrain" else 1) + 2)
        return self._empty(1)  # meta

    def _payload(self, key: tuple) -> torch.Tensor:
        kind = key[0]
        if kind == "act":
            return self.acts[key].detach().contiguous()
        if kind == "grad":
            return self.grads[key].contiguous()
        if kind == "wgrad":
            return flat(self.wgrads[key], self.like[key[1]])
        if kind == "ver":
            layer, v = key[1], key[2]
            w, vel = self.store[layer][v], self.vel[layer].get(v)
            names = self.names[layer]
            speed = [(vel[k] if vel is not None else torch.zeros_like(w[k])).reshape(-1) for k in names] \
                if self.job.compensation == "spectrain" else []
            return torch.cat([w[k].reshape(-1) for k in names] + speed +
                             [torch.tensor([0.0 if vel is None else 1.0, float(v)], device=self.device)])
        return torch.tensor([float(self.meta[key])], device=self.device)

    def _accept(self, key: tuple, buf: torch.Tensor) -> None:
        kind = key[0]
        if kind == "act":
            self.acts[key] = buf
        elif kind == "grad":
            self.grads[key] = buf
        elif kind == "wgrad":
            self.wgrads[key] = unflat(buf, self.like[key[1]])
        elif kind == "ver":
            layer, v = key[1], key[2]
            if int(buf[-1]) != v:
                raise RuntimeError(f"layer {layer}: received weight version {int(buf[-1])}, expected {v}")
            size = sum(w.numel() for w in self.like[layer])
            w, vel, i = {}, {}, 0
            for k, ref in zip(self.names[layer], self.like[layer], strict=True):
                w[k] = buf[i:i + ref.numel()].view_as(ref).clone()
                if buf[-2] > 0:
                    vel[k] = buf[size + i:size + i + ref.numel()].view_as(ref).clone()
                i += ref.numel()
            self.store[layer][v] = w
            self.vel[layer][v] = vel if buf[-2] > 0 else None
        else:
            self.meta[key] = int(buf[0])

    def _receive(self, event: int) -> None:
        msgs = self.plan.recvs.get(event)
        if not msgs:
            return
        self._mark(event, RECEIVING)
        bufs = [(self.plan.messages[m], self._buffer(self.plan.messages[m].key)) for m in msgs]
        ops = [dist.P2POp(dist.irecv, b, msg.src, tag=m) for m, (msg, b) in zip(msgs, bufs, strict=True)]
        for work in dist.batch_isend_irecv(ops) if len(ops) > 1 else [dist.irecv(bufs[0][1], ops[0].peer, tag=msgs[0])]:
            work.wait()
        for msg, b in bufs:
            self._accept(msg.key, b)

    def _send(self, event: int) -> None:
        msgs = self.plan.sends.get(event)
        if not msgs:
            return
        self._mark(event, SENDING)
        for m in msgs:
            msg = self.plan.messages[m]
            t = self._payload(msg.key)
            self.pending.append((dist.isend(t, msg.dst, tag=m), t))
        if len(self.pending) > 64:  # sends complete when their receiver gets to them; keep only live buffers
            self.pending = [(w, t) for w, t in self.pending if not w.is_completed()]

    # -- computations (the emulation's, see the module docstring)
    def _input(self, src: int, n: int, c: int) -> torch.Tensor:
        if src == -1:
            lo, hi = self.job.chunk_slices[c]
            return self.stages.chunk(self.job.xs[n], lo, hi).to(self.device)
        return self.acts[("act", src, n, c)].detach().requires_grad_()

    def _weights(self, layer: int, version: int, n: int) -> dict[str, torch.Tensor]:
        """Layer l's weights after `version` updates as minibatch n's task must see them (SpecTrain: predicted
        forward by the updates still to land before n's own, with the velocity of that version)."""
        w = self.store[layer][version]
        ahead = n - version
        vel = self.vel[layer].get(version)
        if self.job.compensation != "spectrain" or ahead <= 0 or vel is None:
            return w
        return {k: w[k] - ahead * vel[k] for k in w}

    def _forward(self, event: int) -> None:
        e = self.plan.events[event]
        lay, n, c = e.layer, e.n, e.chunk
        inputs = [self._input(p, n, c) for p in self.stages.producers[lay]]
        v = self.plan.reads[event]
        w = self._weights(lay, v, n)
        local_b = not self.plan.recompute.get(self._b_event(lay, n, c), True)
        if self.job.stash and local_b:
            wl = {k: t.detach().requires_grad_() for k, t in w.items()}
            out = self.stages.call(lay, wl, inputs, c)
            self.graphs[(lay, n, c)] = (out, inputs, wl)
        else:
            with torch.no_grad():
                out = self.stages.call(lay, w, inputs, c)
        self.acts[("act", lay, n, c)] = out
        if c == 0:
            self.meta[("meta", lay, n)] = v

    def _b_event(self, layer: int, n: int, c: int) -> int:
        return self.b_index[(layer, n, c)]

    def _backward(self, event: int) -> None:
        e = self.plan.events[event]
        lay, n, c = e.layer, e.n, e.chunk
        last = lay == self.plan.num_layers - 1
        if self.plan.recompute[event]:
            inputs = [self._input(p, n, c) for p in self.stages.producers[lay]]
            w = self._weights(lay, self.plan.reads[event], n)
            wl = {k: t.detach().requires_grad_() for k, t in w.items()}
            copies = {k: b.clone() for k, b in self.stages.modules[lay].named_buffers()}  # BatchNorm counted once
            out = self.stages.call(lay, wl, inputs, c, copies)
        else:
            out, inputs, wl = self.graphs.pop((lay, n, c))
        if last:
            o = out if self.job.stash else self.acts[("act", lay, n, c)].detach().requires_grad_()
            lo, hi = self.job.chunk_slices[c]
            y = self.job.ys[n][lo:hi].to(self.device)
            logits = self.stages.logits(o)
            loss = F.cross_entropy(logits, y)
            if self.plan.chunks > 1:  # a shard's share of the minibatch mean
                loss = loss * ((hi - lo) / self.job.batch)
            check = EpochStats()
            check.add(loss.detach(), logits.detach(), y, self.job.base_step + n)  # raises on a diverged loss
            self.stats.append((n, c, float(loss.detach()), check.correct, check.samples))
            gout = torch.autograd.grad(loss, o, retain_graph=self.job.stash)[0]
        else:
            gout = None
            for k, role in self.consumers[lay]:
                g = self.grads.pop(("grad", k, role, n, c))
                gout = g if gout is None else gout + g
        names = list(wl)
        srcs = self.stages.producers[lay]
        xs = [(role, t) for role, t in enumerate(inputs) if srcs[role] >= 0]
        if gout is None:  # nothing later reads this layer's output: no gradient reaches it
            grads: tuple = (None,) * (len(xs) + len(names))
        else:
            grads = torch.autograd.grad(out, [t for _, t in xs] + [wl[k] for k in names], grad_outputs=gout,
                                        allow_unused=True)
        for (role, t), g in zip(xs, grads[:len(xs)], strict=True):
            self.grads[("grad", lay, role, n, c)] = g if g is not None else torch.zeros_like(t)
        wg = dict(zip(names, grads[len(xs):], strict=True))
        self.wgrads[("wgrad", lay, n, c)] = [wg[k] for k in self.names[lay]]

    def _accumulate(self, event: int) -> None:
        e = self.plan.events[event]
        g = self.wgrads.pop(("wgrad", e.layer, e.n, e.chunk))
        key = (e.layer, e.n)
        acc = self.acc.get(key)
        self.acc[key] = g if acc is None else [a if b is None else (b if a is None else a + b)
                                               for a, b in zip(acc, g, strict=True)]

    def _lr(self, layer: int, step: int) -> float:
        lr = lr_at(self.job.optim, step, self.job.total_steps)
        if self.job.compensation == "pipemare":
            lr *= pipemare_scale(self.job.delays[layer], step, self.job.anneal_steps)
        return lr

    def _update(self, event: int) -> None:
        e = self.plan.events[event]
        lay, n = e.layer, e.n
        grads = self.acc.pop((lay, n))
        ranks = self.plan.w_ranks[lay]
        if len(ranks) > 1:  # the ranks sharing the layer's W slots sum their partial gradients
            buf = flat(grads, self.like[lay])
            dist.all_reduce(buf, group=self.groups[ranks])
            grads = unflat(buf, self.like[lay])
        step = self.job.base_step + n
        new = self.opts[lay].step(self.current[lay], dict(zip(self.names[lay], grads, strict=True)),
                                  self._lr(lay, step))
        if self.rank == self.plan.owner[lay]:
            d = self.version[lay] - self.meta.pop(("meta", lay, n))
            obs = self.observed.setdefault(lay, {})
            obs[d] = obs.get(d, 0) + 1
        self.version[lay] += 1
        self.current[lay] = new
        self.store[lay][self.version[lay]] = new
        if self.job.compensation == "spectrain":  # as the emulation: the rate at the new version's step
            v = self.job.base_step + self.version[lay]
            self.vel[lay][self.version[lay]] = self.opts[lay].velocity(new, self._lr(lay, v))

    def _drop(self, layer: int, version: int) -> None:
        self.store[layer].pop(version, None)
        self.vel[layer].pop(version, None)

    # -- the loop
    def _fault(self, event: int) -> None:
        if not self.job.fault:
            return
        rank, slot, n, action, *epoch = self.job.fault.split(":")
        e = self.plan.events[event]
        if int(rank) == self.rank and slot == e.slot and int(n) == e.n and int((epoch or [self.job.epoch])[0]) == \
                self.job.epoch:
            if action == "hang":
                time.sleep(3600)
            os._exit(17)

    def run(self) -> dict[str, Any]:
        plan = self.plan
        self.consumers: dict[int, list[tuple[int, int]]] = {layer: [] for layer in range(plan.num_layers)}
        for k in range(plan.num_layers):
            for role, src in enumerate(self.stages.producers[k]):
                if src >= 0:
                    self.consumers[src].append((k, role))
        self.b_index = {(e.layer, e.n, e.chunk): i for i, e in enumerate(plan.events) if e.kind == "B"}
        for ranks in sorted(set(plan.w_ranks.values())):  # every rank creates every group, in one order
            if len(ranks) > 1:
                self.groups[ranks] = dist.new_group(list(ranks))
        self.kept = {(layer, v) for (r, layer, v) in plan.kept if r == self.rank}
        t_epoch = time.perf_counter()
        for event in plan.rank_events[self.rank]:
            self._mark(event, STARTING)
            self._fault(event)
            self._receive(event)
            self._mark(event, COMPUTING)
            t0 = time.perf_counter()
            kind = plan.events[event].kind
            if kind == "F":
                self._forward(event)
            elif kind == "B":
                self._backward(event)
            elif kind == "W":
                self._accumulate(event)
            else:
                self._update(event)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)  # the event's time is its kernels' time
            self.timings.append((event, t0, time.perf_counter()))
            self._send(event)
            layer = plan.events[event].layer
            if kind == "U" and (layer, self.version[layer]) not in self.kept:
                self._drop(layer, self.version[layer])
            for lay, v in plan.releases.get(event, ()):
                self._drop(lay, v)
            for n in plan.last_of_batch.get(event, ()):
                self._forget(n)
                self.status[self.rank * STATUS_FIELDS + 2] += 1
        for work, _ in self.pending:
            work.wait()
        self._mark(-1, FINISHED)
        owned = [layer for layer, r in plan.owner.items() if r == self.rank]
        buffers = {}
        for layer, r in first_f_ranks(plan).items():
            if r == self.rank:
                own = dict(self.stages.modules[layer].named_buffers())
                buffers.update({name: own[k] for k, name in self.stages.buffer_names(layer).items()})
        return to_device({"rank": self.rank, "weights": {layer: self.current[layer] for layer in owned},
                          "opts": {layer: self.opts[layer].state_dict() for layer in owned}, "buffers": buffers,
                          "observed": self.observed, "stats": self.stats, "timings": self.timings,
                          "seconds": time.perf_counter() - t_epoch}, "cpu")

    def _forget(self, n: int) -> None:
        """Minibatch n is finished on this rank: drop what it kept for it (after its sends were posted)."""
        for d in (self.acts, self.grads, self.graphs):
            for key in [k for k in d if (k[2] if k[0] == "act" else k[3] if k[0] == "grad" else k[1]) == n]:
                del d[key]


def first_f_ranks(plan: Plan) -> dict[int, int]:
    """Layer -> the rank of its first F: it runs the layer's forwards in minibatch order on the module's own
    buffers, so its BatchNorm statistics are the emulation's (recomputations run on copies)."""
    out: dict[int, int] = {}
    for e in plan.events:
        if e.kind == "F":
            out.setdefault(e.layer, e.rank)
    return out


def dumps(obj: Any) -> bytes:
    """Plain bytes for the trip between processes (cloudpickle: a user's module classes and closures, such as
    snnTorch's surrogate gradients, travel by value). Tensors sent through a multiprocessing queue as shared
    memory would need their sender alive until they are received, which a finished rank is not."""
    import cloudpickle

    return cloudpickle.dumps(obj)


def loads(data: bytes) -> Any:
    return pickle.loads(data)


@dataclass(frozen=True)
class InputRanks:
    """Which ranks get the epoch's inputs and which its labels (the others are spawned without them)."""

    input_ranks: frozenset[int]  # read the network input: F or recomputing B of a layer fed by it
    label_ranks: frozenset[int]  # compute the loss: B of the last layer


def input_ranks(plan: Plan, stages: Stages) -> InputRanks:
    """Ranks that read the network input (F or recomputing B of a layer fed by it) and ranks that compute the
    loss (B of the last layer)."""
    fed = {i for i in range(plan.num_layers) if -1 in stages.producers[i]}
    xr = frozenset(e.rank for e in plan.events if e.layer in fed and e.kind in ("F", "B"))
    yr = frozenset(e.rank for e in plan.events if e.layer == plan.num_layers - 1 and e.kind == "B")
    return InputRanks(input_ranks=xr, label_ranks=yr)


def main(rank: int, job_bytes: bytes, xs: torch.Tensor | None, ys: torch.Tensor | None, status: Any,
         queue: Any) -> None:
    """Entry point of a spawned rank: rendezvous on loopback, run the epoch, report, leave."""
    job: Job = loads(job_bytes)
    job.xs, job.ys = xs, ys
    if job.fault and job.fault.split(":")[:2] == [str(rank), "start"]:  # test hook: die while starting up
        os._exit(17)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    if job.device == "cuda":  # one GPU per rank (local rank = rank on one machine); cuBLAS made deterministic
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.cuda.set_device(rank % torch.cuda.device_count())
    torch.set_num_threads(job.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        dist.init_process_group(job.backend, init_method=f"tcp://127.0.0.1:{job.port}", rank=rank,
                                world_size=job.plan.processors, timeout=timedelta(seconds=job.timeout_s))
        worker = Rank(rank, job, status)
        result = worker.run()
        queue.put(("done", rank, dumps(result)))
        dist.destroy_process_group()
    except BaseException as exc:  # noqa: BLE001 - reported to the launcher, which names the rank and slot
        event = int(status[rank * STATUS_FIELDS])
        queue.put(("error", rank, event, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "",
                   traceback.format_exc(limit=3)))
        raise SystemExit(1) from None
