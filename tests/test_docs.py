"""The documents point at things that exist: the tests that hold each promise, the files they link."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_named_in_the_reliability_promises_exists() -> None:
    text = (ROOT / "docs" / "reliability.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+)(?:\[[\w-]+\])?)?`", text)  # a parameter id may follow
    assert len(named) >= 10
    for path, name in named:
        source = ROOT / path
        assert source.exists(), f"docs/reliability.md names {path}, which does not exist"
        if name:
            assert re.search(rf"^def {name}\(", source.read_text(), re.M), f"{path} has no test {name}"
    for name in re.findall(r"`(test_\w+)`", text):  # named without their file
        assert any(re.search(rf"^def {name}\(", p.read_text(), re.M) for p in (ROOT / "tests").rglob("test_*.py")), name


def test_relative_links_in_the_documents_resolve() -> None:
    for document in [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)", document.read_text()):
            assert (document.parent / target).exists(), f"{document.name} links to {target}, which does not exist"
