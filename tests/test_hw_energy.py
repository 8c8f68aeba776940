"""The [energy] table of hardware files: defaults, per-processor overrides, presets' cited figures, bad tables."""

from __future__ import annotations

import re

import pytest

from hwmodels import EnergyTable, HardwareConfigError
from hwmodels.config import PRESET_DIR, load_cluster, presets
from spikepipe.cli import main

BASE = """
[[processor]]
rows = 8
cols = 8
count = 2
{proc_energy}

[[processor]]
rows = 4
cols = 4
count = 1

[interconnect]
topology = "ring"

{energy}
"""


def hw(tmp_path, energy: str = "", proc_energy: str = "") -> str:
    p = tmp_path / "hw.toml"
    p.write_text(BASE.format(energy=energy, proc_energy=proc_energy))
    return str(p)


def test_no_table_prices_nothing(tmp_path):
    cluster = load_cluster(hw(tmp_path))
    assert all(p.energy == EnergyTable() and p.energy.is_zero for p in cluster.processors)


@pytest.mark.parametrize("key", EnergyTable.keys())
def test_each_key_alone(tmp_path, key):
    cluster = load_cluster(hw(tmp_path, f"[energy]\n{key} = 2.5"))
    for p in cluster.processors:
        assert getattr(p.energy, key) == 2.5
        assert all(getattr(p.energy, k) == 0 for k in EnergyTable.keys() if k != key)


def test_processor_overrides_key_by_key(tmp_path):
    path = hw(tmp_path, "[energy]\nmac_pj = 4.6\nac_pj = 0.9", "[processor.energy]\nac_pj = 0.03\nstatic_mw = 5")
    procs = load_cluster(path).processors
    assert [p.energy.mac_pj for p in procs] == [4.6, 4.6, 4.6]
    assert [p.energy.ac_pj for p in procs] == [0.03, 0.03, 0.9]
    assert [p.energy.static_mw for p in procs] == [5.0, 5.0, 0.0]
    # resizing cycles through the processor kinds and keeps their tables
    assert [p.energy.ac_pj for p in load_cluster(path, processors=6).processors] == [0.03, 0.03, 0.9] * 2


BAD = [
    ("mac_pj = -1.0", "mac_pj"),
    ("ac_pj = \"0.9\"", "ac_pj"),
    ("static_mw = true", "static_mw"),
    ("link_pj_per_byte = nan", "link_pj_per_byte"),
    ("dram_pj_per_byte = inf", "dram_pj_per_byte"),
    ("flops_pj = 1.0", "flops_pj"),
    ("sram_pj_per_byte = [1, 2]", "sram_pj_per_byte"),
]


@pytest.mark.parametrize("line,key", BAD)
@pytest.mark.parametrize("where", ["global", "processor"])
def test_bad_table_refused_naming_the_key(tmp_path, line, key, where):
    path = hw(tmp_path, f"[energy]\n{line}") if where == "global" else hw(tmp_path, proc_energy=f"[processor.energy]\n{line}")
    with pytest.raises(HardwareConfigError, match=re.escape(key)):
        load_cluster(path)


@pytest.mark.parametrize("line,key", BAD[:3] + BAD[5:6])
def test_bad_table_cli_one_error_line(tmp_path, capsys, line, key):
    rc = main(["simulate", "--network", "snn-mlp", "-P", "2", "--schedule", "sequential", "--json",
               "--hardware", hw(tmp_path, f"[energy]\n{line}")])
    out = capsys.readouterr()
    assert rc == 2 and out.out == ""
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and key in lines[0]


def test_energy_not_a_table(tmp_path):
    p = tmp_path / "hw.toml"
    p.write_text("energy = 3\n[[processor]]\nrows = 4\ncols = 4\n")
    with pytest.raises(HardwareConfigError, match="energy"):
        load_cluster(str(p))


@pytest.mark.parametrize("name", presets())
def test_presets_cite_every_figure(name):
    """Every preset prices every operation, and each number carries its source on its line."""
    text = (PRESET_DIR / f"{name}.toml").read_text()
    cluster = load_cluster(name)
    for p in cluster.processors:
        assert all(getattr(p.energy, k) > 0 for k in EnergyTable.keys())
    lines = [ln for ln in text.splitlines() if re.match(r"\s*(" + "|".join(EnergyTable.keys()) + r")\s*=", ln)]
    assert lines
    for ln in lines:
        assert "#" in ln and re.search(r"Horowitz|Jouppi|assumption|interpolated", ln), ln


def test_fp32_preset_horowitz_figures():
    e = load_cluster("fp32-45nm").processors[0].energy
    assert (e.mac_pj, e.ac_pj) == (4.6, 0.9)  # FP32 mult 3.7 + add 0.9; add 0.9 (Horowitz, ISSCC 2014)
