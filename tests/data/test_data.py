"""Analysts and notebooks: documented schema, safe live access, SQL box, export, notebook."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import nbformat
import pytest
from nbclient import NotebookClient

from jobs import embedded, runs
from sparring import data, runtime
from sparring.store import schema
from sparring.store.export import export_database, export_run, import_database
from sparring.store.sqlbox import UnsafeQuery, run_query
from tests.helpers import rows, scalar, wait_until

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "data.md"
TERMINAL = ("finished", "cancelled", "stopped", "failed")


def documented() -> dict[str, list[tuple[str, str]]]:
    """``{table or view: [(column, type), ...]}`` parsed from docs/data.md."""
    objects: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        heading = re.match(r"^### (\w+)\s*$", line)
        if heading:
            current = heading.group(1)
            objects[current] = []
            continue
        cell = re.match(r"^\| (\w+) \| ([A-Z]+(?:\[\])?) \| .+ \|$", line)
        if current and cell and cell.group(1) != "column":
            objects[current].append((cell.group(1), cell.group(2)))
    return objects


def run_small_scale_test(battles: int = 12) -> str:
    embedded.start(threads=4)
    run_id = runs.submit_run(
        {
            "runs": battles // 2,
            "max_messages": 8,
            "seed": 5,
            "agents": [{"model": "sim/agent?concede=0.2"}, {"model": "sim/agent?concede=0.5"}],
        }
    )
    wait_until(
        lambda: scalar("SELECT status FROM scale_runs WHERE run_id = ?", [run_id]) in TERMINAL, 180, message="run"
    )
    return run_id


def test_every_documented_table_and_view_has_the_documented_columns() -> None:
    store = runtime.get_runtime().store
    store.migrate()
    docs = documented()
    assert {"battle_outcomes", "run_cells", "model_calls", "run_survival", "run_summary", "battles", "messages"} <= set(
        docs
    )
    actual = store.read(
        lambda con: {name: [(c, t) for c, t, *_ in con.execute(f"DESCRIBE {name}").fetchall()] for name in docs}
    )
    type_names = {"TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ"}
    for name, columns in docs.items():
        got = [(column, type_names.get(kind, kind)) for column, kind in actual[name]]
        assert got == columns, f"{name}: documented {columns} but the database has {got}"
    # and nothing in the database is undocumented
    listed = {
        r[0] for r in rows("SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database()")
    }
    assert listed == set(docs)
    assert f"**Schema version: {schema.SCHEMA_VERSION}**" in DOC.read_text()


def test_the_example_notebook_runs_top_to_bottom(isolated: Path) -> None:
    run_id = run_small_scale_test()
    notebook = nbformat.read(ROOT / "notebooks" / "explore.ipynb", as_version=4)
    client = NotebookClient(notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "\n".join(str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", "")) for o in outputs)
    assert run_id in text  # it listed the run
    charts = [o for o in outputs if "vegaEmbed" in str(o.get("data", {}).get("text/html", ""))]
    assert len(charts) >= 3  # the Altair charts rendered


def test_notebook_numbers_equal_the_views() -> None:
    run_id = run_small_scale_test()
    from sparring.report import run_stats

    computed = {c["cell_key"]: c for c in run_stats(runtime.get_runtime().store, run_id)["cells"]}
    frame = data.cells(run_id)
    for row in frame.itertuples():
        cell = computed[row.cell_key]
        assert (row.n, row.achieved) == (cell["n"], cell["achieved"])
        assert row.rate == pytest.approx(cell["rate"]) and row.ci_low == pytest.approx(cell["ci_low"])


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO agents VALUES ('x', 'sim/agent', 'p', NULL, NULL, NULL, now(), now())",
        "DELETE FROM battles",
        "UPDATE battles SET outcome = 'held'",
        "DROP TABLE messages",
        "DROP VIEW run_cells",
        "CREATE TABLE x AS SELECT 1",
        "ALTER TABLE battles ADD COLUMN x INT",
        "ATTACH '/tmp/other.duckdb' AS other",
        "DETACH other",
        "COPY battles TO '/tmp/out.csv'",
        "COPY (SELECT * FROM battles) TO '/tmp/out.parquet' (FORMAT parquet)",
        "EXPORT DATABASE '/tmp/dump'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "PRAGMA enable_profiling",
        "SET threads = 1",
        "CALL pragma_version()",
        "CHECKPOINT",
        "BEGIN TRANSACTION",
        "SELECT 1; DROP TABLE battles",
        "SELECT 1; DELETE FROM battles;",
        "SELECT * FROM battles; INSERT INTO agents SELECT * FROM agents",
        "SELECT getenv('OPENAI_API_KEY')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM glob('/*')",
        "WITH x AS (SELECT 1) SELECT * FROM read_parquet('/tmp/x.parquet')",
        "SELECT * FROM sqlite_scan('/tmp/x.db', 't')",
        "",
    ],
)
def test_sql_box_refuses_writes_and_escapes(sql: str) -> None:
    store = runtime.get_runtime().store
    store.migrate()
    before = store.read(lambda con: con.execute("SELECT count(*) FROM information_schema.tables").fetchall())
    with pytest.raises(UnsafeQuery) as refused:
        run_query(store, sql)
    assert str(refused.value)  # a message for the user
    after = store.read(lambda con: con.execute("SELECT count(*) FROM information_schema.tables").fetchall())
    assert before == after
    assert not Path("/tmp/out.csv").exists() or "COPY" not in sql


def test_sql_box_runs_selects() -> None:
    run_id = run_small_scale_test(battles=4)
    store = runtime.get_runtime().store
    frame = run_query(store, "SELECT cell_key, rate FROM run_cells WHERE run_id = '" + run_id + "'")
    assert len(frame) == 2
    assert len(run_query(store, "WITH b AS (SELECT * FROM battles) SELECT count(*) AS n FROM b")) == 1
    assert len(run_query(store, "DESCRIBE battles")) > 10
    assert len(run_query(store, "SELECT * FROM messages", limit=3)) == 3


def test_a_notebook_holding_the_file_for_ten_seconds_loses_nothing(isolated: Path) -> None:
    embedded.start(threads=8)
    run_id = runs.submit_run(
        {"runs": 40, "max_messages": 10, "seed": 9, "agents": [{"model": "sim/agent?concede=0&latency_ms=120"}]}
    )
    wait_until(lambda: (scalar("SELECT count(*) FROM messages") or 0) > 20, 120, message="battles running")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from sparring import data; con = data.connect(sys.argv[1]); "
            "print(con.execute('SELECT count(*) FROM messages').fetchone()[0], flush=True); "
            "time.sleep(10); con.close()",
            str(runtime.get_runtime().settings.db_path),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    seen_by_notebook = int(holder.stdout.readline())
    started = time.monotonic()
    assert holder.wait(30) == 0
    held_for = time.monotonic() - started
    wait_until(
        lambda: scalar("SELECT status FROM scale_runs WHERE run_id = ?", [run_id]) in TERMINAL, 180, message="run"
    )
    assert held_for > 9
    summary = rows(
        "SELECT battles, finished, held, failed, cancelled, timed_out FROM run_summary WHERE run_id = ?", [run_id]
    )
    assert summary == [(40, 40, 40, 0, 0, 0)]  # every battle held (concede=0), none failed
    messages = scalar("SELECT count(*) FROM messages")
    distinct = scalar("SELECT count(DISTINCT (battle_id, seq)) FROM messages")
    assert messages == distinct == 40 * 10 > seen_by_notebook
    assert scalar("SELECT count(*) FROM verdicts") == 40 * 5


def test_export_and_import_round_trip(tmp_path: Path) -> None:
    run_id = run_small_scale_test(battles=6)
    store = runtime.get_runtime().store
    for fmt in ("csv", "parquet"):
        done = export_run(store, run_id, tmp_path / fmt, fmt)
        assert done.rows["battles"] == 6 and all(f.exists() for f in done.files)
    dump = export_database(store, tmp_path / "all")
    from sparring.store import Store

    other = Store(tmp_path / "copy.duckdb")
    first = import_database(other, tmp_path / "all")
    again = import_database(other, tmp_path / "all")
    assert first["messages"] == dump.rows["messages"] > 0 and set(again.values()) == {0}
    con = duckdb.connect(str(tmp_path / "copy.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM run_cells WHERE run_id = ?", [run_id]).fetchone()[0] == 2
    finally:
        con.close()


def test_a_mistyped_table_name_in_a_notebook_query_is_named_as_a_missing_table() -> None:
    """New-user run: ``data.query("SELECT * FROM runs")`` found the helper function ``runs`` instead."""
    runtime.get_runtime().store.migrate()
    with pytest.raises(duckdb.CatalogException, match="Table with name runs does not exist"):
        data.query("SELECT * FROM runs")
    assert list(data.query("SELECT count(*) AS n FROM scale_runs")["n"]) == [0]
