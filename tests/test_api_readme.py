"""The README's "Use from Python" example runs as written: extracted from README.md and executed, so it cannot rot.

The first block costs a SpikingJelly model and compares schedules at P=2..16; the second trains it with the delays
of the spikepipe schedule. The checks below are on what the example computes, against independent facts: the
traced layer count of the model, the delay rule of the schedule it printed, and the JSON contract keys.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"^## Use from Python\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert m, "README.md has no '## Use from Python' section"
    return re.findall(r"```python\n(.*?)```", m.group(1), re.DOTALL)


def test_readme_has_the_example():
    blocks = readme_blocks()
    assert len(blocks) == 2
    code = "\n".join(blocks)
    for needle in ("spikingjelly", "sp.compare(", "processors=[2, 4, 8, 16]", ".plot()", "sp.train_network("):
        assert needle in code, f"the README example no longer shows {needle}"


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """Block 1 run once, in a fresh folder: its namespace and the folder."""
    pytest.importorskip("spikingjelly")
    import os

    where = tmp_path_factory.mktemp("readme")
    ns: dict = {"__name__": "readme_example"}
    cwd = os.getcwd()
    os.chdir(where)
    try:
        exec(compile(readme_blocks()[0], "README.md (Use from Python, block 1)", "exec"), ns)  # noqa: S102
    finally:
        os.chdir(cwd)
    return ns, where


def test_readme_compare_block_runs(example):
    from spikepipe.ir import slot_lag_delays

    ns, where = example
    res, plan = ns["res"], ns["plan"]
    assert (where / "speedup.png").stat().st_size > 0
    assert res.processors == (2, 4, 8, 16)
    assert res[2].graph.num_layers == 3  # three Linear + LIFNode layers in the model
    assert plan.processors == 4 and plan.gradient_delays == slot_lag_delays(plan.slots, 3, plan.period_cycles)
    for rep in res.reports:
        for r in rep.results:
            assert r.ok and 0 < r.speedup <= rep.processors + 1e-9
            assert set(r.to_dict()) >= {"schedule", "period_cycles", "simulated_period_cycles", "speedup",
                                        "comm_fraction", "gradient_delays", "peak_memory_bytes"}


def test_readme_train_block_runs(example, monkeypatch):
    ns, where = example
    monkeypatch.chdir(where)
    exec(compile(readme_blocks()[1], "README.md (Use from Python, block 2)", "exec"), ns)  # noqa: S102
    run, plan = ns["run"], ns["plan"]
    assert run.measured_delays == plan.gradient_delays and run.schedule == "spikepipe"
    assert ns["bptt"].schedule == "none" and not any(ns["bptt"].gradient_delays)
    assert 0.0 <= run.test_accuracy <= 1.0 and (where / "curves.png").stat().st_size > 0
