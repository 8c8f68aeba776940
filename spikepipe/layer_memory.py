"""What one layer keeps for its backward pass, item by item, at the hardware's word size.

Per layer l and minibatch of B samples over T timesteps (BPTT; the methods in spikepipe.methods shrink these):
  synapse_input   the synaptic op's input X, for the weight gradient: 1 bit per element when it is spikes
                  (every producer fires), otherwise one word
  norm_input      each batch normalisation's input, one word per element
  norm_stats      its batch mean and inverse standard deviation, two words per channel
  membrane        the surrogate's input (u_t - threshold) at every timestep, one word per element
  pool_indices    max pooling: which input of its window won, ceil(log2(kh*kw)) bits per output element
  pool_input      average pooling: nothing (its backward needs only the shape)
  dropout_mask    1 bit per element
  loss            the last layer: the softmax over the classes, one word per class per sample
Each item also states `torch_bytes`, what torch's autograd saves for the same op converted to the same word size
(floats at the word size, integers at their own size), and `choice` says why the two differ where they do (the
tests check both against `torch.autograd.graph.saved_tensors_hooks`). Weight versions stashed for pipelined
schedules are not an item of the layer: the simulator charges them per in-flight minibatch (spikepipe.sim.memory).
A layer read by several consumers is kept once by each consumer (each holds what its own backward needs, possibly
on another processor); torch keeps one shared tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import ceil, log2, prod

from spikepipe.ir import LayerSpec

SPIKES_AS_BITS = "spikes kept as 1-bit values (torch keeps them as floats)"
POOL_WINNERS = ("max pooling keeps the winning position in each window, ceil(log2(kh*kw)) bits per output "
                "(torch keeps its input as floats and int64 indices)")
AVGPOOL_SHAPE = "average pooling's backward needs only the shape (torch keeps its input)"
DROPOUT_BITS = "the dropout mask kept as bits (torch keeps one byte per element)"
LABELS_ARE_DATA = "the labels are input data, not kept activations (torch keeps int64 targets and a scalar weight)"


@dataclass(frozen=True)
class KeptItem:
    name: str
    bytes: int  # what the hardware model keeps
    torch_bytes: int  # what torch's autograd keeps for the same op at the same word size
    choice: str = ""  # why bytes != torch_bytes (empty when they are equal)

    def to_json(self) -> dict[str, object]:
        return {"item": self.name, "bytes": self.bytes, "torch_bytes": self.torch_bytes, "choice": self.choice}


def _elems(shape: Sequence[int]) -> int:
    return int(prod(shape))


def kept_items(layer: LayerSpec, fires: Sequence[bool], *, batch: int, timesteps: int, word_bytes: int,
               last: bool = False) -> tuple[KeptItem, ...]:
    """The items layer `layer` keeps from its F to its B/W. `fires[i]` says whether layer i emits spikes."""
    bt = batch * timesteps
    w = word_bytes
    items: list[KeptItem] = []
    in_e = _elems(layer.in_shape) * bt
    if all(src >= 0 and fires[src] for src in layer.inputs):
        items.append(KeptItem("synapse_input", ceil(in_e / 8), in_e * w, SPIKES_AS_BITS))
    else:
        items.append(KeptItem("synapse_input", in_e * w, in_e * w))
    for p in layer.post_ops:
        if p.kind == "batchnorm":
            n = _elems(p.in_shape) * bt * w
            items.append(KeptItem("norm_input", n, n))
            stats = 2 * p.in_shape[0] * w
            items.append(KeptItem("norm_stats", stats, stats))
        elif p.kind == "layernorm":  # input, and a mean and 1/std per normalised row (the last dim)
            n = _elems(p.in_shape) * bt * w
            items.append(KeptItem("norm_input", n, n))
            stats = 2 * _elems(p.in_shape[:-1]) * bt * w
            items.append(KeptItem("norm_stats", stats, stats))
    if layer.neuron is not None:
        # u_t (or the surrogate's input) and every other state variable of the neuron, per step, for BPTT
        n = _elems(layer.out_shape) * bt * w * layer.neuron.state_vars
        items.append(KeptItem("membrane", n, n))
    for p in layer.post_ops:
        if p.kind == "maxpool":
            outs = _elems(p.out_shape) * bt
            window = p.kernel[0] * p.kernel[1]
            bits = max(1, ceil(log2(window))) if window > 1 else 0
            torch = _elems(p.in_shape) * bt * w + outs * 8
            items.append(KeptItem("pool_indices", ceil(outs * bits / 8), torch, POOL_WINNERS))
        elif p.kind in ("avgpool", "adaptiveavgpool"):
            # torch runs a global average pool as a mean, which keeps nothing; other windows keep the input
            global_mean = p.kind == "adaptiveavgpool" and _elems(p.out_shape[1:]) == 1
            torch = 0 if global_mean else _elems(p.in_shape) * bt * w
            items.append(KeptItem("pool_input", 0, torch, AVGPOOL_SHAPE if torch else ""))
        elif p.kind == "dropout":
            n = _elems(p.in_shape) * bt
            items.append(KeptItem("dropout_mask", ceil(n / 8), n, DROPOUT_BITS))
    if last:
        classes = _elems(layer.output_shape)
        items.append(KeptItem("loss", batch * classes * w, batch * classes * w + batch * 8 + w, LABELS_ARE_DATA))
    return tuple(items)


def kept_bytes(items: Sequence[KeptItem]) -> int:
    return sum(i.bytes for i in items)


def graph_items(layers: Sequence[LayerSpec], *, batch: int, timesteps: int,
                word_bytes: int) -> list[tuple[KeptItem, ...]]:
    """kept_items of every layer of a network (the last layer carries the loss)."""
    fires = [layer.neuron is not None for layer in layers]
    return [kept_items(layer, fires, batch=batch, timesteps=timesteps, word_bytes=word_bytes,
                       last=layer.index == len(layers) - 1) for layer in layers]
