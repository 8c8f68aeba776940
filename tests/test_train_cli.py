"""`spikepipe train` through the CLI: JSON contract, files written, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spikepipe.cli import main

NET_FILE = Path(__file__).with_name("train_nets.py")


def run_cli(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_train_json_contract(tmp_path, capsys):
    rc, out, err = run_cli(capsys, "train", "--network", f"{NET_FILE}:digits_model", "--dataset", "digits",
                           "--epochs", "1", "--limit-train", "128", "--no-progress", "--out", str(tmp_path),
                           "--json")
    assert rc == 0, err
    data = json.loads(out)
    assert 0.0 <= data["test_accuracy"] <= 1.0
    assert data["gradient_delays"] == [0, 0, 0] and data["trainer"] == "bptt"
    assert {p.name for p in tmp_path.iterdir()} >= {"metrics.json", "metrics.csv", "curves.png", "checkpoint.pt"}


@pytest.mark.parametrize("argv,msg", [
    (["--dataset", "fashion-mnist", "--data-dir", "/nonexistent/fm"], "apt-get install dataset-fashion-mnist"),
    (["--lr", "-1"], "learning rate must be positive"),
    (["--resume"], "--resume needs --out"),
])
def test_bad_input_is_one_error_line(capsys, argv, msg):
    rc, out, err = run_cli(capsys, "train", "--network", f"{NET_FILE}:digits_model", "--no-progress", *argv)
    assert rc == 2 and out == ""
    assert err.startswith("error:") and msg in err and len(err.strip().splitlines()) == 1
