"""`spikepipe networks` and `spikepipe tasks`: the JSON contract of docs/design.md section 5 and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from spikepipe.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    code, out, err = _run(capsys, *argv, "--json")
    assert code == 0, err
    assert out.count("\n") == 1  # exactly one JSON object
    return json.loads(out)


def test_networks_lists_the_zoo(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, "networks")
    assert {"snn-mlp", "snn-cnn", "vgg11", "vgg16", "resnet18"} <= set(data["networks"])
    assert all(d["description"] for d in data["details"])


def test_resnet18_lists_f_b_w_of_every_weighted_layer(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, "tasks", "--network", "resnet18")
    tasks = {t["id"]: t for t in data["tasks"]}
    layers = data["layers"]
    assert len(layers) == 21  # stem conv, 16 block convs, 3 projection shortcuts, fc
    assert all(s["op"] in ("conv", "linear") for s in layers)
    for s in layers:
        for kind in "FBW":
            t = tasks[f"{kind}{s['index']}"]
            assert t["kind"] == kind and t["layer"] == s["index"] and t["cycles"] > 0
    assert len(tasks) == 3 * len(layers)
    edges = {(e["src"], e["dst"]) for e in data["edges"]}
    skips = {(u, v) for u, v in edges if u[0] == v[0] == "F" and int(v[1:]) > int(u[1:]) + 1}
    assert len(skips) >= 8  # one residual add per basic block (plus block inputs that skip a projection)
    for u, v in skips:
        assert (f"B{v[1:]}", f"B{u[1:]}") in edges
    assert all(isinstance(e["bytes"], int) and e["bytes"] >= 0 for e in data["edges"])


def test_options_reach_the_graph(capsys: pytest.CaptureFixture[str]) -> None:
    base = _json(capsys, "tasks", "--network", "snn-cnn", "--batch", "4", "--timesteps", "2")
    assert (base["batch"], base["timesteps"]) == (4, 2)
    small = _json(capsys, "tasks", "--network", "snn-cnn", "--batch", "4", "--timesteps", "2",
                  "--array", "8x8", "--dataflow", "ws")
    assert small["processor"]["array"] == "8x8" and small["processor"]["dataflow"] == "ws"
    f0 = {t["id"]: t["cycles"] for t in base["tasks"]}["F0"]
    assert {t["id"]: t["cycles"] for t in small["tasks"]}["F0"] > f0  # a smaller array is slower
    double = _json(capsys, "tasks", "--network", "snn-cnn", "--batch", "8", "--timesteps", "2")
    macs = {t["id"]: t["macs"] for t in base["tasks"]}
    assert all(t["macs"] == 2 * macs[t["id"]] for t in double["tasks"])


def test_user_file_network(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    src = tmp_path / "mynet.py"
    src.write_text(
        "import torch\nfrom torch import nn\nfrom spikepipe.snn import LIF\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc1, self.lif, self.fc2 = nn.Linear(20, 30), LIF(), nn.Linear(30, 5)\n"
        "    def forward(self, x):\n"
        "        return self.fc2(self.lif(self.fc1(x))).mean(0)\n\n"
        "def build():\n"
        "    return Net(), torch.rand(4, 2, 20)\n")
    data = _json(capsys, "tasks", "--network", f"{src}:build", "--batch", "3")
    assert data["batch"] == 3 and data["timesteps"] == 4
    assert [s["name"] for s in data["layers"]] == ["fc1", "fc2"]
    f0 = next(t for t in data["tasks"] if t["id"] == "F0")
    assert f0["macs"] == 3 * 4 * 20 * 30


def test_user_file_imports_a_module_beside_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A model file that imports its own helper module (`from mynets import Net`) loads as `python file.py`
    would run it, from any working directory; the folder does not stay on sys.path."""
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "mynets_beside.py").write_text(
        "from torch import nn\nfrom spikepipe.snn import LIF\n\n"
        "class Net(nn.Sequential):\n"
        "    def __init__(self):\n"
        "        super().__init__(nn.Linear(6, 8), LIF(), nn.Linear(8, 3))\n")
    (folder / "entry.py").write_text(
        "import torch\nfrom mynets_beside import Net\n\ndef build():\n    return Net(), torch.rand(2, 5, 6)\n")
    data = _json(capsys, "tasks", "--network", f"{folder / 'entry.py'}:build")
    assert (data["timesteps"], data["batch"]) == (2, 5)
    assert len(data["layers"]) == 2
    assert str(folder) not in sys.path
    sys.modules.pop("mynets_beside", None)


def test_human_output_is_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "tasks", "--network", "snn-mlp")
    assert code == 0 and "snn-mlp" in out and "6 tasks" in out
    code, out, _ = _run(capsys, "networks")
    assert code == 0 and "resnet18" in out


@pytest.mark.parametrize("argv, needle", [
    (["tasks", "--network", "no-such-net"], "unknown network"),
    (["tasks", "--network", "missing/file.py:build"], "not found"),
    (["tasks", "--network", "snn-mlp", "--batch", "0"], "positive integer"),
    (["tasks", "--network", "snn-mlp", "--batch", "many"], "positive integer"),
    (["tasks", "--network", "snn-mlp", "--timesteps", "-2"], "positive integer"),
    (["tasks", "--network", "snn-mlp", "--array", "0x9"], ""),
    (["tasks"], "--network"),
])
def test_bad_input_is_one_error_line_and_status_2(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                   needle: str) -> None:
    code, out, err = _run(capsys, *argv, "--json")
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]


def test_bad_user_file_is_one_error_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    src = tmp_path / "broken.py"
    src.write_text("import torch\ndef build():\n    return torch.nn.GRU(3, 3), torch.rand(2, 1, 3)\n")
    for spec in (f"{src}:build", f"{src}:nothere", f"{tmp_path / 'x.txt'}:build"):
        code, out, err = _run(capsys, "tasks", "--network", spec, "--json")
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and err.startswith("error:"), spec


def test_installed_entry_point(tmp_path: Path) -> None:
    """The real process: exit status and streams as a script sees them."""
    ok = subprocess.run([sys.executable, "-m", "spikepipe", "tasks", "--network", "snn-mlp", "--json"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and json.loads(ok.stdout)["tasks"]
    bad = subprocess.run([sys.executable, "-m", "spikepipe", "tasks", "--network", "nope", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.startswith("error:")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_version_is_the_installed_distributions(capsys):
    """`spikepipe --version` prints the version the package was installed as (pyproject.toml's), status 0."""
    import tomllib
    from importlib.metadata import version
    from pathlib import Path

    from spikepipe.cli import main

    assert main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    declared = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["version"]
    assert out == f"spikepipe {declared}" == f"spikepipe {version('spikepipe')}"


def test_every_command_with_processors_takes_dash_p():
    """`-P` is `--processors` on every command that has it (train refused it before)."""
    from spikepipe.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._subparsers._group_actions)  # noqa: SLF001 - argparse has no public accessor
    having = [name for name, cmd in sub.choices.items()
              if any("--processors" in a.option_strings for a in cmd._actions)]  # noqa: SLF001
    assert {"simulate", "compare", "frontier", "train"} <= set(having)
    for name in having:
        action = next(a for a in sub.choices[name]._actions if "--processors" in a.option_strings)  # noqa: SLF001
        assert "-P" in action.option_strings, name
