"""Chunked-in-time execution of a layer-structured SNN with the membrane state carried between chunks.

The memory-saving methods need what the multi-step blocks hide: the membrane potential at a chunk border, so that
a chunk of timesteps can be run (and re-run) on its own. `run_chunk` runs timesteps [t0, t1) of the whole network
given the state at t0 and returns the outputs and the state at t1; running T steps in any chunking gives the same
values, so checkpointed BPTT is exact.

Two places where this differs from the zoo block's own forward, both forced by chunking:
- Batch normalisation uses the batch statistics of each timestep separately (shared gamma/beta, as in BNTT),
  because statistics over all T*B would couple every chunk with every other one. Running statistics are never
  touched; evaluation uses per-timestep batch statistics too. Networks without normalisation (snn-mlp) compute
  exactly what the zoo block computes.
- Dropout is refused: a re-run forward would draw a different mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from spikepipe.methods.registry import MethodError
from spikepipe.snn import spike
from spikepipe.train import netfn

State = list[torch.Tensor | None]  # membrane potential of every block at a chunk border (None: no neuron / zero)
Weights = dict[str, torch.Tensor]


def check_steppable(net: nn.Module) -> None:
    """The network must be an SNNNet of SpikingBlocks (synapse, norm, neuron, pool) without dropout, or a user's
    module that steps itself (spikepipe.methods.usernet.UserNet, checked when it was built)."""
    if hasattr(net, "run_chunk"):
        return
    netfn.check_net(net)
    for i, b in enumerate(net.blocks):
        if not all(hasattr(b, a) for a in ("synapse", "norm", "neuron", "pool", "flatten_input")):
            raise MethodError(f"block {i} ({type(b).__name__}) is not a spikepipe.zoo.SpikingBlock; the time-chunked "
                              f"methods need synapse/norm/neuron/pool blocks (use spikepipe.zoo networks)")
        if getattr(b, "dropout", None) is not None:
            raise MethodError(f"block {i} has dropout; recomputation would draw a new mask, build it without dropout")
        if b.norm is not None and not isinstance(b.norm, nn.modules.batchnorm._BatchNorm):
            raise MethodError(f"block {i}: normalisation {type(b.norm).__name__} is not supported (BatchNorm only)")


def _sub(weights: Weights, prefix: str) -> Weights:
    p = prefix + "."
    return {k[len(p):]: v for k, v in weights.items() if k.startswith(p)}


def _fold(module: nn.Module, weights: Weights | None, x: torch.Tensor) -> torch.Tensor:
    t, b = x.shape[0], x.shape[1]
    flat = x.reshape(t * b, *x.shape[2:])
    y = functional_call(module, weights, (flat,)) if weights else module(flat)
    return y.reshape(t, b, *y.shape[1:])


def batchnorm_per_step(y: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                       eps: float) -> torch.Tensor:
    """BatchNorm with the statistics of each timestep's batch ([c, B, C, ...]: reduce over B and space).

    Folding time into channels, [B, c*C, ...], lets the fused native op compute per-(t, channel) statistics and
    keep only its input and two small vectors for the backward."""
    c, b, ch = y.shape[0], y.shape[1], y.shape[2]
    folded = y.transpose(0, 1).reshape(b, c * ch, *y.shape[3:])
    w = None if weight is None else weight.repeat(c)
    bb = None if bias is None else bias.repeat(c)
    out = F.batch_norm(folded, None, None, w, bb, training=True, eps=eps)
    return out.reshape(b, c, ch, *y.shape[3:]).transpose(0, 1)


def lif_chunk(neuron: nn.Module, weights: Weights, x: torch.Tensor,
              u0: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """spikepipe.snn.LIF's update over the chunk x [c, B, ...] starting from membrane u0 (zeros if None)."""
    beta = weights["beta"].clamp(0.0, 1.0) if neuron.learn_beta else neuron.beta
    u = torch.zeros_like(x[0]) if u0 is None else u0
    out = []
    for t in range(x.shape[0]):
        u = beta * u + x[t]
        s = spike(u - neuron.threshold, neuron.surrogate, neuron.alpha, neuron.fire_on_equal)
        r = s.detach() if neuron.detach_reset else s
        u = u - r * neuron.threshold if neuron.reset == "subtract" else u * (1.0 - r)
        out.append(s)
    return torch.stack(out), u


def block_chunk(block: nn.Module, weights: Weights, x: torch.Tensor, residual: torch.Tensor | None,
                u0: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    if block.flatten_input:
        x = x.flatten(2)
    y = _fold(block.synapse, _sub(weights, "synapse"), x)
    if block.norm is not None:
        nw = _sub(weights, "norm")
        y = batchnorm_per_step(y, nw.get("weight"), nw.get("bias"), block.norm.eps)
    if residual is not None:
        y = y + residual
    u = None
    if block.neuron is not None:
        y, u = lif_chunk(block.neuron, _sub(weights, "neuron"), y, u0)
    if block.pool is not None:
        y = _fold(block.pool, None, y)
    return y, u


def run_chunk(net: nn.Module, weights: Sequence[Weights], x: torch.Tensor, state: State | None,
              layers: range | None = None, inputs: dict[int, torch.Tensor] | None = None,
              ) -> tuple[list[torch.Tensor | None], State]:
    """Run blocks `layers` (default: all) on the chunk x [c, B, ...].

    Returns (outputs of every block, None for blocks not run) and the state after the chunk. Block outputs from
    outside `layers` that a block reads must be given in `inputs` (e.g. detached at a local-loss border).
    A user's module (usernet.UserNet) runs itself; its state entries are dicts ("path:attr" -> tensor).
    """
    if hasattr(net, "run_chunk"):
        return net.run_chunk(weights, x, state, layers, inputs)
    n = len(net.blocks)
    layers = layers if layers is not None else range(n)
    outs: list[torch.Tensor | None] = [None] * n
    for k, v in (inputs or {}).items():
        outs[k] = v
    new_state: State = list(state) if state is not None else [None] * n
    for i in layers:
        src, res = net.sources[i], net.residuals[i]
        xin = x if src == -1 else outs[src]
        rin = None if res is None else (x if res == -1 else outs[res])
        if xin is None or (res is not None and rin is None):
            raise MethodError(f"block {i} reads block {src if xin is None else res}, which was not run nor given")
        outs[i], new_state[i] = block_chunk(net.blocks[i], weights[i], xin, rin,
                                            None if state is None else state[i])
    return outs, new_state


def logits(net: nn.Module, weights: Sequence[Weights], x: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """Logits = mean over T of the last block's output, computed chunk by chunk (any chunk gives the same)."""
    t_total = x.shape[0]
    chunk = chunk or t_total
    state: State | None = None
    acc = None
    for t0 in range(0, t_total, chunk):
        outs, state = run_chunk(net, weights, x[t0:t0 + chunk], state)
        part = outs[-1].sum(0)
        acc = part if acc is None else acc + part
    return acc / t_total


def state_nbytes(state: State) -> int:
    return sum(s.numel() * s.element_size() for s in state_tensors(state))


# A state entry (one layer's) is None, a membrane tensor (the built-in blocks) or a dict of a user's neuron states
# ("path:attr" -> tensor or the float a SpikingJelly neuron starts from); these helpers treat all three alike.

def state_tensors(state: Sequence[object] | None) -> list[torch.Tensor]:
    """Every tensor in a state (what a method holds outside autograd)."""
    out: list[torch.Tensor] = []
    for e in state or ():
        vals = e.values() if isinstance(e, dict) else (e,)
        out += [v for v in vals if isinstance(v, torch.Tensor)]
    return out


def detach_entry(e: object, grad: bool = False) -> object:
    """The entry cut from the graph; `grad`: its floating tensors become leaves that require grad."""
    def cut(v: object) -> object:
        if not isinstance(v, torch.Tensor):
            return v
        return v.detach().requires_grad_(grad and v.is_floating_point())
    return {k: cut(v) for k, v in e.items()} if isinstance(e, dict) else cut(e)


def entry_grads(e: object, grads: dict[int, torch.Tensor | None]) -> object:
    """The entry with each tensor replaced by its gradient (by tensor id; None where it has none)."""
    if isinstance(e, dict):
        return {k: grads.get(id(v)) for k, v in e.items() if isinstance(v, torch.Tensor)}
    return None if e is None else grads.get(id(e))


def entry_dot(s: object, g: object) -> torch.Tensor | int:
    """sum(s * g) over the entry: the objective term that carries gradient g into the state s."""
    if isinstance(g, dict):
        return sum(((s[k] * v).sum() for k, v in g.items() if v is not None), 0)  # type: ignore[index]
    return 0 if s is None or g is None else (s * g).sum()
