"""The design lives in docs/: every citation of it in the code, tests, experiments and README resolves.

A citation is `docs/NAME.md` (optionally `section N`) or a relative Markdown link between docs files. A cited
section must exist as a numbered heading (`## N. Title`) of that file. Citations of a design file outside the
repository (`DESIGN.md` beside the project) are errors: a clone does not have it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SCANNED = ("spikepipe", "schedules", "hwmodels", "tests", "experiments", "docs")
CITE = re.compile(r"docs/([A-Za-z0-9_\-]+\.md)(?:,?\s+sections?\s+(\d+(?:\s*(?:,|and|-)\s*\d+)*))?")
LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")
SECTION = re.compile(r"^##\s+(\d+)\.\s", re.MULTILINE)


def _sources() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md"]
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix in (".py", ".md", ".toml") and "results" not in path.parts and path.is_file():
                files.append(path)
    return [f for f in files if f.is_file() and f.name != "test_docs.py"]


def _sections(doc: Path) -> set[int]:
    return {int(n) for n in SECTION.findall(doc.read_text())}


def _cited_numbers(spec: str | None) -> list[int]:
    if not spec:
        return []
    nums = [int(n) for n in re.findall(r"\d+", spec)]
    if "-" in spec and len(nums) == 2:
        return list(range(nums[0], nums[1] + 1))
    return nums


def citations() -> list[tuple[str, int, str, str | None]]:
    out = []
    for path in _sources():
        for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for m in CITE.finditer(line):
                out.append((str(path.relative_to(ROOT)), lineno, m.group(1), m.group(2)))
    return out


def test_docs_exist_with_numbered_sections():
    for name in ("design.md", "contract.md", "extending.md", "api.md"):
        doc = DOCS / name
        assert doc.is_file(), f"docs/{name} is missing"
        nums = sorted(_sections(doc))
        assert nums and nums == list(range(1, len(nums) + 1)), f"docs/{name} sections are not numbered 1..n: {nums}"


def test_code_cites_the_design_and_every_citation_resolves():
    found = citations()
    assert any(f.startswith("spikepipe/") for f, *_ in found), "no code cites docs/ at all: the scan is broken"
    bad = []
    for src, lineno, name, spec in found:
        doc = DOCS / name
        if not doc.is_file():
            bad.append(f"{src}:{lineno}: docs/{name} does not exist")
            continue
        missing = [n for n in _cited_numbers(spec) if n not in _sections(doc)]
        if missing:
            bad.append(f"{src}:{lineno}: docs/{name} has no section {missing}")
    assert not bad, "unresolved citations:\n" + "\n".join(bad)


def test_no_citation_of_a_design_file_outside_the_repository():
    stale = []
    for path in _sources():
        for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if re.search(r"(?<![\w/])DESIGN\.md|shared/", line):
                stale.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()[:100]}")
    assert not stale, "cite docs/design.md instead:\n" + "\n".join(stale)


@pytest.mark.parametrize("doc", sorted(p.name for p in DOCS.glob("*.md")) + ["../README.md"])
def test_markdown_links_between_docs_resolve(doc):
    path = (DOCS / doc).resolve()
    broken = [target for target in LINK.findall(path.read_text())
              if not target.startswith("http") and not (path.parent / target).exists()]
    assert not broken, f"{doc} links to missing files: {broken}"


def test_readme_links_docs():
    text = (ROOT / "README.md").read_text()
    for name in ("design.md", "contract.md", "extending.md"):
        assert f"docs/{name}" in text, f"README.md does not link docs/{name}"


def test_citation_parser_reads_ranges_and_lists():
    # the parser is what makes the resolution test able to fail; check it on known strings
    line = "see docs/design.md section 4, docs/contract.md sections 2 and 6, docs/extending.md"
    got = [(m.group(1), _cited_numbers(m.group(2))) for m in CITE.finditer(line)]
    assert got == [("design.md", [4]), ("contract.md", [2, 6]), ("extending.md", [])]
    assert _cited_numbers("1-3") == [1, 2, 3]
