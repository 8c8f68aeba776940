"""Training step time, side by side in one process: spikepipe's plain BPTT, its exact pipelined step with weight
stashing (the spikepipe P=4 schedule's delays), and the same network in SpikingJelly 2.0 and snnTorch 1.0
trained the way their users do (torch.optim.Adam, loss.backward, reset before each minibatch).

    .venv/bin/python experiments/train_bench/run.py                  # snn-cnn shape, T=4, B=64, 2 threads
    .venv/bin/python experiments/train_bench/run.py --rounds 2 --steps 4   # a quick look

The network is zoo's snn-cnn (conv 32 + BatchNorm + LIF + pool, conv 64 + BatchNorm + LIF + pool, linear 256 +
LIF, linear 10 read out over T), written once for each library. Rounds alternate the trainers (k steps each) so
all see the same machine load; reported: the median seconds per step of each, and every ratio to spikepipe's
plain BPTT, computed per round (the steadier figure on a shared machine) and then the median over rounds. Also
spikepipe's exact step on the SpikingJelly module itself (the user's own model, traced by the front end).
Writes results/bench.json next to this file.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from spikepipe.io import write_json
from spikepipe.train.bptt import PlainBPTT
from spikepipe.train.model import ModelFn, reset_state
from spikepipe.train.optim import OptimConfig
from spikepipe.train.pipelined import ExactPipeline
from spikepipe.train.runner import TrainConfig, build_schedule, trace_layers

HERE = Path(__file__).resolve().parent
BETA, CLASSES = 0.9, 10


def spikingjelly_net() -> nn.Module:
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    def lif() -> nn.Module:  # u_t = beta u_{t-1} + x_t with beta = 1 - 1/tau, subtract reset
        return neuron.LIFNode(tau=1.0 / (1.0 - BETA), decay_input=False, v_reset=None,
                              surrogate_function=surrogate.ATan())

    net = nn.Sequential(
        layer.Conv2d(1, 32, 3, padding=1, bias=False), layer.BatchNorm2d(32), lif(), layer.MaxPool2d(2),
        layer.Conv2d(32, 64, 3, padding=1, bias=False), layer.BatchNorm2d(64), lif(), layer.MaxPool2d(2),
        layer.Flatten(), layer.Linear(64 * 7 * 7, 256, bias=False), lif(), layer.Linear(256, CLASSES))
    functional.set_step_mode(net, "m")
    return net


class SnnTorchNet(nn.Module):
    """The same network as snnTorch users write it: a loop over T in forward, single-step Leaky neurons."""

    def __init__(self) -> None:
        super().__init__()
        import snntorch as snn
        from snntorch import surrogate

        g = surrogate.atan()
        self.c1, self.b1, self.l1 = nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), snn.Leaky(
            beta=BETA, spike_grad=g)
        self.c2, self.b2, self.l2 = nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), snn.Leaky(
            beta=BETA, spike_grad=g)
        self.f1, self.l3 = nn.Linear(64 * 7 * 7, 256, bias=False), snn.Leaky(beta=BETA, spike_grad=g)
        self.f2 = nn.Linear(256, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m1, m2, m3 = self.l1.init_leaky(), self.l2.init_leaky(), self.l3.init_leaky()
        out = []
        for t in range(x.shape[0]):
            s1, m1 = self.l1(self.b1(self.c1(x[t])), m1)
            s2, m2 = self.l2(self.b2(self.c2(nn.functional.max_pool2d(s1, 2))), m2)
            s3, m3 = self.l3(self.f1(nn.functional.max_pool2d(s2, 2).flatten(1)), m3)
            out.append(self.f2(s3))
        return torch.stack(out)


def torch_step(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], None]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        reset_state(model)
        loss = nn.functional.cross_entropy(model(x).mean(0), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--timesteps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8, help="minibatches per round and trainer")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--processors", type=int, default=4)
    ap.add_argument("--out", default=str(HERE / "results" / "bench.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from spikepipe import zoo

    t, b = args.timesteps, args.batch
    net, ex = zoo.build("snn-cnn", timesteps=t, batch=b, num_classes=CLASSES, seed=0)
    sched = build_schedule(TrainConfig(network="snn-cnn", schedule="spikepipe", processors=args.processors,
                                       batch=b, timesteps=t), t)
    opt = OptimConfig(name="adam", lr=1e-3, schedule="constant")
    total = args.steps * args.rounds
    zoo_fn = ModelFn(net, ex)
    sj = spikingjelly_net()
    sj_ex = torch.zeros(t, 1, 1, 28, 28)
    sj_fn = ModelFn(sj, sj_ex, trace_layers(sj, sj_ex))
    sj_sched = build_schedule(TrainConfig(network="sj", schedule="spikepipe", processors=args.processors, batch=b,
                                          timesteps=t), t, trace_layers(sj, sj_ex))

    def epoch(trainer: PlainBPTT) -> Callable[[list], None]:
        return lambda data: trainer.run_epoch(lambda n: data[n], len(data))

    def loop(step: Callable) -> Callable[[list], None]:
        return lambda data: [step(x, y) for x, y in data]

    runs: dict[str, Callable[[list], None]] = {
        "spikepipe_bptt": epoch(PlainBPTT(zoo_fn, opt, total_steps=total)),
        "spikepipe_exact_stash": epoch(ExactPipeline(zoo_fn, opt, sched, total_steps=total)),
        "spikepipe_exact_stash_on_spikingjelly_module": epoch(ExactPipeline(sj_fn, opt, sj_sched, total_steps=total)),
        "spikingjelly": loop(torch_step(spikingjelly_net())),
        "snntorch": loop(torch_step(SnnTorchNet())),
    }
    g = torch.Generator().manual_seed(0)
    data = [(torch.rand(t, b, 1, 28, 28, generator=g), torch.randint(0, CLASSES, (b,), generator=g))
            for _ in range(args.steps)]
    for fn in runs.values():  # warm-up: allocator, first-call overheads
        fn(data[:1])
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(args.rounds):
        for name, fn in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn(data)
            wall[name].append((time.perf_counter() - t0) / len(data))
            cpu[name].append((time.process_time() - c0) / len(data))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {wall[k][-1] * 1e3:.0f} ms" for k in runs),
              file=sys.stderr)
    base = "spikepipe_bptt"
    res = {
        "network": "snn-cnn", "batch": b, "timesteps": t, "threads": args.threads, "steps_per_round": args.steps,
        "rounds": args.rounds, "schedule": sched.name, "processors": args.processors,
        "gradient_delays": list(sched.gradient_delays),
        "median_step_seconds": {k: statistics.median(v) for k, v in wall.items()},
        "median_step_cpu_seconds": {k: statistics.median(v) for k, v in cpu.items()},
        "ratio_to_spikepipe_bptt": {k: statistics.median(a / c for a, c in zip(v, wall[base], strict=True))
                                    for k, v in wall.items()},
        "cpu_ratio_to_spikepipe_bptt": {k: statistics.median(a / c for a, c in zip(v, cpu[base], strict=True))
                                        for k, v in cpu.items()},
        "torch": torch.__version__,
    }
    for lib in ("spikingjelly", "snntorch"):
        try:
            from importlib.metadata import version

            res[lib] = version(lib)
        except Exception:  # noqa: BLE001 - only a label
            res[lib] = None
    write_json(Path(args.out), res)
    for k in runs:
        print(f"{k:46s} {res['median_step_seconds'][k] * 1e3:8.1f} ms/step   x{res['ratio_to_spikepipe_bptt'][k]:.3f} "
              f"(cpu x{res['cpu_ratio_to_spikepipe_bptt'][k]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
