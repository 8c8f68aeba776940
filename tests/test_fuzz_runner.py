"""The long fuzz runner's index ranges and merge: two halves summed equal one whole run (the counts that do not
depend on the wall clock), and overlapping ranges are refused."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "experiments" / "fuzz" / "run_fuzz.py"


def run(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / f"{'_'.join(args).replace('-', '')}.json"
    subprocess.run([sys.executable, str(RUNNER), *args, "--time-limit", "0.2", "--out", str(out)], check=True,
                   cwd=ROOT, capture_output=True)
    return json.loads(out.read_text())


def test_halves_merge_to_the_whole_run(tmp_path):
    whole = run(tmp_path, "--cases", "4")
    a = run(tmp_path, "--cases", "2")
    b = run(tmp_path, "--start", "2", "--cases", "2")
    assert a["ranges"] == [[0, 2]] and b["ranges"] == [[2, 4]]
    files = [str(p) for p in sorted(tmp_path.glob("cases_2*.json"))] + [str(tmp_path / "start_2_cases_2.json")]
    merged_path = tmp_path / "merged.json"
    subprocess.run([sys.executable, str(RUNNER), "--merge", *files, "--out", str(merged_path)], check=True, cwd=ROOT)
    merged = json.loads(merged_path.read_text())
    for key in ("cases_done", "max_tasks", "contention_replays", "finished"):
        assert merged[key] == whole[key], key
    assert merged["ranges"] == [[0, 2], [2, 4]]
    assert merged["violations"] == whole["violations"] == {}


def test_overlapping_ranges_are_refused(tmp_path):
    a = run(tmp_path, "--cases", "1")
    path = tmp_path / "cases_1.json"
    assert a["cases_done"] == 1
    r = subprocess.run([sys.executable, str(RUNNER), "--merge", str(path), str(path), "--out",
                        str(tmp_path / "m.json")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode != 0 and "overlap" in r.stderr
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("i", [0, 17, 9999])
def test_a_case_depends_only_on_its_index_and_seed(i):
    sys.path.insert(0, str(RUNNER.parent))
    import run_fuzz

    assert run_fuzz.case_params(i, 0) == run_fuzz.case_params(i, 0)
    assert run_fuzz.case_params(i, 0) != run_fuzz.case_params(i, 1)
