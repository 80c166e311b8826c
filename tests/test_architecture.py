"""The import rules of the layout, checked on the source (ast), imports inside functions included.

- ``sparring/`` (the core) imports neither Streamlit nor Huey nor ``jobs`` (but its command line
  entry point wires the dispatcher);
- ``ui/`` reaches ``jobs`` only through the use cases (``jobs.health`` aside, read-only);
- only ``sparring/store/`` imports duckdb; only ``sparring/gateway.py`` imports litellm;
- the pages import neither duckdb, redis nor litellm (nor the store's DuckDB module);
- ``jobs/`` has no import cycle;
- SQL lives in ``sparring/store/`` only (its read models), and the pages and the CLI never
  hold a connection: they call store functions, not ``store.read(lambda con: ...)``.

An import hidden in a function still runs, so it counts like one at the top of a module.
"""

from __future__ import annotations

import ast
import re
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


def test_only_the_store_imports_duckdb() -> None:
    assert violations(source_files(*APP), ["duckdb"], allowed=["sparring.store"]) == []


def test_only_the_gateway_imports_litellm() -> None:
    assert violations(source_files(*APP), ["litellm"], allowed=["sparring.gateway"]) == []


def test_pages_import_no_database_cache_nor_model_client() -> None:
    forbidden = ["duckdb", "redis", "litellm", "sparring.store.db", "sparring.gateway"]
    assert violations(source_files("ui", "streamlit_app.py"), forbidden) == []


def jobs_graph() -> dict[str, set[str]]:
    """Each ``jobs`` module and the ``jobs`` modules it imports (anywhere in its source)."""
    modules = {module_name(path): path for path in source_files("jobs")}
    return {
        name: {m for m, _ in imported(path) if m in modules and m not in ("jobs", name)}
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` as a path that ends where it starts, or [] when it has none."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str]:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return []
        for nxt in sorted(graph[node]):
            cycle = visit(nxt, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return []

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return []


def test_find_cycle_sees_a_loop_and_only_a_loop() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_import_parser_counts_imports_inside_functions_and_relative_ones(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "import os\n"
        "def f():\n"
        "    from jobs import runs\n"
        "    if True:\n"
        "        import duckdb.typing\n"
        "class C:\n"
        "    def g(self):\n"
        "        from .sibling import thing\n"
        "        from .. import up\n"
    )
    names = {name for name, _ in imported(source, "pkg.sub.mod")}
    assert {"os", "jobs", "jobs.runs", "duckdb.typing", "pkg.sub.sibling.thing", "pkg.up"} <= names


def test_jobs_has_no_import_cycle() -> None:
    assert find_cycle(jobs_graph()) == []


def test_every_coordinator_method_says_what_it_does() -> None:
    from jobs import coord

    methods = [name for name in dir(coord.Coordinator) if not name.startswith("_")]
    assert len(methods) >= 30
    assert [name for name in methods if not (getattr(coord.Coordinator, name).__doc__ or "").strip()] == []


# -- pages draw; the core decides ---------------------------------------------------------------------

UI_KIT = ("ui/common.py", "ui/state.py", "ui/forms.py")  # the pages' shared helpers, session records, form kit
# Logic still in a page, to move to the core. Empty since the forms' defaults moved to
# ``sparring.validation.form_defaults``; keep it so.
PENDING: set[str] = set()


def page_functions() -> dict[tuple[str, str], ast.FunctionDef]:
    """Every top-level function of ``ui/``, by (module, name)."""
    found = {}
    for path in source_files("ui"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                found[(path.stem, node.name)] = node
    return found


def drawing(functions: dict[tuple[str, str], ast.FunctionDef]) -> set[tuple[str, str]]:
    """The functions that use ``st``, or call (by name or as ``module.name``) a ui function that does."""
    uses: dict[tuple[str, str], set[tuple[str, str]]] = {}
    draws = set()
    for (module, name), node in functions.items():
        names = [n for n in ast.walk(node) if isinstance(n, ast.Name)]
        if any(n.id == "st" for n in names):
            draws.add((module, name))
        attributes = [n for n in ast.walk(node) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)]
        uses[(module, name)] = {(module, n.id) for n in names} | {(a.value.id, a.attr) for a in attributes}  # type: ignore[attr-defined]
    grown = True
    while grown:
        grown = False
        for function, used in uses.items():
            if function not in draws and used & draws:
                draws.add(function)
                grown = True
    return draws


def statements(node: ast.FunctionDef) -> int:
    body = node.body
    docstring = body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    return len(body) - bool(docstring)


def test_a_page_function_that_draws_nothing_is_one_line_of_glue() -> None:
    """Logic that never touches Streamlit (a plan, a test choice, wording) lives in the core,
    where it is tested without a browser; a page keeps only glue (a widget key, an is-active
    predicate, a read adapter), one statement long."""
    functions = page_functions()
    draws = drawing(functions)
    kit = {Path(path).stem for path in UI_KIT}
    found = {
        f"{module}.{name}"
        for (module, name), node in functions.items()
        if module not in kit and (module, name) not in draws and statements(node) > 1
    }
    assert found - PENDING == set()


def test_the_page_logic_check_sees_drawing_through_helpers(tmp_path: Path) -> None:
    source = ast.parse(
        "def key(f):\n    return f'x_{f}'\n"
        "def title(t):\n    st.title(t)\n"
        "def header(t):\n    '''Doc.'''\n    t = t.strip()\n    title(t)\n"
        "def header_elsewhere(t):\n    t = t.strip()\n    common.live(t)\n"
        "def logic(t):\n    t = t.strip()\n    return t.upper()\n"
    )
    functions = {("page", n.name): n for n in source.body if isinstance(n, ast.FunctionDef)}
    functions[("common", "live")] = ast.parse("def live(x):\n    st.fragment(x)\n").body[0]  # type: ignore[assignment]
    draws = drawing(functions)
    assert {name for module, name in draws if module == "page"} == {"title", "header", "header_elsewhere"}
    assert statements(functions[("page", "key")]) == 1 and statements(functions[("page", "header")]) == 2


# -- SQL lives in the store ----------------------------------------------------------------------

SQL_START = re.compile(r"\(?\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|WITH|DROP|ALTER)\s")
# Modules outside the store allowed to hold SQL, each with its reason. An exemption that
# no longer finds SQL fails (test_every_sql_exemption_is_still_needed), so it is removed
# as soon as it is no longer needed.
SQL_EXEMPT = {
    # Not the store's database: the queue's coordination state (leases, flags, run ledgers)
    # in its own SQLite file when there is no Redis, the SQLite twin of the Redis coordinator.
    "jobs/coord.py": "the SQLite coordinator's own tables, the Redis coordinator's stand-in, not the store",
}


def sql_lines(path: Path) -> list[int]:
    """The line of each string literal in ``path`` that starts like an SQL statement (f-strings included:
    their literal parts are string constants too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return sorted(
        {
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_START.match(node.value.lstrip())
        }
    )


def sql_literals(path: Path) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line}" for line in sql_lines(path)]


def outside_the_store() -> list[Path]:
    return [p for p in source_files(*APP) if not within(module_name(p), ["sparring.store"])]


def test_only_the_store_holds_sql() -> None:
    exempt = [ROOT / name for name in SQL_EXEMPT]
    assert [hit for path in outside_the_store() if path not in exempt for hit in sql_literals(path)] == []


def test_every_sql_exemption_is_still_needed() -> None:
    assert [name for name in SQL_EXEMPT if not (ROOT / name).exists() or not sql_literals(ROOT / name)] == []


def test_the_sql_scan_sees_statements_and_only_statements(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        'A = "SELECT 1"\n'
        'B = """\nWITH x AS (SELECT 1) SELECT * FROM x"""\n'
        'C = f"DELETE FROM {name}"\n'
        'D = "(SELECT a FROM t) UNION ALL (SELECT b FROM t)"\n'
        'E = "Select the judge model"\n'
        'F = "Deleted 3 battles"\n'
    )
    assert sql_lines(source) == [1, 2, 4, 5]


def store_reads_over_connections(path: Path) -> list[str]:
    """``file:line`` of each ``x.read(lambda ...)`` or ``x.reading(...)``: a query built over a raw connection."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        over_lambda = node.func.attr == "read" and any(isinstance(arg, ast.Lambda) for arg in node.args)
        if over_lambda or node.func.attr == "reading":
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_pages_and_the_cli_never_see_a_connection() -> None:
    files = source_files("ui", "streamlit_app.py", "sparring/cli.py", "sparring/report.py", "jobs")
    assert [hit for path in files for hit in store_reads_over_connections(path)] == []
    forbidden = ["sparring.store.ReadQuery", "sparring.store.db.Connection", "sparring.store.db.reading"]
    assert violations(source_files("ui", "streamlit_app.py", "sparring/cli.py"), forbidden) == []
