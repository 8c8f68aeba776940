"""The Dask sweep driver: a tiny grid on a real LocalCluster, caching, interruption and resume."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spikepipe.sweep import SweepError, load_spec, point_key, run_point, run_sweep, spec_from_dict

TINY = {
    "sweep": {"name": "tiny", "kind": "simulate"},
    "grid": {"processors": [1, 2], "schedule": ["sequential", "gpipe"]},
    "fixed": {"network": "snn-mlp", "batch": 8, "timesteps": 2, "iterations": 4},
}


def _rows(path: Path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_grid_expansion_is_deterministic_and_keys_are_content_addressed():
    spec = spec_from_dict(TINY)
    pts = spec.points()
    assert len(pts) == 4
    assert pts == spec_from_dict(TINY).points()
    keys = {point_key("simulate", p) for p in pts}
    assert len(keys) == 4
    # the same parameters in another order give the same key
    p = pts[0]
    assert point_key("simulate", dict(reversed(list(p.items())))) == point_key("simulate", p)


@pytest.mark.parametrize("bad, match", [
    ({"grid": {}}, "needs at least one"),
    ({"sweep": {"kind": "dance"}, "grid": {"network": ["snn-mlp"]}}, "unknown kind"),
    ({"grid": {"network": ["snn-mlp"], "colour": ["red"]}}, "unknown parameters"),
    ({"grid": {"processors": [1]}}, "needs a network"),
    ({"grid": {"network": ["a"]}, "fixed": {"network": "b"}}, "both"),
])
def test_bad_specs_are_rejected(bad, match):
    with pytest.raises(SweepError, match=match):
        spec_from_dict(bad)


def test_malformed_toml(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text("[grid\nnetwork = 1")
    with pytest.raises(SweepError, match="malformed TOML"):
        load_spec(f)


def test_failing_point_becomes_an_error_row():
    row = run_point("simulate", {"network": "no-such-net", "processors": 2})
    assert row["status"] == "error" and "no-such-net" in row["error"]


def test_tiny_sweep_on_two_workers_then_everything_cached(tmp_path):
    spec = spec_from_dict({**TINY, "grid": {**TINY["grid"], "network": ["snn-mlp", "no-such-net"]},
                           "fixed": {k: v for k, v in TINY["fixed"].items() if k != "network"}})
    out = run_sweep(spec, tmp_path, workers=2)
    assert out.total_points == 8 and out.computed_points == 4 and out.failed_points == 4
    rows = _rows(out.table_csv)
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 4 and len(rows) == 8
    for r in ok:
        assert float(r["speedup"]) > 0
        assert float(r["simulated_period_cycles"]) == pytest.approx(float(r["period_cycles"]))
    seq1 = [r for r in ok if r["schedule"] == "sequential"]
    assert all(float(r["speedup"]) == pytest.approx(1.0) for r in seq1)
    # failing points are recorded, not fatal, and retried next time; finished points are not recomputed
    again = run_sweep(spec, tmp_path, workers=2)
    assert again.computed_points == 0 and again.cached_points == 4 and again.failed_points == 4


def test_interrupted_sweep_resumes_without_recomputing(tmp_path):
    spec = spec_from_dict(TINY)
    first = run_sweep(spec, tmp_path, workers=1, max_points=1)  # a clean interruption after one point
    assert first.computed_points == 1
    done_before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache").glob("*.json")}
    second = run_sweep(spec, tmp_path, workers=2)
    assert second.cached_points == 1 and second.computed_points == 3
    for name, mtime in done_before.items():  # the finished point's file was not rewritten
        assert (tmp_path / "cache" / name).stat().st_mtime_ns == mtime
    assert len(_rows(second.table_csv)) == 4


@pytest.mark.slow
def test_killed_sweep_process_resumes(tmp_path):
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(
        '[sweep]\nname = "killme"\nkind = "simulate"\n'
        '[grid]\nprocessors = [1, 2, 3, 4]\nschedule = ["sequential", "gpipe", "1f1b"]\n'
        '[fixed]\nnetwork = "snn-mlp"\nbatch = 8\ntimesteps = 2\niterations = 4\n')
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "spikepipe", "sweep", str(spec_file), "--out", str(out), "--workers", "1", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "cache").glob("*.json"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = len(list((out / "cache").glob("*.json")))
    assert 2 <= finished < 12
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["cached"] == finished and data["computed"] == 12 - finished


def test_the_sweep_command_keeps_dasks_chatter_off_stderr(tmp_path):
    """A sweep's stderr has no Dask scheduler and nanny INFO lines (they say nothing about the user's input; about
    30 per sweep before, with DASK_LOGGING__DISTRIBUTED=info or `-v` they are back)."""
    spec = tmp_path / "s.toml"
    spec.write_text('[sweep]\nname = "quiet"\nkind = "simulate"\n[grid]\nprocessors = [2]\n'
                    '[fixed]\nnetwork = "snn-mlp"\nschedule = "pipedream"\nbatch = 8\ntimesteps = 2\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    cmd = [sys.executable, "-m", "spikepipe", "sweep", str(spec), "--workers", "1", "--json"]
    quiet = subprocess.run([*cmd, "--out", str(tmp_path / "a")], capture_output=True, text=True, timeout=300,
                           env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert json.loads(quiet.stdout)["computed"] == 1
    assert "distributed." not in quiet.stderr, quiet.stderr
