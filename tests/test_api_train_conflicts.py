"""`spikepipe train`, the API's train_network and a sweep's training point refuse the same option conflicts with the
same message (issue 20 item 4: the CLI parses and prints; the conflicts live in spikepipe.training.check_config),
and refuse them before a data set is read or a schedule solved."""

from __future__ import annotations

import pytest

import spikepipe as sp
from spikepipe.cli import main
from spikepipe.ir import SpikePipeError
from spikepipe.training import TrainConfig, check_config, run_from_options

QUICK = {"epochs": 1, "limit_train": 8, "batch": 4}

# (CLI flags, the same options as keywords, words the message must hold)
CONFLICTS = [
    (("--schedule", "pipedream", "--period-slack", "0.1"), {"schedule": "pipedream", "period_slack": 0.1},
     ("--period-slack", "spikepipe only")),
    (("--dataset", "cifar"), {"dataset": "cifar"}, ("--dataset", "invalid choice")),
    (("--backend", "gloo"), {"backend": "gloo"}, ("--backend gloo", "--schedule")),
    (("--backend", "gloo", "--schedule", "pipedream", "--mode", "queue"),
     {"backend": "gloo", "schedule": "pipedream", "mode": "queue"}, ("--mode queue", "--mode exact")),
    (("--backend", "gloo", "--schedule", "pipedream", "--method", "skipper"),
     {"backend": "gloo", "schedule": "pipedream", "method": "skipper"}, ("--method skipper", "--backend gloo")),
]


def _api_error(**kwargs: object) -> str:
    with pytest.raises(SpikePipeError) as info:
        sp.train_network("snn-mlp", **QUICK, **kwargs)  # type: ignore[arg-type]
    return str(info.value)


@pytest.mark.parametrize(("flags", "kwargs", "words"), CONFLICTS, ids=lambda v: "".join(v) if isinstance(v, tuple)
                         and v and str(v[0]).startswith("--") else "")
def test_cli_api_and_sweep_refuse_alike(flags, kwargs, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(["train", "--network", "snn-mlp", "--epochs", "1", "--limit-train", "8", "--batch", "4",
               "--no-progress", *flags])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err, err
    api = _api_error(**kwargs)
    assert err == f"error: {api}"  # the same refusal, word for word
    with pytest.raises(SpikePipeError) as swept:
        run_from_options({"network": "snn-mlp", **QUICK, **kwargs})
    assert str(swept.value) == api
    for w in words:
        assert w in api, (w, api)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("flags", "kwargs", "words"), [c for c in CONFLICTS if "dataset" not in c[1]])
def test_conflicts_are_refused_before_the_data_is_read(flags, kwargs, words, tmp_path):
    # a data directory that does not exist would fail the load; the conflict must be named first
    missing = tmp_path / "nowhere"
    api = _api_error(dataset="fashion-mnist", data_dir=missing, **kwargs)
    assert all(w in api for w in words) and str(missing) not in api, api


@pytest.mark.parametrize("kwargs", [
    {"schedule": "spikepipe", "period_slack": 0.1},  # slack where it applies
    {"dataset": "fashion-mnist"}, {"dataset": "mine.npz"},  # known name, a file (read later)
    {"backend": "gloo", "schedule": "pipedream"},  # a distributed run with its schedule, exact, plain BPTT
    {"method": "skipper"},  # a method without a schedule, emulated
])
def test_the_neighbours_of_each_conflict_pass(kwargs):
    check_config(TrainConfig(**kwargs))
