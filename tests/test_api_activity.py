"""`measure_activity` is `spikepipe activity` (issue 20 item 4: the command parses and prints, the library
measures): the same object from both, the same file, the same refusals."""

from __future__ import annotations

import json

import pytest

import spikepipe as sp
from spikepipe.cli import main


@pytest.mark.parametrize("network,samples,extra", [("snn-mlp", 16, {}), ("snn-cnn", 8, {"encoder": "rate", "resize": True})])
def test_api_and_command_measure_the_same(tmp_path, capsys, network, samples, extra):
    flags = [x for k, v in extra.items() for x in ((f"--{k}",) if v is True else (f"--{k}", str(v)))]
    assert main(["activity", "--network", network, "--samples", str(samples), *flags, "--out",
                 str(tmp_path / "cli.json"), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    res = sp.measure_activity(network, samples=samples, out=tmp_path / "api.json", **extra)
    api = res.to_dict()
    assert {k: v for k, v in api.items() if k != "file"} == {k: v for k, v in cli.items() if k != "file"}
    # the file is the printed object without its own path, written by both the same way
    written = json.loads((tmp_path / "api.json").read_text())
    assert written == {k: v for k, v in api.items() if k != "file"} == json.loads((tmp_path / "cli.json").read_text())
    assert res.report.samples == samples and len(res.report.layers) == len(api["layers"])
    # a workload built by load_network measures as its name does (seed 0 both ways)
    again = sp.measure_activity(sp.load_network(network), samples=samples, **extra).to_dict()
    assert [la["input_activity"] for la in again["layers"]] == [la["input_activity"] for la in api["layers"]]


@pytest.mark.parametrize("kwargs,match", [({"split": "dev"}, "split"), ({"encoder": "poisson"}, "encoder"),
                                          ({"samples": 0}, "samples"), ({"weights": "/no/such.pt"}, "not found")])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(sp.SpikePipeError, match=match):
        sp.measure_activity("snn-mlp", **{"samples": 4, **kwargs})
