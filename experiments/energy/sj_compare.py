"""Forward-pass counts and energy side by side with SpikingJelly 2.0's op counters and its Lemaire et al. analytical
profiler, on the same models and the same input (Fashion-MNIST test images).

    .venv/bin/python experiments/energy/sj_compare.py            # snn-cnn and SpikingJelly's spiking_vgg11_bn

Per model: synaptic ACs and MACs (SpikingJelly ACCounter/MACCounter restricted to aten convolution/mm/addmm, and
over every op), Lemaire's counts and energy with its default 45 nm costs (e_add 0.1 pJ, e_mul 3.1 pJ), and
SpikePipe's forward energy of the same minibatch with the same per-operation energies (mac_pj = e_mul + e_add,
ac_pj = e_add). Writes experiments/results/energy/sj_compare.{csv,json}.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from sj_models import spiking_vgg11_bn  # noqa: E402

from hwmodels import EnergyTable, Processor  # noqa: E402
from spikepipe import zoo  # noqa: E402
from spikepipe.activity import calibrate_batchnorm, fit_shape, measure  # noqa: E402
from spikepipe.costs import build_task_graph, graph_ops_split  # noqa: E402
from spikepipe.energy import forward_energy  # noqa: E402
from spikepipe.frontend import trace  # noqa: E402
from spikepipe.io import write_csv, write_json  # noqa: E402
from spikepipe.train.data import load_dataset  # noqa: E402
from spikepipe.train.encoders import encode  # noqa: E402

aten = torch.ops.aten
SYNAPTIC = {aten.convolution.default, aten.mm.default, aten.addmm.default}


def sj_counts(model, x) -> dict[str, int]:
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.op_counter import ACCounter, DispatchCounterMode, MACCounter

    ac, mac = ACCounter(), MACCounter()
    functional.reset_net(model)
    with torch.no_grad(), DispatchCounterMode([ac, mac]):
        model(x)
    glob = {name: c.get_counts().get("Global", {}) for name, c in (("ac", ac), ("mac", mac))}
    return {"sj_synaptic_ac": sum(v for f, v in glob["ac"].items() if f in SYNAPTIC),
            "sj_synaptic_mac": sum(v for f, v in glob["mac"].items() if f in SYNAPTIC),
            "sj_all_ac": sum(glob["ac"].values()), "sj_all_mac": sum(glob["mac"].values())}


def lemaire(model, x) -> dict[str, float]:
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.op_counter import LemaireEnergyConfig, estimate_lemaire_energy

    functional.reset_net(model)
    rep = estimate_lemaire_energy(model, x, config=LemaireEnergyConfig(strict=False))
    c = rep.config.cost_config
    return {"lemaire_total_pj": rep.total_pj, "lemaire_ops_pj": rep.breakdown_pj["ops_pj"],
            "lemaire_addressing_pj": rep.breakdown_pj["addressing_pj"], "lemaire_memory_pj": rep.breakdown_pj["memory_pj"],
            "lemaire_synop": rep.counts["synop"], "lemaire_mac": rep.counts["mac"], "lemaire_ac": rep.counts["ac"],
            "lemaire_e_add_pj": c.e_add_pj, "lemaire_e_mul_pj": c.e_mul_pj, "lemaire_warnings": len(rep.warnings)}


def ours(model, x, name: str, e_add: float, e_mul: float) -> dict[str, float]:
    from spikingjelly.activation_based import functional

    functional.reset_net(model)
    layers = trace(model, x[:, :1])
    functional.reset_net(model)
    rep = measure(model, layers, [x], model_name=name, dataset="fashion-mnist")
    graph = build_task_graph(layers, batch=x.shape[1], timesteps=x.shape[0], name=name,
                             processor=Processor(word_bytes=4))
    act = rep.operand_activities()
    split = graph_ops_split(graph, act, kinds="F")
    # the same per-operation energies as Lemaire's defaults; only arithmetic priced, then with our memory model
    ops = forward_energy(graph, replace(graph.reference, energy=EnergyTable(mac_pj=e_mul + e_add, ac_pj=e_add)), act)
    full = forward_energy(graph, replace(graph.reference, energy=EnergyTable(
        mac_pj=e_mul + e_add, ac_pj=e_add, vector_op_pj=e_mul + e_add, sram_pj_per_byte=12.5)), act)
    return {"ours_ac": split.acs, "ours_mac": split.macs, "ours_ops_pj": sum(ops.values()) / 1e-12,
            "ours_vector_pj": full["vector"] / 1e-12, "ours_sram_pj": full["sram"] / 1e-12,
            "mean_operand_activity": sum(act) / len(act)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--timesteps", type=int, default=4)
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results" / "energy"))
    args = ap.parse_args()
    data = load_dataset("fashion-mnist")
    x = data.test.x[:args.samples]
    rows = []
    cnn, _ = zoo.build("snn-cnn", batch=args.samples, timesteps=args.timesteps)
    vgg, _ = spiking_vgg11_bn(timesteps=args.timesteps, batch=args.samples)
    for name, model, shape in (("snn-cnn", cnn, (1, 28, 28)), ("sj spiking_vgg11_bn", vgg, (3, 32, 32))):
        xin = encode("direct", fit_shape(x, shape, True, "fashion-mnist"), args.timesteps)
        calibrate_batchnorm(model, [xin])  # untrained weights; batch-norm statistics of this input
        row = {"model": name, "batch": args.samples, "timesteps": args.timesteps}
        row.update(sj_counts(model, xin))
        row.update(lemaire(model, xin))
        row.update(ours(model, xin, name, row["lemaire_e_add_pj"], row["lemaire_e_mul_pj"]))
        row["ac_equal"] = abs(row["ours_ac"] - row["sj_synaptic_ac"]) <= 1e-9 * max(1, row["sj_synaptic_ac"])
        row["mac_equal"] = row["ours_mac"] == row["sj_synaptic_mac"]
        rows.append(row)
        print(name, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    out = Path(args.out)
    write_csv(out / "sj_compare.csv", rows)
    write_json(out / "sj_compare.json", rows)
    print(f"wrote {out / 'sj_compare.csv'}")


if __name__ == "__main__":
    main()
