"""The import rules of the layout, checked on the source (ast), imports inside functions included.

- ``sparring/`` (the core) imports neither Streamlit nor Huey nor ``jobs`` (but its command line
  entry point wires the dispatcher);
- ``ui/`` reaches ``jobs`` only through the use cases (``jobs.health`` aside, read-only);
- only ``sparring/store/`` imports duckdb; only ``sparring/gateway.py`` imports litellm;
- the pages import neither duckdb, redis nor litellm (nor the store's DuckDB module);
- ``jobs/`` has no import cycle.

An import hidden in a function still runs, so it counts like one at the top of a module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = ("sparring", "jobs", "ui", "streamlit_app.py")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files(*where: str) -> list[Path]:
    files: list[Path] = []
    for name in where:
        path = ROOT / name
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


def imported(path: Path, module: str | None = None) -> Iterator[tuple[str, int]]:
    """Every module ``path`` imports, with its line: ``from a import b`` yields ``a`` and ``a.b``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = module or module_name(path)
    package = module.rpartition(".")[0] if path.name != "__init__.py" else module
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, node.lineno
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(files: Iterable[Path], forbidden: Iterable[str], allowed: Iterable[str] = ()) -> list[str]:
    """``file:line imports module`` for each import of a ``forbidden`` module outside ``allowed`` modules."""
    forbidden, allowed = tuple(forbidden), tuple(allowed)
    found = []
    for path in files:
        if within(module_name(path), allowed):
            continue
        for name, line in imported(path):
            if within(name, forbidden):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return sorted(set(found))


# The command line's entry point wires the queue into the use cases (``jobs.dispatch.wire()``):
# the one import of ``jobs`` the core has, as STYLE.md allows the command line "only when asked".
CORE_WIRING = "sparring.__main__"


@pytest.mark.parametrize("forbidden", ["streamlit", "huey", "jobs"])
def test_the_core_imports_no_ui_nor_queue(forbidden: str) -> None:
    assert violations(source_files("sparring"), [forbidden], allowed=[CORE_WIRING]) == []


def test_the_core_wiring_imports_only_the_dispatcher() -> None:
    wiring = ROOT / "sparring" / "__main__.py"
    assert {name for name, _ in imported(wiring) if within(name, ["jobs"])} == {"jobs", "jobs.dispatch"}


# The pages launch, cancel and retry through ``sparring.usecases`` (wired in streamlit_app.py);
# the Health views read the queue's health through ``jobs.health`` (read-only: nothing is launched).
UI_MAY_IMPORT_FROM_JOBS = ["jobs.health"]


def test_pages_reach_the_queue_only_through_the_use_cases() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in source_files("ui")
        for name, line in imported(path)
        if within(name, ["jobs"]) and name != "jobs" and not within(name, UI_MAY_IMPORT_FROM_JOBS)
    ]
    assert found == []
