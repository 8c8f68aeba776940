"""BlocTrain (Srinivasan & Roy, 2021): blocks of layers trained one after another with local classifiers, the
deeper blocks only on the classes the earlier ones find hard, a hard-class detector per block, early exit.

Phases (the run's epochs are split evenly among the blocks), in sequence:
  phase g   block g and its local classifier train with BPTT on the samples whose label is in the class set C_g
            (C_0 = all classes); blocks before g are frozen and run forward only (no graph), so only block g's
            graph is held. The hard-class detector of block g-1 (a binary linear head on block g-1's output, "is
            this sample of a hard class?") trains on every sample of the same minibatches.
  end of g  class-wise accuracy of block g's classifier on held-out data (`set_holdout`; the runner gives the
            validation split); the ceil(hard_fraction*|C_g|) worst classes become H_g = C_{g+1}. Without held-out
            data the phase's last-epoch training accuracy is used instead (`hard_class_source` says which).
Learning rate: every phase is a training of its own block, so the schedule (e.g. cosine) runs over that phase's
  steps, not over the whole run (over the whole run, block 0 would never anneal and the last block would start at
  a fraction of the rate).
Inference (early exit): after block g < last, a sample leaves when the detector calls it easy AND the classifier's
softmax confidence over the easy classes C_g minus H_g reaches `exit_confidence`; it is answered over those easy
classes. The others continue, and their answer combines the classifiers (the paper combines their outputs): block
g's softmax over C_g keeps the probabilities of its easy classes, and its probability mass on the hard set H_g is
split by the next block's softmax over C_{g+1} = H_g, and so on to the last block. A sample of an easy class that
was not confident enough to leave is therefore not forced into a hard class. `exit_counts` records where samples
left (or were answered); `inference_macs_per_sample` turns them into synaptic MACs per sample against the
end-to-end network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from spikepipe.methods.local import BLOCTRAIN_HEAD_POOL, Heads, block_output_shapes, partition
from spikepipe.methods.memory import NO_PROBE, Probe
from spikepipe.methods.stepped import MethodError, check_steppable, run_chunk
from spikepipe.train.bptt import EpochStats, TrainerBase
from spikepipe.train.optim import OptimConfig, lr_at

GetBatch = Callable[[int], tuple[torch.Tensor, torch.Tensor]]
MASKED = -1.0e4  # logit of a class a classifier may not answer (finite, so cross-entropy stays finite)


@dataclass(frozen=True)
class InferenceMacs:
    """Synaptic MACs per sample of early-exit inference against the end-to-end network."""

    mean_macs_per_sample: float  # with early exit, averaged over `exit_counts`
    full_macs_per_sample: int  # every layer run (no early exit)


class BlocTrain(TrainerBase):
    mode = "bloctrain"

    def __init__(self, net: nn.Module, optim: OptimConfig, *, total_steps: int, example: torch.Tensor, epochs: int,
                 blocks: int | Sequence[int] = 2, hard_fraction: float = 0.5, seed: int = 0,
                 weights: list | None = None, exit_confidence: float = 0.5) -> None:
        check_steppable(net)
        super().__init__(net, optim, total_steps=total_steps, weights=weights)
        self.ranges = partition(self.num_layers, blocks)
        if epochs < len(self.ranges):
            raise MethodError(f"BlocTrain trains {len(self.ranges)} blocks one after another and needs at least one "
                              f"epoch each; got --epochs {epochs}")
        if not 0.0 < hard_fraction < 1.0:
            raise MethodError(f"hard_fraction must be in (0, 1), got {hard_fraction}")
        if not 0.0 <= exit_confidence <= 1.0:
            raise MethodError(f"exit_confidence must be in [0, 1], got {exit_confidence}")
        self.hard_fraction = hard_fraction
        self.exit_confidence = exit_confidence
        self.holdout: tuple[torch.Tensor, torch.Tensor] | None = None
        self.hard_class_source = "train"
        self.epochs = epochs
        self.epoch = 0
        shapes = block_output_shapes(net, self.weights, example)
        self.classes = int(torch.Size(shapes[-1]).numel())
        ends = [b - 1 for _, b in self.ranges[:-1]]
        self.heads = Heads(ends, shapes, self.classes, optim, seed, pool=BLOCTRAIN_HEAD_POOL)
        self.detectors = Heads(ends, shapes, 1, optim, seed + 1, out_features=1, pool=BLOCTRAIN_HEAD_POOL)
        self.class_sets: list[list[int]] = [list(range(self.classes))]  # C_g, grows as phases end
        self.exit_counts = [0] * len(self.ranges)
        self.probe: Probe = NO_PROBE  # set by a memory measurement to see the state held outside autograd
        self._phase_hits: list[list[int]] = []

    def phase_of(self, epoch: int) -> int:
        per = self.epochs / len(self.ranges)
        return min(len(self.ranges) - 1, int(epoch // per))

    @property
    def phase(self) -> int:
        return self.phase_of(self.epoch)

    def phase_epochs(self) -> list[int]:
        """How many of the run's epochs each phase trains (the epochs are split evenly, the earlier phases
        taking the remainder)."""
        counts = [0] * len(self.ranges)
        for e in range(self.epochs):
            counts[self.phase_of(e)] += 1
        return counts

    def lr(self, layer: int, step: int) -> float:
        """The rate of the current phase's schedule: phase g's steps run the whole schedule (warm to annealed)."""
        per_epoch = max(1, self.total_steps // self.epochs)
        counts = self.phase_epochs()
        g = self.phase
        start = sum(counts[:g]) * per_epoch
        return lr_at(self.cfg, max(0, step - start), counts[g] * per_epoch)

    def _mask(self, allowed: Sequence[int]) -> torch.Tensor:
        m = torch.full((self.classes,), MASKED)
        m[list(allowed)] = 0.0
        return m

    def _frozen_features(self, x: torch.Tensor, upto: int) -> dict[int, torch.Tensor]:
        """The outputs of the frozen blocks before block range `upto` (no graph) that block range `upto` or the
        previous block's detector reads; the others are freed at once."""
        if upto == 0:
            return {}
        a, b = self.ranges[upto]
        net = self.net
        needed = {r for i in range(a, b) for r in (net.sources[i], net.residuals[i]) if r is not None and 0 <= r < a}
        needed.add(a - 1)
        with torch.no_grad():
            outs, _ = run_chunk(net, self.weights, x, None, layers=range(0, a))
        return {i: o for i, o in enumerate(outs) if o is not None and i in needed}

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One minibatch of the current phase; returns (loss, logits over the phase's samples, their labels)."""
        g = self.phase
        a, b = self.ranges[g]
        given = self._frozen_features(x, g)
        if g > 0:  # the previous block's hard-class detector learns on all samples
            e = self.ranges[g - 1][1] - 1
            det = self.detectors.leaves(e)
            target = torch.isin(y, torch.tensor(self.class_sets[g])).float()
            dl = F.binary_cross_entropy_with_logits(self.detectors.logits(det, given[e]).squeeze(1), target)
            gs = torch.autograd.grad(dl, list(det.values()))
            self.detectors.apply(e, dict(zip(det, gs, strict=True)), self.lr(e, self.step))
        keep = torch.isin(y, torch.tensor(self.class_sets[g]))
        if not bool(keep.any()):
            return torch.zeros(()), torch.zeros(0, self.classes), y[:0]
        xs, ys = x[:, keep], y[keep]
        given = {i: v[:, keep] for i, v in given.items()}
        token = self.probe.hold(given.values())
        leaves = [{k: w.detach().requires_grad_() for k, w in ws.items()} if a <= i < b else ws
                  for i, ws in enumerate(self.weights)]
        outs, _ = run_chunk(self.net, leaves, xs, None, layers=range(a, b), inputs=given)
        last = b == self.num_layers
        head = None if last else self.heads.leaves(b - 1)
        raw = outs[-1].mean(0) if last else self.heads.logits(head, outs[b - 1])
        out = raw + self._mask(self.class_sets[g])
        loss = F.cross_entropy(out, ys)
        params = [w for i in range(a, b) for w in leaves[i].values()] + (list(head.values()) if head else [])
        gs = iter(torch.autograd.grad(loss, params, allow_unused=True))
        for i in range(a, b):
            self.apply(i, {k: next(gs) for k in leaves[i]}, self.step)
        if head:
            self.heads.apply(b - 1, {k: next(gs) for k in head}, self.lr(b - 1, self.step))
        self.probe.drop(token)
        return loss.detach(), out.detach(), ys

    def run_epoch(self, get_batch: GetBatch, num_batches: int, progress: Callable[[], None] | None = None,
                  ) -> EpochStats:
        stats = EpochStats()
        phase = self.phase
        hits = [[0, 0] for _ in range(self.classes)]  # per class: correct, seen (this epoch, this phase's head)
        for n in range(num_batches):
            x, y = get_batch(n)
            loss, out, ys = self.train_step(x, y)
            if len(ys):
                stats.add(loss, out, ys, self.step)
                pred = out.argmax(1)
                for c, p in zip(ys.tolist(), pred.tolist(), strict=True):
                    hits[c][0] += int(c == p)
                    hits[c][1] += 1
            self.step += 1
            if progress:
                progress()
        self.epoch += 1
        if self.phase != phase:  # the phase ended: its worst classes become the next block's class set
            cur = self.class_sets[phase]
            if self.holdout is not None:
                hits = self._holdout_hits(phase)
                self.hard_class_source = "holdout"
            acc = {c: hits[c][0] / hits[c][1] if hits[c][1] else 0.0 for c in cur}
            k = max(1, math.ceil(self.hard_fraction * len(cur)))
            hard = sorted(sorted(cur, key=lambda c: (acc[c], c))[:k])
            self.class_sets.append(hard)
        return stats

    def set_holdout(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Held-out samples (encoded, [T, N, ...]) whose class-wise accuracy picks the hard classes."""
        self.holdout = (x, y)

    @torch.no_grad()
    def _holdout_hits(self, g: int) -> list[list[int]]:
        """Per class: (correct, seen) of block g's classifier over C_g on the held-out samples of C_g."""
        x, y = self.holdout  # type: ignore[misc]
        hits = [[0, 0] for _ in range(self.classes)]
        a, b = self.ranges[g]
        for i in range(0, len(y), 256):
            xs, ys = x[:, i:i + 256], y[i:i + 256]
            keep = torch.isin(ys, torch.tensor(self.class_sets[g]))
            if not bool(keep.any()):
                continue
            xs, ys = xs[:, keep], ys[keep]
            given = self._frozen_features(xs, g)
            outs, _ = run_chunk(self.net, self.weights, xs, None, layers=range(a, b), inputs=given)
            raw = outs[-1].mean(0) if b == self.num_layers else self.heads.logits(self.heads.params[b - 1], outs[b - 1])
            pred = (raw + self._mask(self.class_sets[g])).argmax(1)
            for c, p in zip(ys.tolist(), pred.tolist(), strict=True):
                hits[c][0] += int(c == p)
                hits[c][1] += 1
        return hits

    def classifier_overhead(self) -> float:
        """(network + local classifiers + detectors) parameters / network parameters (the paper's 1.45x)."""
        net = sum(w.numel() for ws in self.weights for w in ws.values())
        extra = sum(v.numel() for h in (self.heads, self.detectors) for p in h.params.values() for v in p.values())
        return (net + extra) / net

    def inference_macs_per_sample(self, layer_macs: Sequence[int]) -> InferenceMacs:
        """Mean MACs per sample with early exit and MACs of the end-to-end network, from `exit_counts` and the
        forward MACs of every layer for one sample over all T (e.g. a task graph's F GEMMs / B). A sample that
        left at block g paid the layers of blocks 0..g and the classifiers and detectors it passed."""
        full = int(sum(layer_macs))
        seen = sum(self.exit_counts)
        if not seen:
            return InferenceMacs(mean_macs_per_sample=float(full), full_macs_per_sample=full)
        cost, total = 0, 0.0
        for g, (a, b) in enumerate(self.ranges):
            cost += sum(layer_macs[a:b])
            if b < self.num_layers:
                e = b - 1
                cost += sum(p["weight"].numel() for p in (self.heads.params[e], self.detectors.params[e]))
            total += cost * self.exit_counts[g]
        return InferenceMacs(mean_macs_per_sample=total / seen, full_macs_per_sample=full)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Early-exit inference: log-probabilities (argmax is the answer; see the module docstring for how the
        classifiers of the blocks a sample passed combine). Blocks not yet trained (class set unknown) are not
        run: the last trained block answers over its class set."""
        batch = x.shape[1]
        out = torch.full((batch, self.classes), MASKED)
        mass = torch.zeros(batch)  # log of the probability the earlier blocks left to the current class set
        alive = torch.ones(batch, dtype=torch.bool)
        given: dict[int, torch.Tensor] = {}
        trained = len(self.class_sets)
        for g, (a, b) in enumerate(self.ranges):
            idx = alive.nonzero().squeeze(1)
            if len(idx) == 0:
                break
            sub = {i: v[:, idx] for i, v in given.items()}
            outs, _ = run_chunk(self.net, self.weights, x[:, idx], None, layers=range(a, b), inputs=sub)
            if b == self.num_layers:
                raw = outs[-1].mean(0)
            else:
                raw = self.heads.logits(self.heads.params[b - 1], outs[b - 1])
            logp = F.log_softmax(raw + self._mask(self.class_sets[g]), 1) + mass[idx].unsqueeze(1)
            if b == self.num_layers or g == trained - 1:
                cols = torch.tensor(self.class_sets[g])
                out[idx.unsqueeze(1), cols] = logp[:, cols]
                self.exit_counts[g] += len(idx)
                break
            hard_set = self.class_sets[g + 1]
            easy = sorted(set(self.class_sets[g]) - set(hard_set))
            easy_logits = raw + self._mask(easy)
            confident = F.softmax(easy_logits, 1).max(1).values >= self.exit_confidence
            hard = self.detectors.logits(self.detectors.params[b - 1], outs[b - 1]).squeeze(1) > 0
            go = ~hard & confident  # the detector says easy and the classifier is sure enough
            leave = idx[go]
            out[leave] = F.log_softmax(easy_logits[go], 1)
            stay = idx[~go]  # keep their easy classes' probabilities; the hard set's mass goes to block g+1
            cols = torch.tensor(easy)
            out[stay.unsqueeze(1), cols] = logp[~go][:, cols]
            mass[stay] = torch.logsumexp(logp[~go][:, torch.tensor(hard_set)], 1)
            self.exit_counts[g] += len(leave)
            alive[leave] = False
            given = {i: o for i, o in enumerate(outs) if o is not None}
            given = {i: torch.zeros(v.shape[0], batch, *v.shape[2:]).index_copy_(1, idx, v)
                     for i, v in given.items()}
        return out

    def state_dict(self) -> dict:
        return {**super().state_dict(), "heads": self.heads.state_dict(), "detectors": self.detectors.state_dict(),
                "class_sets": self.class_sets, "epoch": self.epoch}

    def load_state_dict(self, d: dict) -> None:
        super().load_state_dict(d)
        self.heads.load_state_dict(d["heads"])
        self.detectors.load_state_dict(d["detectors"])
        self.class_sets = [list(c) for c in d["class_sets"]]
        self.epoch = int(d["epoch"])
