"""The driver: a trainer whose epochs run on P spawned torch.distributed ranks, and the fault handling around them.

`DistributedPipeline` is a drop-in for the emulation's trainer (spikepipe.train.runner uses it through the same
run_epoch / state_dict / logits interface), so data, evaluation, checkpoints, --resume and the result row are the
runner's own. Each epoch starts P fresh worker processes (spawn), rendezvous on 127.0.0.1 at a free port, gives
them the epoch's start state and inputs, and collects the owners' final weights and optimiser states: the pipeline
drains at the end of every epoch (as in the emulation), so nothing is in flight between epochs and a checkpoint is
the driver's state alone.

Faults: a rank that dies, raises, or stops making progress for `timeout_s` seconds ends the epoch within a bounded
time with one DistributedError line naming the rank and the slot it was in; every worker is terminated (then
killed) and joined, so no process is left and the port is free.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue as queue_mod
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from spikepipe.distributed import worker
from spikepipe.distributed.plan import Plan, PlanError, build_plan
from spikepipe.distributed.stages import Stages, block_stages, build_stages, by_value
from spikepipe.ir import Schedule, SpikePipeError, slot_lag_delays
from spikepipe.train.bptt import EpochStats, GetBatch, NonFiniteLossError, TrainerBase
from spikepipe.train.model import ModelFn, has_blocks
from spikepipe.train.optim import OptimConfig

log = logging.getLogger(__name__)
BACKENDS = ("emulate", "gloo", "nccl")
TIMEOUT_ENV = "SPIKEPIPE_DIST_TIMEOUT"  # seconds without progress before a rank counts as hung
FAULT_ENV = "SPIKEPIPE_DIST_FAULT"  # test hook "RANK:SLOT:N:exit|hang[:EPOCH]": that rank exits/hangs there
STARTS = 3  # attempts to bring the ranks up when they fail before the first slot (nothing computed yet)
_COMM_ERRORS = ("DistBackendError", "DistNetworkError", "DistError", "DistStoreError", "RuntimeError")


class DistributedError(SpikePipeError):
    """A distributed run failed (a rank died, hung or raised) or cannot start."""


class RendezvousError(DistributedError):
    """The ranks failed before any of them ran a slot (connecting on a loaded machine): safe to start again."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now (rank 0's store binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chunk_slices(batch: int, microbatches: int, parts: int) -> tuple[tuple[int, int], ...]:
    """Sample ranges of chunk (m, p), micro-batch major, as torch.tensor_split cuts them."""
    out = []
    for mb in torch.tensor_split(torch.arange(batch), microbatches):
        for part in torch.tensor_split(mb, parts):
            if len(part) == 0:
                raise PlanError(f"minibatch of {batch} cannot be cut into {microbatches} micro-batches of "
                                f"{parts} shards")
            out.append((int(part[0]), int(part[-1]) + 1))
    return tuple(out)


@dataclass(frozen=True)
class EpochTiming:
    """Wall-clock figures of one distributed epoch (for measured-against-simulated comparisons)."""

    seconds: float  # the slowest rank's epoch, rendezvous excluded
    seconds_per_minibatch: float  # steady state: the middle half of the epoch's minibatches
    num_batches: int
    compute_seconds: dict[int, float]  # per rank: time inside its events' computations, whole epoch
    rank_seconds: dict[int, float]  # per rank: its epoch, first event to last
    kind_seconds: dict[str, float]  # per task kind (F, B, W, U): compute time summed over ranks


def steady_seconds(plan: Plan, timings: dict[int, list[tuple[int, float, float]]]) -> float:
    """Median over ranks of the time between the starts of a rank's first event of minibatches n_lo and n_hi,
    over the middle half of the epoch (fill and drain excluded)."""
    N = plan.num_batches
    lo, hi = N // 4, N - 1 - N // 4
    rates = []
    for rank_t in timings.values():
        first: dict[int, float] = {}
        for event, t0, _ in rank_t:
            first.setdefault(plan.events[event].n, t0)
        if lo in first and hi in first and hi > lo:
            rates.append((first[hi] - first[lo]) / (hi - lo))
    if not rates:
        raise DistributedError(f"an epoch of {N} minibatches is too short to time a steady state")
    return statistics.median(rates)


class DistributedPipeline(TrainerBase):
    """Runs a schedule's epochs on `schedule.processors` torch.distributed ranks (see the module docstring)."""

    def __init__(self, net: nn.Module | ModelFn, optim: OptimConfig, schedule: Schedule, *, total_steps: int,
                 backend: str = "gloo", stash: bool = True, compensation: str = "none",
                 anneal_steps: int | None = None, threads: int = 1, timeout_s: float | None = None) -> None:
        """`net`: a module with the block protocol (block-relative weights, as netfn) or the ModelFn of any
        module the front end accepts (cut into its layers by torch.fx, spikepipe.distributed.stages)."""
        if isinstance(net, ModelFn) and has_blocks(net.model):
            net = net.model
        if not isinstance(net, ModelFn) and not has_blocks(net):
            raise DistributedError(f"model {type(net).__name__} has no blocks/sources/residuals; pass its ModelFn "
                                   f"(spikepipe.train.model) so its layers are known")
        if backend not in ("gloo", "nccl"):
            raise DistributedError(f"unknown distributed backend {backend!r}; valid: gloo, nccl")
        if backend == "nccl":
            have = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if have < schedule.processors:
                raise DistributedError(f"--backend nccl needs {schedule.processors} CUDA devices (one per rank); "
                                       f"this machine has {have} (use --backend gloo on CPU)")
        super().__init__(net, optim, total_steps=total_steps)
        self.stages: Stages = build_stages(net) if isinstance(net, ModelFn) else block_stages(net)
        self.device = "cuda" if backend == "nccl" else "cpu"
        drop = [m for m in self.net.modules() if isinstance(m, nn.Dropout) and m.p > 0]
        if drop:
            raise DistributedError("the network uses dropout, whose random draws follow the single process's event "
                                   "order; the distributed backend would not reproduce them")
        self.backend, self.schedule, self.stash, self.compensation = backend, schedule, stash, compensation
        self.mode = "exact" if schedule.kind == "periodic" else "bptt"  # the emulation's trainer for it
        self.delays = (tuple(slot_lag_delays(schedule.slots, self.num_layers, schedule.period_cycles))
                       if schedule.kind == "periodic" else (0,) * self.num_layers)
        self.anneal_steps = anneal_steps if anneal_steps is not None else max(1, total_steps // 10)
        self.threads = threads
        env = os.environ.get(TIMEOUT_ENV)
        self.timeout_s = float(env) if env else (timeout_s or 300.0)
        self.versions = [0] * self.num_layers
        self.observed: list[dict[int, int]] = [{} for _ in range(self.num_layers)]
        self.timing: list[EpochTiming] = []
        self._plans: dict[int, Plan] = {}
        self.last_port, self.last_pids = 0, []  # of the latest epoch's workers (tests check they are gone)
        self.last_timings: dict[int, list[tuple[int, float, float]]] = {}  # rank -> (event, start, end) seconds
        plan = build_plan(schedule, self.stages.producers, 1, stash=stash)  # refuse unsupported schedules now
        norms = [m for m in self.net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
        if norms and plan.chunks > 1:
            raise DistributedError(f"the network uses {type(norms[0]).__name__}, which normalises over the whole "
                                   f"minibatch; schedule {schedule.name} cuts it into {plan.chunks} micro-batches/"
                                   f"shards, whose statistics differ (the emulation trains such schedules on the "
                                   f"whole minibatch)")
        if compensation == "spectrain":  # velocity at the epoch's start, for reads of the start weights
            self._velocity = lambda: [o.velocity(w, self.lr(i, self.step))
                                      for i, (o, w) in enumerate(zip(self.opts, self.weights, strict=True))]
        else:
            self._velocity = lambda: [None] * self.num_layers

    def plan(self, num_batches: int) -> Plan:
        if num_batches not in self._plans:
            self._plans[num_batches] = build_plan(self.schedule, self.stages.producers, num_batches,
                                                  stash=self.stash)
        return self._plans[num_batches]

    def run_epoch(self, get_batch: GetBatch, num_batches: int, progress: Callable[[], None] | None = None) -> EpochStats:
        plan = self.plan(num_batches)
        batches = [get_batch(n) for n in range(num_batches)]
        xs = torch.stack([b[0] for b in batches])
        ys = torch.stack([b[1] for b in batches])
        slices = chunk_slices(int(ys.shape[1]), plan.microbatches, plan.parts)
        job = worker.Job(
            backend=self.backend, port=free_port(), epoch=self.step // max(1, num_batches), stages=self.stages,
            optim=self.cfg, total_steps=self.total_steps, base_step=self.step, weights=self.weights,
            opt_states=[o.state_dict() for o in self.opts], velocity=self._velocity(), plan=plan, xs=None, ys=None,
            batch=int(ys.shape[1]), shapes=self.stages.probe(self.weights, xs[0], slices), chunk_slices=slices,
            stash=self.stash, compensation=self.compensation, delays=self.delays, anneal_steps=self.anneal_steps,
            threads=self.threads, timeout_s=self.timeout_s + 60.0, fault=os.environ.get(FAULT_ENV) or None,
            device=self.device)
        xs, ys = xs.share_memory_(), ys.share_memory_()
        for attempt in range(1, STARTS + 1):
            launch = Launch(plan, job, self.timeout_s, progress, xs, ys)
            self.last_port = job.port
            try:
                results = launch.run()
                break
            except RendezvousError as exc:
                if attempt == STARTS:
                    raise
                log.warning("distributed start %d of %d failed (%s); starting again on a new port", attempt,
                            STARTS, exc)
                job.port = free_port()
            finally:
                self.last_pids = launch.pids
        stats = self._merge(plan, results, num_batches)
        self.step += num_batches
        self.check_delays()  # every epoch fills and drains the same way, so one epoch's count is the run's
        return stats

    def _merge(self, plan: Plan, results: dict[int, dict], num_batches: int) -> EpochStats:
        own = dict(self.net.named_buffers())
        with torch.no_grad():
            for r in results.values():
                for k, b in r["buffers"].items():
                    if k in own and own[k].shape == b.shape:
                        own[k].copy_(b)
        for r in results.values():
            for layer, w in r["weights"].items():
                self.weights[layer] = w
                self.opts[layer].load_state_dict(r["opts"][layer])
            for layer, obs in r["observed"].items():
                for d, count in obs.items():
                    self.observed[layer][d] = self.observed[layer].get(d, 0) + count
        for layer in range(self.num_layers):
            self.versions[layer] += num_batches
        per_n: dict[int, list] = {}
        for r in results.values():
            for n, c, loss, correct, samples in r["stats"]:
                per_n.setdefault(n, []).append((c, loss, correct, samples))
        stats = EpochStats()
        for n in sorted(per_n):
            rows = sorted(per_n[n])
            loss = sum(row[1] for row in rows) if len(rows) > 1 else rows[0][1]
            samples = sum(row[3] for row in rows)
            stats.loss_sum += loss * samples
            stats.correct += sum(row[2] for row in rows)
            stats.samples += samples
            stats.minibatches += 1
            stats.losses.append(loss)
        timings = {r["rank"]: r["timings"] for r in results.values() if r["timings"]}
        self.last_timings = timings
        try:
            per_mb = steady_seconds(plan, timings)
        except DistributedError:
            per_mb = float("nan")
        compute = {rank: sum(t1 - t0 for _, t0, t1 in ts) for rank, ts in timings.items()}
        spans = {rank: ts[-1][2] - ts[0][1] for rank, ts in timings.items()}
        kinds: dict[str, float] = {}
        for ts in timings.values():
            for event, t0, t1 in ts:
                k = plan.events[event].kind
                kinds[k] = kinds.get(k, 0.0) + t1 - t0
        self.timing.append(EpochTiming(max(r["seconds"] for r in results.values()), per_mb, num_batches, compute,
                                       spans, kinds))
        return stats

    @property
    def measured_delays(self) -> tuple[int, ...]:
        return tuple(max(o) if o else 0 for o in self.observed)

    def check_delays(self) -> None:
        if self.schedule.kind != "periodic" or any(not o for o in self.observed):
            return
        if self.measured_delays != self.delays:
            raise DistributedError(f"ranks measured gradient delays {self.measured_delays}, schedule "
                                   f"{self.schedule.name} says {self.delays}")

    def state_dict(self) -> dict:
        return {**super().state_dict(), "versions": self.versions, "observed": self.observed}

    def load_state_dict(self, d: dict) -> None:
        super().load_state_dict(d)
        self.versions = list(d.get("versions", [self.step] * self.num_layers))
        self.observed = [dict(o) for o in d.get("observed", [{} for _ in range(self.num_layers)])]


def rank_job(job: worker.Job, rank: int) -> worker.Job:
    """What one rank receives: the computations and weights of the layers it has tasks of, the optimiser states
    of the layers it updates (the others' parameters never reach it)."""
    plan = job.plan
    tasks = {plan.events[i].layer for i in plan.rank_events[rank]}
    runs = {plan.events[i].layer for i in plan.rank_events[rank] if plan.events[i].kind in ("F", "B")}
    updates = {layer for layer, ranks in plan.w_ranks.items() if rank in ranks}
    by_value(job.stages)
    return dataclasses.replace(
        job, stages=job.stages.only(runs),
        weights=[w if i in tasks else {} for i, w in enumerate(job.weights)],
        opt_states=[s if i in updates else {} for i, s in enumerate(job.opt_states)],
        velocity=[v if i in tasks else None for i, v in enumerate(job.velocity)])


class Launch:
    """Start the ranks of one epoch, watch them, and always clean up (see the module docstring)."""

    def __init__(self, plan: Plan, job: worker.Job, timeout_s: float, progress: Callable[[], None] | None,
                 xs: torch.Tensor, ys: torch.Tensor) -> None:
        self.plan, self.job, self.timeout_s, self.progress = plan, job, timeout_s, progress
        self.xs, self.ys = xs, ys  # in shared memory: each rank maps them, nobody copies an epoch of inputs
        self.pids: list[int] = []

    def run(self) -> dict[int, dict]:
        ctx = torch.multiprocessing.get_context("spawn")
        P = self.plan.processors
        status = ctx.Array("q", [-2] * (worker.STATUS_FIELDS * P), lock=False)
        for r in range(P):
            status[r * worker.STATUS_FIELDS + 2] = 0
        q = ctx.Queue()
        jobs = [worker.dumps(rank_job(self.job, r)) for r in range(P)]
        fed = worker.input_ranks(self.plan, self.job.stages)
        procs = [ctx.Process(target=worker.main, daemon=True,
                             args=(r, jobs[r], self.xs if r in fed.input_ranks else None,
                                   self.ys if r in fed.label_ranks else None,
                                   status, q)) for r in range(P)]
        try:
            for p in procs:
                p.start()
            self.pids = [p.pid for p in procs]
            return self._watch(procs, status, q)
        finally:
            for p in procs:
                if p.is_alive():
                    p.terminate()
            for p in procs:
                p.join(5)
                if p.is_alive():
                    p.kill()
                    p.join(5)
            q.cancel_join_thread()
            q.close()

    def _watch(self, procs: list, status: Any, q: Any) -> dict[int, dict]:
        P = self.plan.processors
        results: dict[int, dict] = {}
        errors: dict[int, tuple] = {}
        busy = [r for r in range(P) if self.plan.rank_events[r]]
        snapshot, changed = list(status), time.monotonic()
        started = time.monotonic()
        ticks = 0
        failed_at: float | None = None
        hung: int | None = None
        while len(results) < P:
            try:
                msg = q.get(timeout=0.1)
                if msg[0] == "done":
                    results[msg[1]] = worker.loads(msg[2])
                else:
                    errors[msg[1]] = msg[2:]
            except queue_mod.Empty:
                pass
            now = time.monotonic()
            cur = list(status)
            if cur != snapshot:
                snapshot, changed = cur, now
            if self.progress and busy:
                done = min(cur[r * worker.STATUS_FIELDS + 2] for r in busy)
                while ticks < done:
                    ticks += 1
                    self.progress()
            dead = [r for r, p in enumerate(procs) if p.exitcode is not None and r not in results]
            if failed_at is None and (errors or [r for r in dead if procs[r].exitcode != 0]):
                failed_at = now
            if failed_at is not None and now - failed_at > 2.0:  # let the others report before naming a cause
                break
            all_started = all(cur[r * worker.STATUS_FIELDS] != -2 for r in range(P))
            limit = self.timeout_s if all_started else max(self.timeout_s, 180.0)
            if failed_at is None and now - changed > limit:
                hung = self._hung_rank(cur)
                break
            if failed_at is None and len(dead) == P and now - started > 1.0:
                failed_at = now  # all exited, some without a result
        if len(results) == P:
            return results
        raise self._error(procs, status, errors, hung)

    def _hung_rank(self, cur: list) -> int:
        f = worker.STATUS_FIELDS
        computing = [r for r in range(self.plan.processors) if cur[r * f + 1] in (worker.COMPUTING,
                                                                                  worker.STARTING)]
        if computing:
            return computing[0]
        waiting = [(cur[r * f], r) for r in range(self.plan.processors) if cur[r * f + 1] != worker.FINISHED]
        return min(waiting)[1] if waiting else 0

    def _where(self, status: Any, rank: int) -> str:
        event = int(status[rank * worker.STATUS_FIELDS])
        if event == -2:
            return "before its first slot (starting up)"
        if event < 0:
            return "after its last slot"
        return f"in {self.plan.where(event)}"

    def _error(self, procs: list, status: Any, errors: dict, hung: int | None) -> Exception:
        exc = self._cause(procs, status, errors, hung)
        f = worker.STATUS_FIELDS
        if all(status[r * f] == -2 for r in range(self.plan.processors)) and isinstance(exc, DistributedError):
            return RendezvousError(str(exc))
        return exc

    def _cause(self, procs: list, status: Any, errors: dict, hung: int | None) -> Exception:
        epoch = f"epoch {self.job.epoch + 1}"
        P = self.plan.processors
        tail = f"all {P} workers stopped"
        for rank, (_event, typ, text, _tb) in sorted(errors.items()):
            if typ == "NonFiniteLossError":
                return NonFiniteLossError(f"{text} (rank {rank})")
        for rank, (_event, typ, text, _tb) in sorted(errors.items()):
            if typ not in _COMM_ERRORS:
                return DistributedError(f"rank {rank} failed {self._where(status, rank)} ({epoch}): {typ}: "
                                        f"{text}; {tail}")
        if hung is not None:
            return DistributedError(f"rank {hung} hung {self._where(status, hung)} ({epoch}): no progress for "
                                    f"{self.timeout_s:g} s; {tail}")
        dead = [r for r, p in enumerate(procs) if p.exitcode not in (None, 0) and r not in errors]
        if dead:
            r = dead[0]
            code = procs[r].exitcode
            how = f"was killed by signal {-code}" if code < 0 else f"died (exit code {code})"
            return DistributedError(f"rank {r} {how} {self._where(status, r)} ({epoch}); {tail}")
        if errors:
            rank, (event, typ, text, _tb) = min(errors.items())
            return DistributedError(f"rank {rank} failed {self._where(status, rank)} ({epoch}): {typ}: {text}; "
                                    f"{tail}")
        return DistributedError(f"the workers exited without reporting ({epoch}); {tail}")


def check_options(cfg: Any, *, scheduled: bool) -> None:
    """What a distributed run refuses of a TrainConfig (`scheduled`: it has a schedule to run); checked by
    spikepipe.training before anything is loaded, and here again for a caller of make_trainer alone."""
    if cfg.backend not in BACKENDS:
        raise DistributedError(f"unknown backend {cfg.backend!r}; valid: {', '.join(BACKENDS)}")
    if not scheduled:
        raise DistributedError(f"--backend {cfg.backend} runs a schedule on its processors; give --schedule NAME "
                               f"(plain BPTT is one process: use --backend emulate)")
    if cfg.mode != "exact":
        raise DistributedError(f"--mode {cfg.mode} is a single-process approximation; the distributed backend "
                               f"executes the schedule exactly (--mode exact)")
    if cfg.method != "bptt":
        raise DistributedError(f"--method {cfg.method} is not supported with --backend {cfg.backend}")


def make_trainer(cfg: Any, net: nn.Module | ModelFn, schedule: Schedule | None, total_steps: int,
                 steps_per_epoch: int) -> DistributedPipeline:
    """The runner's dispatch point for `--backend gloo|nccl` (cfg is a spikepipe.train.runner.TrainConfig)."""
    check_options(cfg, scheduled=schedule is not None)
    return DistributedPipeline(net, cfg.optim(), schedule, total_steps=total_steps, backend=cfg.backend,
                               stash=cfg.stash, compensation=cfg.compensation, anneal_steps=steps_per_epoch,
                               threads=cfg.threads)
