"""The public API is stable by declaration: `spikepipe.__all__` and every public name's signature are recorded in
tests/golden/api_surface.json. A name that disappears or changes its signature fails here until the change is
recorded in CHANGELOG.md (under "## [Unreleased]") and the surface is re-recorded:

    SPIKEPIPE_RECORD_API=1 python -m pytest tests/test_api_surface.py

which refuses to record a change that CHANGELOG.md's Unreleased section does not name.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

import spikepipe

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "api_surface.json"
CHANGELOG = ROOT / "CHANGELOG.md"


def _sig(obj: Any) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "<no signature>"


def describe(obj: Any) -> dict[str, Any]:
    """What a caller relies on: a function's signature; a class's constructor, dataclass fields, public methods
    and properties; an exception's bases."""
    if inspect.isclass(obj):
        out: dict[str, Any] = {"kind": "class", "bases": [b.__qualname__ for b in obj.__mro__[1:]
                                                           if b is not object]}
        if issubclass(obj, BaseException):
            return out
        out["init"] = _sig(obj)
        if dataclasses.is_dataclass(obj):
            out["fields"] = {f.name: str(f.type) for f in dataclasses.fields(obj)}
        members = {}
        for name, member in sorted(vars(obj).items()):
            if name.startswith("_") or (dataclasses.is_dataclass(obj) and name in out["fields"]):
                continue
            if isinstance(member, property):
                members[name] = "property"
            elif isinstance(member, (classmethod, staticmethod)):
                members[name] = f"{type(member).__name__} {_sig(member.__func__)}"
            elif callable(member):
                members[name] = _sig(member)
        out["members"] = members
        return out
    if callable(obj):
        return {"kind": "function", "signature": _sig(obj)}
    return {"kind": type(obj).__name__}


def surface() -> dict[str, Any]:
    return {name: describe(getattr(spikepipe, name)) for name in sorted(spikepipe.__all__)}


def changed_names(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(n for n in set(old) | set(new) if old.get(n) != new.get(n))


def unreleased_section() -> str:
    text = CHANGELOG.read_text()
    m = re.search(r"^## \[Unreleased\][^\n]*\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    return m.group(1) if m else ""


def unrecorded(old: dict[str, Any], new: dict[str, Any], notes: str) -> list[str]:
    """Changed public names that the changelog notes do not name (in backticks)."""
    return [n for n in changed_names(old, new) if f"`{n}`" not in notes] if old else []


def test_every_public_name_resolves_and_is_documented():
    for name in spikepipe.__all__:
        obj = getattr(spikepipe, name)
        if name != "__version__":
            assert (inspect.getdoc(obj) or "").strip(), f"spikepipe.{name} has no docstring"
    with pytest.raises(AttributeError):
        spikepipe.definitely_not_public  # noqa: B018


def test_no_public_name_is_shadowed_by_a_subpackage():
    # `import spikepipe.train` sets the attribute spikepipe.train to the package, replacing a function of that
    # name: a public name must never equal a module of the package
    import pkgutil

    modules = {m.name for m in pkgutil.iter_modules(spikepipe.__path__)}
    assert not modules & set(spikepipe.__all__), sorted(modules & set(spikepipe.__all__))


def test_public_surface_is_the_recorded_one():
    current = surface()
    if os.environ.get("SPIKEPIPE_RECORD_API"):
        old = json.loads(GOLDEN.read_text())["surface"] if GOLDEN.exists() else {}
        notes = unreleased_section()
        missing = unrecorded(old, current, notes)
        assert not missing, (f"CHANGELOG.md's [Unreleased] section must name every changed public name before it is "
                             f"re-recorded; missing: {', '.join(missing)} (write e.g. '- `{missing[0]}`: ...')")
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps({"version": spikepipe.__version__, "surface": current}, indent=1,
                                     sort_keys=True) + "\n")
    recorded = json.loads(GOLDEN.read_text())
    changed = changed_names(recorded["surface"], current)
    assert not changed, (
        f"the public API changed: {', '.join(changed)}. Record the change in CHANGELOG.md under '## [Unreleased]' "
        f"(name each as `name`), then re-record: SPIKEPIPE_RECORD_API=1 python -m pytest tests/test_api_surface.py")


def test_changelog_starts_with_this_version():
    text = CHANGELOG.read_text()
    assert re.search(rf"^## \[{re.escape(spikepipe.__version__)}\]", text, re.MULTILINE), \
        f"CHANGELOG.md has no section for version {spikepipe.__version__}"
    assert json.loads(GOLDEN.read_text())["version"] == spikepipe.__version__


def test_the_check_detects_a_changed_signature():
    # the comparison must see a renamed keyword and a removed name, or the test above could never fail
    def f(network, *, processors_count: int = 2): ...  # noqa: ANN001

    current = surface()
    edited = dict(current)
    edited["simulate"] = describe(f)
    del edited["compare"]
    assert changed_names(current, edited) == ["compare", "simulate"]
    # and recording refuses until the changelog names both
    assert unrecorded(current, edited, "- `simulate`: renamed a keyword") == ["compare"]
    assert unrecorded(current, edited, "- `simulate`: ...\n- `compare`: removed") == []
