"""`spikepipe simulate --method`: the training method's task graph is what gets scheduled and replayed."""

import json

import pytest

from spikepipe.cli import main


def _simulate(capsys, method: str) -> dict:
    rc = main(["simulate", "--network", "snn-cnn", "--processors", "2", "--schedule", "sequential,gpipe",
               "--method", method, "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    return json.loads(out)


def test_checkpointing_trades_memory_for_time(capsys):
    base = {r["schedule"]: r for r in _simulate(capsys, "bptt")["results"]}
    ckpt_report = _simulate(capsys, "checkpoint")
    ckpt = {r["schedule"]: r for r in ckpt_report["results"]}
    assert ckpt_report["network"] != "snn-cnn"  # the transformed graph says what it is
    # recomputation: more cycles per minibatch, less memory held per in-flight minibatch
    assert ckpt["sequential"]["sequential_cycles"] > base["sequential"]["sequential_cycles"]
    assert ckpt["sequential"]["peak_memory_bytes"] < base["sequential"]["peak_memory_bytes"]


def test_unknown_method_is_a_one_line_error(capsys):
    rc = main(["simulate", "--network", "snn-cnn", "--processors", "2", "--method", "magic"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("error:") and "magic" in err[0]


def test_split_reaches_the_scheduler(capsys):
    def speedup(extra):
        rc = main(["simulate", "--network", "snn-cnn", "--processors", "8", "--schedule", "spikepipe",
                   "--time-limit", "2", "--json", *extra])
        assert rc == 0
        return json.loads(capsys.readouterr().out)["results"][0]["speedup"]

    # unsplit snn-cnn stalls near 4x (its largest task bounds the period); splitting lifts it
    assert speedup(["--split"]) > 1.3 * speedup([])


def test_unknown_generator_option_is_an_error():
    from spikepipe.ir import SpikePipeError
    from spikepipe.sim.evaluate import options_for

    with pytest.raises(SpikePipeError, match="not known"):
        options_for("spikepipe", {"splt": True})
    assert options_for("gpipe", {"split": True}) == {}
    assert options_for("spikepipe", {"split": True}) == {"split": True}


@pytest.mark.parametrize("method", ["checkpoint", "skipper"])
def test_train_method_runs_and_learns(capsys, method):
    rc = main(["train", "--network", "snn-mlp", "--dataset", "digits", "--epochs", "2", "--method", method,
               "--no-progress", "--json"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["trainer"] == method
    assert data["test_accuracy"] > 0.3  # chance is 0.1


def test_train_method_with_a_delayed_schedule_is_refused(capsys):
    rc = main(["train", "--network", "snn-mlp", "--method", "ttl", "--schedule", "spikepipe", "--epochs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--schedule none" in err[0]
