"""Functional optimisers and learning-rate schedules shared by the plain and the pipelined trainer.

Updates are out of place: `step` returns new weight tensors and leaves the old ones untouched. A weight version
is therefore just a reference, which is how the pipelined trainer stashes the weights a forward used without
copying. State is kept per layer (optimisers are element-wise, so per-layer steps equal one global step).
The formulas follow torch.optim.SGD (momentum, dampening 0) and torch.optim.Adam (non-amsgrad) exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from spikepipe.ir import SpikePipeError

OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("constant", "cosine", "step")


class OptimizerError(SpikePipeError):
    """Unknown optimiser or schedule, or a bad hyper-parameter."""


@dataclass(frozen=True)
class OptimConfig:
    name: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    schedule: str = "cosine"
    step_every: int = 0  # "step" schedule: decay every this many updates (0: a third of the run)
    step_gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise OptimizerError(f"unknown optimizer {self.name!r}; valid names: {', '.join(OPTIMIZERS)}")
        if self.schedule not in LR_SCHEDULES:
            raise OptimizerError(f"unknown lr schedule {self.schedule!r}; valid: {', '.join(LR_SCHEDULES)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise OptimizerError(f"learning rate must be positive and finite, got {self.lr}")


def lr_at(cfg: OptimConfig, step: int, total_steps: int) -> float:
    """Learning rate for the update that applies the gradient of global minibatch `step` (0-based)."""
    if cfg.schedule == "constant" or total_steps <= 0:
        return cfg.lr
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
    every = cfg.step_every or max(1, total_steps // 3)
    return cfg.lr * cfg.step_gamma ** (step // every)


def pipemare_scale(delay: int, step: int, anneal_steps: int) -> float:
    """PipeMare's learning-rate rescheduling (T1): divide the rate of a layer with delay tau by tau**p, with p
    annealed linearly from 1 to 0 over `anneal_steps` updates. Delay 0 or 1 is left alone."""
    if delay <= 1:
        return 1.0
    p = 1.0 - min(1.0, step / max(1, anneal_steps))
    return float(delay) ** (-p)


class LayerOptimizer:
    """Optimiser state of one layer's parameters (a dict name -> tensor)."""

    def __init__(self, cfg: OptimConfig, params: dict[str, torch.Tensor]) -> None:
        self.cfg = cfg
        self.steps = 0
        self.state: dict[str, dict[str, torch.Tensor]] = {k: {} for k in params}

    def step(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor | None],
             lr: float) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        self.steps += 1
        out = {}
        with torch.no_grad():
            for k, w in params.items():
                g = grads.get(k)
                if g is None:
                    out[k] = w
                    continue
                if cfg.weight_decay:
                    g = g.add(w, alpha=cfg.weight_decay)
                st = self.state[k]
                if cfg.name == "sgd":
                    if cfg.momentum:
                        buf = st.get("momentum")
                        buf = g.clone() if buf is None else buf.mul(cfg.momentum).add_(g)
                        st["momentum"] = buf
                        g = buf
                    out[k] = w.add(g, alpha=-lr)
                else:
                    b1, b2 = cfg.betas
                    if "exp_avg" not in st:
                        st["exp_avg"], st["exp_avg_sq"] = torch.zeros_like(w), torch.zeros_like(w)
                    m = st["exp_avg"].lerp(g, 1 - b1)
                    v = st["exp_avg_sq"].mul(b2).addcmul_(g, g.conj(), value=1 - b2)
                    st["exp_avg"], st["exp_avg_sq"] = m, v
                    bc1 = 1 - b1 ** self.steps
                    bc2 = 1 - b2 ** self.steps
                    denom = (v.sqrt() / math.sqrt(bc2)).add_(cfg.eps)
                    out[k] = w.addcdiv(m, denom, value=-lr / bc1)
        return out

    def velocity(self, params: dict[str, torch.Tensor], lr: float) -> dict[str, torch.Tensor] | None:
        """The change one more update would make with the current state and no new gradient information
        (SpecTrain's smoothed gradient times the rate). None before the first update."""
        if self.steps == 0:
            return None
        cfg = self.cfg
        out = {}
        with torch.no_grad():
            for k, w in params.items():
                st = self.state[k]
                if cfg.name == "sgd":
                    buf = st.get("momentum")
                    out[k] = torch.zeros_like(w) if buf is None else buf * lr
                else:
                    if "exp_avg" not in st:
                        out[k] = torch.zeros_like(w)
                        continue
                    b1, b2 = cfg.betas
                    bc1, bc2 = 1 - b1 ** self.steps, 1 - b2 ** self.steps
                    denom = (st["exp_avg_sq"].sqrt() / math.sqrt(bc2)).add_(cfg.eps)
                    out[k] = st["exp_avg"] / denom * (lr / bc1)
        return out

    def state_dict(self) -> dict:
        return {"steps": self.steps, "state": self.state}

    def load_state_dict(self, d: dict) -> None:
        self.steps = int(d["steps"])
        self.state = {k: dict(v) for k, v in d["state"].items()}
