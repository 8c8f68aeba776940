"""`--backend gloo` on users' own modules (no block protocol): a SpikingJelly multi-step nn.Sequential with
BatchNorm and an snnTorch model with its time loop in forward, cut into their layers by torch.fx, each rank holding
and running only its layers. The oracle is the single-process emulation on the whole module: the same final
weights (max abs difference <= 1e-6), the same measured delays, the same BatchNorm statistics."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from spikepipe.distributed.stages import PartitionError, build_stages
from spikepipe.train.model import ModelFn
from spikepipe.train.runner import TrainConfig, trace_layers, trace_user_model
from spikepipe.training import run

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "experiments" / "train_user_models" / "models.py"


def _models():
    spec = importlib.util.spec_from_file_location("train_user_models_dist", MODELS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _quadrants(path: Path, n: int) -> Path:
    """28x28 images whose class is the bright quadrant (as tests/test_train_user.py)."""
    rng = np.random.default_rng(5)
    arrays = {}
    for split, m in (("train", n), ("test", 16)):
        y = rng.integers(0, 4, m)
        x = (rng.random((m, 1, 28, 28)) * 60).astype(np.uint8)
        for i, c in enumerate(y):
            r, col = divmod(int(c), 2)
            x[i, :, 14 * r:14 * r + 14, 14 * col:14 * col + 14] += 180
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    np.savez(path, **arrays)
    return path


def _train(model: str, data: Path, **kw) -> tuple[dict, dict[str, torch.Tensor]]:
    net, example = getattr(_models(), model)()
    c = TrainConfig(network=f"{MODELS}:{model}", dataset=str(data), epochs=1, batch=8, lr=3e-3, **kw)
    result = run(c, model=(net, example))
    return result, {k: v.detach().clone() for k, v in net.state_dict().items()}


SLOW = pytest.mark.slow  # each library at P=2 and P=4 by default; the other two pairings with -m slow
CASES = [("spikingjelly_cnn", "spikepipe", 2, True), pytest.param("spikingjelly_cnn", "pipedream", 4, False, marks=SLOW),
         pytest.param("snntorch_cnn", "pipedream", 2, True, marks=SLOW), ("snntorch_cnn", "spikepipe", 4, True)]


@pytest.mark.parametrize(("model", "schedule", "processors", "stash"), CASES)
def test_plain_module_on_gloo_equals_emulation(tmp_path, model, schedule, processors, stash):
    pytest.importorskip("spikingjelly" if model.startswith("spikingjelly") else "snntorch")
    data = _quadrants(tmp_path / "q.npz", 56)  # 7 minibatches of 8: the pipeline fills and reaches its delays
    kw = dict(schedule=schedule, processors=processors, stash=stash)
    emulated, we = _train(model, data, **kw)
    real, wr = _train(model, data, backend="gloo", **kw)
    assert real["backend"] == "gloo"
    assert real["measured_delays"] == emulated["measured_delays"] == emulated["gradient_delays"]
    assert any(real["measured_delays"])
    float_keys = [k for k in we if we[k].is_floating_point()]
    assert float_keys and we.keys() == wr.keys()
    assert max(float((we[k] - wr[k]).abs().max()) for k in float_keys) <= 1e-6  # weights and BatchNorm statistics
    assert real["history"][-1]["train_loss"] == pytest.approx(emulated["history"][-1]["train_loss"], abs=1e-6)


def _fn(model: str) -> ModelFn:
    net, example = getattr(_models(), model)()
    return ModelFn(net, example, trace_layers(net, example))


@pytest.mark.parametrize("model", ["spikingjelly_cnn", "snntorch_cnn"])
def test_pieces_hold_only_their_layers_and_compose_to_the_model(model):
    """Each piece references exactly its layer's parameters; run one after another they give the whole module's
    logits and gradients (the emulation's computation), bit for bit."""
    pytest.importorskip("spikingjelly" if model.startswith("spikingjelly") else "snntorch")
    fn = _fn(model)
    stages = build_stages(fn)
    assert stages.kind == "graph"
    for layer, names in enumerate(fn.map.params):
        assert {k for k, _ in stages.modules[layer].named_parameters()} == set(names)
    torch.manual_seed(0)
    x = torch.rand((4, 3, 1, 28, 28) if fn.time_major else (3, 1, 28, 28))
    y = torch.tensor([0, 1, 3])
    weights = fn.initial_weights()
    stages.probe(weights, x, ((0, 3),))
    whole = [{k: v.clone().requires_grad_() for k, v in w.items()} for w in weights]
    loss = torch.nn.functional.cross_entropy(fn.call(whole, x, fn.buffer_copies()), y)
    loss.backward()
    parts = [{k: v.clone().requires_grad_() for k, v in w.items()} for w in weights]
    outs = {-1: x}
    for i in range(stages.num_layers):
        copies = {k: b.clone() for k, b in stages.modules[i].named_buffers()}
        outs[i] = stages.call(i, parts[i], [outs[p] for p in stages.producers[i]], 0, copies)
    loss2 = torch.nn.functional.cross_entropy(stages.logits(outs[stages.num_layers - 1]), y)
    loss2.backward()
    assert torch.equal(loss.detach(), loss2.detach())
    for a, b in zip(whole, parts, strict=True):
        for k in a:
            assert torch.equal(a[k].grad, b[k].grad), k


class _LoopOverTime(torch.nn.Module):
    """A time loop over the input's own length (x.size(0) of a [T, B, ...] input): T is the example's, so the loop
    unrolls into T steps of each layer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.fc2(self.fc1(x[t])) for t in range(x.size(0))])


class _LoopOverBatch(torch.nn.Module):
    """`len(x)` of a [T, B, ...] input is T, fixed; of the batch it is not (micro-batches and shards are smaller),
    so a model that loops over len(x[0]), its batch, cannot be unrolled by torch.fx."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.fc2(self.fc1(x[:, b])) for b in range(len(x[0]))], 1)


def test_a_time_loop_over_the_input_length_unrolls():
    net, x = _LoopOverTime(), torch.rand(3, 6, 4)
    fn = ModelFn(net, x, trace_layers(net, x))
    stages = build_stages(fn)
    weights = fn.initial_weights()
    slices = ((0, 4), (4, 6))  # chunks of other batch sizes than the example's
    stages.probe(weights, x, slices)
    for c, (lo, hi) in enumerate(slices):
        out = stages.call(0, weights[0], [x[:, lo:hi]], c)
        assert torch.equal(stages.call(1, weights[1], [out], c), net(x[:, lo:hi]))


class _Shared(torch.nn.Module):
    """One neuron module called from two layers: its state cannot be split between ranks."""

    def __init__(self) -> None:
        super().__init__()
        import snntorch as snn

        self.fc1, self.fc2 = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)
        self.lif = snn.Leaky(beta=0.9, init_hidden=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif(self.fc2(self.lif(self.fc1(x))))


class _SharedLoop(_Shared):
    """The same, with its time loop in forward ([T, B, 4] in one call)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.lif(self.fc2(self.lif(self.fc1(x[t])))) for t in range(x.shape[0])])


class _BatchFromInput(torch.nn.Module):
    """The batch size read off the input and used two layers later: a function of the input alone, which every
    piece that needs it computes itself (it is no tensor to send)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = torch.nn.Linear(12, 6), torch.nn.Linear(6, 8), torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, B, 12]
        t, b = x.shape[0], x.shape[1]
        h = self.fc2(self.fc1(x.reshape(t * b, 12)))
        return self.fc3(h).reshape(t, b, 3)


def test_values_of_the_input_alone_are_recomputed_not_sent():
    net, x = _BatchFromInput(), torch.rand(3, 5, 12)
    fn = ModelFn(net, x, trace_layers(net, x))
    stages = build_stages(fn)
    assert stages.producers == ((-1,), (0,), (1, -1))  # layer 2 reads the input for its shape, not layer 0
    weights = fn.initial_weights()
    stages.probe(weights, x, ((0, 5),))
    outs = {-1: x}
    for i in range(3):
        outs[i] = stages.call(i, weights[i], [outs[p] for p in stages.producers[i]], 0)
    assert torch.equal(outs[2], net(x))


class _RateCoded(torch.nn.Module):
    """Rate encoding inside forward (torch.bernoulli): random draws the ranks would make in another order."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(torch.bernoulli(x)))


def test_models_that_cannot_be_cut_are_refused_in_one_line():
    net, x = _RateCoded(), torch.full((3, 2, 4), 0.5)
    fn = ModelFn(net, x, trace_layers(net, x))
    with pytest.raises(PartitionError, match=r"draws random numbers \(bernoulli\)"):
        build_stages(fn)
    net, x = _LoopOverBatch(), torch.zeros(3, 2, 4)
    fn = ModelFn(net, x, trace_layers(net, x))
    with pytest.raises(PartitionError, match="_LoopOverBatch cannot be cut into its layers: torch.fx"):
        build_stages(fn)
    pytest.importorskip("snntorch")
    net = _SharedLoop()
    traced = trace_user_model(net, torch.zeros(3, 2, 4))
    fn = ModelFn(net, traced.example, traced.layers, traced.layout)
    with pytest.raises(PartitionError, match="neuron 'lif' .* is called from layers \\[0, 1\\]"):
        build_stages(fn)
    # single-step (one call per timestep, the neurons' state kept between calls): a piece runs once per minibatch
    net = _Shared()
    traced = trace_user_model(net, torch.zeros(2, 4), timesteps=3)
    fn = ModelFn(net, traced.example, traced.layers, traced.layout)
    with pytest.raises(PartitionError, match="_Shared is a single-step model .* --backend emulate runs it"):
        build_stages(fn)


def test_each_rank_receives_only_its_layers():
    """The job a rank unpickles holds the pieces, weights and optimiser states of its own layers only."""
    pytest.importorskip("snntorch")
    from spikepipe.distributed import worker
    from spikepipe.distributed.launch import DistributedPipeline, rank_job
    from spikepipe.train.optim import OptimConfig
    from spikepipe.train.runner import build_schedule

    fn = _fn("snntorch_cnn")
    c = TrainConfig(network=f"{MODELS}:snntorch_cnn", schedule="pipedream", processors=3, batch=8)
    s = build_schedule(c, fn.timesteps, trace_layers(fn.model, fn.example))
    trainer = DistributedPipeline(fn, OptimConfig(), s, total_steps=4)
    plan = trainer.plan(4)
    x = torch.rand(8, 1, 28, 28)
    job = worker.Job(backend="gloo", port=0, epoch=0, stages=trainer.stages, optim=trainer.cfg, total_steps=4,
                     base_step=0, weights=trainer.weights, opt_states=[o.state_dict() for o in trainer.opts],
                     velocity=[None] * 3, plan=plan, xs=None, ys=None, batch=8,
                     shapes=trainer.stages.probe(trainer.weights, x, ((0, 8),)),
                     chunk_slices=((0, 8),), stash=True, compensation="none", delays=trainer.delays, anneal_steps=1,
                     threads=1, timeout_s=1.0, fault=None)
    for rank in range(3):
        got = worker.loads(worker.dumps(rank_job(job, rank)))
        runs = {plan.events[i].layer for i in plan.rank_events[rank] if plan.events[i].kind in ("F", "B")}
        assert set(got.stages.modules) == runs
        held = {k for m in got.stages.modules.values() for k, _ in m.named_parameters()}
        assert held == {k for layer in runs for k in fn.map.params[layer]}
        tasks = {plan.events[i].layer for i in plan.rank_events[rank]}
        assert {i for i, w in enumerate(got.weights) if w} == tasks
        assert {i for i, st in enumerate(got.opt_states) if st} == {lay for lay, r in plan.w_ranks.items() if rank in r}
