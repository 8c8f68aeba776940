"""Hardware presets and user TOML files: heterogeneous clusters and one-line validation errors."""

from __future__ import annotations

import pytest

from hwmodels import Cluster, Dataflow, HardwareConfigError, SystolicArray
from hwmodels.config import load_cluster, presets

HETERO = """
[[processor]]
name = "big"
rows = 64
cols = 64
count = 2

[[processor]]
name = "small"
rows = 16
cols = 8
dataflow = "is"
vector_lanes = 16
dram_bytes_per_cycle = 8
double_buffered = false
count = 3

[interconnect]
link_bytes_per_cycle = 32
link_latency_cycles = 5
topology = "ring"
"""


def write(tmp_path, text):
    p = tmp_path / "hw.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("name", presets())
def test_every_preset_loads(name):
    c = load_cluster(name)
    assert isinstance(c, Cluster) and c.size >= 1
    assert c.processors[0].gemm_cycles(64, 64, 64) > 0


def test_presets_include_a_heterogeneous_one():
    assert any(not load_cluster(n).homogeneous_ for n in presets())


def test_heterogeneous_file(tmp_path):
    c = load_cluster(write(tmp_path, HETERO))
    assert [p.name for p in c.processors] == ["big", "big", "small", "small", "small"]
    assert not c.homogeneous_
    small = c.processors[2]
    assert small.array == SystolicArray(16, 8, Dataflow.IS)
    assert small.vector.lanes == 16 and small.memory.dram_bytes_per_cycle == 8
    assert small.memory.double_buffered is False and c.processors[0].memory.double_buffered is True
    assert c.interconnect.topology == "ring" and c.transfer_cycles(0, 2, 64) == 2 * (5 + 2)
    # heterogeneous processors price the same GEMM differently
    assert c.processors[0].gemm_cycles(256, 256, 256) != small.gemm_cycles(256, 256, 256)


def test_overrides(tmp_path):
    c = load_cluster(write(tmp_path, HETERO), processors=7, array="8x4", dataflow="ws")
    assert c.size == 7
    assert all(p.array == SystolicArray(8, 4, Dataflow.WS) for p in c.processors)


BAD = [
    ("[[processor]]\nrows = 8\n", "missing 'cols'"),
    ("[[processor]]\ncols = 8\nrows = 8\ncolour = 'red'\n", "unknown keys ['colour']"),
    ("[[processor]]\nrows = 8\ncols = 8\ndataflow = 'xs'\n", "unknown dataflow"),
    ("[[processor]]\nrows = 0\ncols = 8\n", "array size"),
    ("[[processor]]\nrows = 8.5\ncols = 8\n", "rows must be a positive integer"),
    ("[[processor]]\nrows = true\ncols = 8\n", "rows must be a positive integer"),
    ("[[processor]]\nrows = 8\ncols = 8\ncount = 0\n", "count must be a positive integer"),
    ("[[processor]]\nrows = 8\ncols = 8\ndram_bytes_per_cycle = 'fast'\n", "dram_bytes_per_cycle must be"),
    ("[[processor]]\nrows = 8\ncols = 8\ndram_bytes_per_cycle = -2\n", "dram_bytes_per_cycle must be"),
    ("[[processor]]\nrows = 8\ncols = 8\nword_bytes = 3\n", "word_bytes"),
    ("[[processor]]\nrows = 8\ncols = 8\nfreq_hz = 0\n", "freq_hz"),
    ("[[processor]]\nrows = 8\ncols = 8\n[interconnect]\ntopology = 'hypercube'\n", "unknown topology"),
    ("[[processor]]\nrows = 8\ncols = 8\n[interconnect]\nspeed = 3\n", "unknown keys ['speed']"),
    ("[[processor]]\nrows = 8\ncols = 8\n[interconnect]\nlink_latency_cycles = 1.5\n", "link_latency_cycles"),
    ("[[processor]]\nrows = 8\ncols = 8\n[network]\nx = 1\n", "unknown sections"),
    ("[interconnect]\ntopology = 'ring'\n", "at least one [[processor]]"),
    ("processor = 3\n", "processor must be"),
    ("[[processor]\nrows = 8\n", "malformed TOML"),
    ("[[processor]]\nrows = 8\ncols = 8\ninterconnect = 5\n", "unknown keys ['interconnect']"),
    ("interconnect = 5\n[[processor]]\nrows = 8\ncols = 8\n", "must be a table"),
]


@pytest.mark.parametrize("text,fragment", BAD)
def test_bad_files_give_one_line_errors(tmp_path, text, fragment):
    with pytest.raises(HardwareConfigError) as info:
        load_cluster(write(tmp_path, text))
    msg = str(info.value)
    assert fragment in msg and "\n" not in msg and "hw.toml" in msg


def test_unknown_preset_and_missing_file(tmp_path):
    with pytest.raises(HardwareConfigError, match="unknown hardware preset"):
        load_cluster("no-such-preset")
    with pytest.raises(HardwareConfigError, match="not found"):
        load_cluster(tmp_path / "absent.toml")
