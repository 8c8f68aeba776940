"""Energy per minibatch of every schedule: each [energy] key alone against an oracle outside spikepipe.energy
(torch's FLOP counter, the replay's own per-hop transfer records, hand-derived stash and static terms)."""

from __future__ import annotations

from math import ceil

import pytest
from torch.utils.flop_counter import FlopCounterMode

from hwmodels import HardwareConfigError
from hwmodels.config import load_cluster
from schedules import generate
from spikepipe import zoo
from spikepipe.cli import main
from spikepipe.energy import CATEGORIES, EnergyError, schedule_energy
from spikepipe.sim import simulate
from spikepipe.sim.evaluate import evaluate_graph, load_graph
from spikepipe.sim.memory import layer_weight_bytes

B, T = 4, 2
PJ = 1e-12


def hw(tmp_path, energy: dict[str, float], topology: str = "ring", bw: float = 64.0) -> str:
    body = "\n".join(f"{k} = {v!r}" for k, v in energy.items())
    p = tmp_path / f"hw_{abs(hash((tuple(energy.items()), topology, bw)))}.toml"
    p.write_text(f"[[processor]]\nrows = 32\ncols = 32\nfreq_hz = 5.0e8\n\n[interconnect]\ntopology = \"{topology}\"\n"
                 f"link_bytes_per_cycle = {bw}\nlink_latency_cycles = 20\n\n[energy]\n{body}\n")
    return str(p)


def run(network: str, hardware: str, processors: int, schedule: str, activity=None, **opts):
    cluster = load_cluster(hardware, processors=processors)
    graph = load_graph(network, cluster, B, T)
    sched = generate(schedule, graph, cluster, **opts)
    sim = simulate(sched, cluster, graph=graph, record=True)
    return graph, cluster, sched, sim, schedule_energy(sched, graph, cluster, sim, activity)


def torch_training_macs(network: str) -> int:
    """MACs of one forward and backward as torch counts them (the input needs no gradient, like B_0)."""
    model, x = zoo.build(network, batch=B, timesteps=T)
    with FlopCounterMode(display=False) as fc:
        model(x).sum().backward()
    return fc.get_total_flops() // 2


@pytest.mark.parametrize("network", ["snn-mlp", "snn-cnn", "vgg11-28"])
@pytest.mark.parametrize("processors", [1, 3])
def test_sequential_mac_only_is_torch_mac_count(tmp_path, network, processors):
    _, _, _, _, e = run(network, hw(tmp_path, {"mac_pj": 4.6}), processors, "sequential")
    macs = torch_training_macs(network)
    assert e.counts.macs == macs
    assert e.total_joules == pytest.approx(macs * 4.6 * PJ, rel=1e-12)
    assert e.breakdown()["mac"] == e.total_joules


def test_no_table_costs_nothing(tmp_path):
    _, _, _, _, e = run("snn-cnn", hw(tmp_path, {}), 2, "pipedream")
    assert e.total_joules == 0 and e.counts.macs > 0


SCHEDS = [("pipedream", {}), ("1f1b", {"microbatches": 4}), ("data-parallel", {}), ("gpipe", {"microbatches": 2}),
          ("sequential", {})]


@pytest.mark.parametrize("schedule,opts", SCHEDS)
@pytest.mark.parametrize("topology", ["ring", "all-to-all", "switch", "mesh", "torus"])
def test_link_energy_is_replayed_bytes_times_hops(tmp_path, schedule, opts, topology):
    graph, cluster, sched, sim, e = run("snn-cnn", hw(tmp_path, {"link_pj_per_byte": 3.0}, topology), 4, schedule,
                                        **opts)
    n = sim.steady_first_minibatch
    hop_bytes = sum(r.bytes for r in sim.transfer_records if r.link is not None and r.minibatch == n)
    # a ring all-reduce: every processor sends 2(P-1) chunks of bytes/P, over one link (two through a switch);
    # on the 2x2 mesh and torus the 2D plan (rows: 2 steps of bytes/2, columns: 2 steps of bytes/4) is cheaper
    hops = 2 if topology == "switch" else 1
    if topology in ("mesh", "torus"):
        coll = sum(4 * (2 * ceil(c.bytes / 2) + 2 * ceil(ceil(c.bytes / 2) / 2)) for c in sched.collectives)
        assert all(len(cluster.interconnect.allreduce_plan(c.bytes, 4)) == 2 for c in sched.collectives)
    else:
        coll = sum(2 * (cluster.size - 1) * cluster.size * hops * -(-c.bytes // cluster.size)
                   for c in sched.collectives)
    assert e.counts.link_bytes == hop_bytes + coll
    assert e.total_joules == pytest.approx((hop_bytes + coll) * 3.0 * PJ, rel=1e-12)
    if schedule != "sequential":
        assert hop_bytes + coll > 0


@pytest.mark.parametrize("schedule,opts", SCHEDS)
@pytest.mark.parametrize("processors", [2, 4])
def test_static_is_processors_times_period_times_power(tmp_path, schedule, opts, processors):
    _, cluster, _, sim, e = run("snn-mlp", hw(tmp_path, {"static_mw": 250.0}), processors, schedule, **opts)
    seconds = sim.simulated_period_cycles / 5.0e8
    assert e.total_joules == pytest.approx(processors * seconds * 0.25, rel=1e-12)
    assert e.energy_delay_product == pytest.approx(e.total_joules * seconds, rel=1e-12)


def test_vector_work_does_not_depend_on_placement(tmp_path):
    """Whole-task schedules run the same vector work wherever they put it."""
    path = hw(tmp_path, {"vector_op_pj": 1.0})
    ref = run("snn-cnn", path, 1, "sequential")[-1]
    for schedule in ("pipedream", "spikepipe"):
        e = run("snn-cnn", path, 4, schedule, time_limit_s=2.0, workers=1)[-1] if schedule == "spikepipe" else \
            run("snn-cnn", path, 4, schedule)[-1]
        assert e.counts.vector_ops == ref.counts.vector_ops
        assert e.total_joules == pytest.approx(ref.total_joules, rel=1e-12)


def test_weight_stash_traffic(tmp_path):
    """Pipedream's DRAM bytes exceed sequential's by exactly one stash write and read per layer with a delay."""
    path = hw(tmp_path, {"dram_pj_per_byte": 1.0})
    graph, cluster, sched, _, pd = run("snn-cnn", path, 4, "pipedream")
    seq = run("snn-cnn", path, 1, "sequential")[-1]
    stash = sum(2 * layer_weight_bytes(graph, cluster, lay).weight_bytes for lay, d in enumerate(sched.gradient_delays) if d > 0)
    assert any(d > 0 for d in sched.gradient_delays)
    assert pd.counts.dram_bytes - seq.counts.dram_bytes == stash
    assert pd.total_joules == pytest.approx(pd.counts.dram_bytes * PJ, rel=1e-12)


def test_microbatches_pay_extra_traffic(tmp_path):
    """Smaller GEMMs re-read their weights: GPipe with m micro-batches moves at least the sequential DRAM and
    SRAM bytes, and each key prices only its own counts."""
    path = hw(tmp_path, {"sram_pj_per_byte": 2.0})
    seq = run("snn-cnn", path, 2, "sequential")[-1]
    gp = run("snn-cnn", path, 2, "gpipe", microbatches=4)[-1]
    assert gp.counts.sram_bytes > seq.counts.sram_bytes
    assert gp.total_joules == pytest.approx(2.0 * gp.counts.sram_bytes * PJ, rel=1e-12)


@pytest.mark.parametrize("schedule,opts", SCHEDS[:3])
def test_activity_bounds(tmp_path, schedule, opts):
    """Activity 0: no ACs and only the dense GEMMs' MACs; activity 1: every binary GEMM's MACs become ACs; with
    mac_pj == ac_pj, activity 1 costs what the dense model does."""
    path = hw(tmp_path, {"mac_pj": 2.0, "ac_pj": 0.5})
    graph, _, sched, _, dense = run("snn-cnn", path, 3, schedule, **opts)
    L = graph.num_layers
    cl = load_cluster(path, processors=3)
    sim = simulate(sched, cl, graph=graph, record=False)
    zero = schedule_energy(sched, graph, cl, sim, [0.0] * L)
    one = schedule_energy(sched, graph, cl, sim, [1.0] * L)
    half = schedule_energy(sched, graph, cl, sim, [0.5] * L)
    binary = sum(g.macs for sl in sched.slots for g in graph.task(sl.task).scaled(sl.fraction).gemms if g.binary_operand)
    assert binary > 0
    assert zero.counts.acs == 0 and zero.counts.macs == dense.counts.macs - binary
    assert one.counts.acs == binary and one.counts.macs == zero.counts.macs
    assert half.counts.acs == pytest.approx(binary / 2)
    assert zero.total_joules < half.total_joules < one.total_joules < dense.total_joules
    assert one.total_joules == pytest.approx((zero.counts.macs * 2.0 + binary * 0.5) * PJ, rel=1e-12)
    with pytest.raises(EnergyError):
        schedule_energy(sched, graph, cl, sim, [0.5] * (L + 1))


def test_every_result_reports_energy(tmp_path, capsys):
    import json

    rc = main(["simulate", "--network", "snn-mlp", "-P", "2", "--json", "--hardware", "tpu-like-128",
               "--schedule", "sequential,pipedream,1f1b,data-parallel,zero-bubble"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    for r in data["results"]:
        assert r["energy_joules"] > 0
        assert set(r["energy_breakdown_joules"]) == set(CATEGORIES)
        assert r["energy_joules"] == pytest.approx(sum(r["energy_breakdown_joules"].values()))
        assert r["energy_delay_product"] == pytest.approx(r["energy_joules"] * r["simulated_period_cycles"] / 1e9)


def test_evaluate_graph_passes_activity(tmp_path):
    cluster = load_cluster(hw(tmp_path, {"mac_pj": 1.0, "ac_pj": 1.0}), processors=2)
    graph = load_graph("snn-cnn", cluster, B, T)
    dense = evaluate_graph(graph, cluster, ["pipedream"], record=False).report
    zero = evaluate_graph(graph, cluster, ["pipedream"], record=False, activity=[0.0] * graph.num_layers).report
    assert zero["results"][0]["energy_joules"] < dense["results"][0]["energy_joules"]
    assert zero["results"][0]["energy_activity"] == "measured"


def test_sweep_rows_carry_energy_columns(tmp_path):
    from spikepipe.sweep import run_point

    path = hw(tmp_path, {"mac_pj": 4.6, "static_mw": 10.0})
    row = run_point("simulate", {"network": "snn-mlp", "processors": 2, "schedule": "sequential", "hardware": path,
                                 "batch": B, "timesteps": T})
    assert row["status"] == "ok", row["error"]
    assert row["energy_mac_joules"] == pytest.approx(torch_training_macs("snn-mlp") * 4.6 * PJ, rel=1e-12)
    assert row["energy_joules"] == pytest.approx(row["energy_mac_joules"] + row["energy_static_joules"])
    assert {f"energy_{c}_joules" for c in CATEGORIES} <= set(row) and "energy_delay_product" in row


def test_heterogeneous_tables_price_their_own_processors(tmp_path):
    """Each processor pays with its own table: static by its power, arithmetic by its own MAC energy."""
    p = tmp_path / "het.toml"
    p.write_text("[[processor]]\nrows = 32\ncols = 32\nfreq_hz = 5.0e8\ncount = 1\n[processor.energy]\n"
                 "static_mw = 100.0\nmac_pj = 1.0\n\n[[processor]]\nrows = 32\ncols = 32\nfreq_hz = 5.0e8\n"
                 "count = 1\n\n[energy]\nstatic_mw = 300.0\nmac_pj = 2.0\n")
    graph, cluster, sched, sim, e = run("snn-cnn", str(p), 2, "pipedream")
    seconds = sim.simulated_period_cycles / 5.0e8
    assert e.static_joules == pytest.approx((0.1 + 0.3) * seconds, rel=1e-12)
    macs = [sum(g.macs for g in graph.task(sl.task).gemms) for sl in sched.slots]
    want = sum(m * (1.0 if sl.processor == 0 else 2.0) for m, sl in zip(macs, sched.slots, strict=True)) * PJ
    assert e.mac_joules == pytest.approx(want, rel=1e-12)


def test_bitmap_spike_format_shrinks_spike_operand_traffic(tmp_path):
    """spike_format = "bitmap": a binary operand's DRAM bytes shrink to one bit per entry, nothing else moves."""
    from hwmodels.energy import gemm_sram_words

    dense_hw = hw(tmp_path, {"dram_pj_per_byte": 1.0, "sram_pj_per_byte": 1.0})
    bitmap_hw = tmp_path / "bitmap.toml"
    bitmap_hw.write_text(open(dense_hw).read().replace("freq_hz = 5.0e8\n", "freq_hz = 5.0e8\nspike_format = \"bitmap\"\n"))
    graph, cluster, sched, sim, dense = run("snn-cnn", dense_hw, 1, "sequential")
    bitmap = run("snn-cnn", str(bitmap_hw), 1, "sequential")[-1]
    proc = cluster.processors[0]
    wb = proc.word_bytes
    saved_dram = saved_sram = 0.0
    for t in graph.tasks:
        for g in t.gemms:
            if g.binary_operand:
                a_dram = proc.memory.gemm_traffic(proc.array, g.m, g.k, g.n, wb).ifmap_bytes * g.groups
                a_sram = gemm_sram_words(proc.array, g.m, g.k, g.n)[0] * wb * g.groups
                saved_dram += a_dram * (1 - 1 / (8 * wb))
                saved_sram += (a_dram + a_sram) * (1 - 1 / (8 * wb))
    assert saved_dram > 0
    assert dense.counts.dram_bytes - bitmap.counts.dram_bytes == pytest.approx(saved_dram, rel=1e-12)
    assert dense.counts.sram_bytes - bitmap.counts.sram_bytes == pytest.approx(saved_sram, rel=1e-12)
    assert dense.counts.macs == bitmap.counts.macs and sim.simulated_period_cycles == \
        run("snn-cnn", str(bitmap_hw), 1, "sequential")[3].simulated_period_cycles  # cycles stay dense
    bad = tmp_path / "bad.toml"
    bad.write_text(open(dense_hw).read().replace("freq_hz = 5.0e8\n", "freq_hz = 5.0e8\nspike_format = \"csr\"\n"))
    with pytest.raises(HardwareConfigError, match="spike_format"):
        load_cluster(str(bad))
