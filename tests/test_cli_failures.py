"""Failures cannot be lost (issue 20 item 5): an unexpected error is one `error:` line that says how to see more,
and `-v` shows its traceback; a command module that cannot be imported is an error naming the command, never a
command that quietly disappears; a sweep point's error keeps its whole message."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from spikepipe.cli import COMMAND_MODULES, main


def _boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("boom: first line\nsecond line")


CYCLES = ["cycles", "--m", "8", "--k", "8", "--n", "8"]


@pytest.mark.parametrize("verbose", [False, True])
def test_an_unexpected_error_is_one_line_and_v_shows_its_traceback(capsys, monkeypatch, verbose):
    import spikepipe.api.contract

    monkeypatch.setattr(spikepipe.api.contract, "cycles_report", _boom)  # a bug deep inside a command
    rc = main(["-v", *CYCLES] if verbose else CYCLES)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("error: RuntimeError: boom: first line")
    if verbose:
        assert err[0] == "Traceback (most recent call last):"
        assert any("_boom" in line for line in err) and "second line" in err
    else:
        assert len(err) == 1 and "-v" in err[0]


def test_bad_input_stays_one_line_even_with_v(capsys):
    # the user's mistake is not a bug: no traceback, whatever the verbosity
    rc = main(["-v", "cycles", "--m", "8", "--k", "8", "--n", "8", "--array", "0x4"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: ")


@pytest.mark.parametrize("name", COMMAND_MODULES)
def test_a_command_module_that_fails_to_import_is_an_error(capsys, monkeypatch, tmp_path, name):
    # the command's module, shadowed by one that fails at import time (as a bug or a missing dependency would)
    import spikepipe.cli

    (tmp_path / f"cmd_{name}.py").write_text("import no_such_dependency_of_spikepipe\n")
    monkeypatch.setattr(spikepipe.cli, "__path__", [str(tmp_path), *spikepipe.cli.__path__])
    monkeypatch.delitem(sys.modules, f"spikepipe.cli.cmd_{name}", raising=False)
    other = "cycles" if name != "cycles" else "networks"  # any command fails: the CLI is broken, and says where
    argv = ["networks", "--json"] if other == "networks" else CYCLES
    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: the `{name}` command cannot be loaded (spikepipe.cli.cmd_{name}): "
                               "ModuleNotFoundError: No module named 'no_such_dependency_of_spikepipe'"), lines[0]
    monkeypatch.delitem(sys.modules, f"spikepipe.cli.cmd_{name}", raising=False)
    rc = main(["-v", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" in err and f"cmd_{name}.py" in err


def test_every_command_module_registers():
    from spikepipe.cli import build_parser

    parser = build_parser()
    choices = next(a.choices for a in parser._subparsers._group_actions)  # noqa: SLF001 - no public accessor
    assert set(choices) == set(COMMAND_MODULES)


def test_a_sweep_point_keeps_its_whole_error(tmp_path: Path):
    from spikepipe.sweep import run_point

    net = tmp_path / "badnet.py"
    net.write_text('def build():\n    raise RuntimeError("first line\\nsecond line: the reason")\n')
    row = run_point("simulate", {"network": f"{net}:build", "processors": 2})
    assert row["status"] == "error"
    assert "first line" in row["error"] and row["error"].endswith("second line: the reason")
