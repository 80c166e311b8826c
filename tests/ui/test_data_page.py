"""The Data page: browse tables and views with filters, the read-only SQL box, the schema reference."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from jobs import embedded, runs
from tests.helpers import rows, scalar, wait_until
from tests.ui.apptest import open_page

PAGE = "ui/data.py"


def small_run(name: str, concede: float) -> str:
    embedded.start(threads=4)
    run_id = runs.submit_run(
        {"name": name, "runs": 4, "max_messages": 4, "seed": 3, "agents": [{"model": f"sim/agent?concede={concede}"}]}
    )
    wait_until(lambda: scalar("SELECT status FROM scale_runs WHERE run_id = ?", [run_id]) == "finished", 120)
    return run_id


def preview(at: AppTest) -> pd.DataFrame:
    (found,) = [node for node in at.main.get_by_key("data_preview") if getattr(node, "type", "") == "dataframe"]
    return found.value


def query(at: AppTest, sql: str) -> AppTest:
    at.text_area(key="data_sql").set_value(sql)
    at.button(key="data_run_sql").click()
    at.run()
    assert not at.exception, at.exception
    return at


def test_browse_a_view_with_filters() -> None:
    first, second = small_run("first", 1.0), small_run("second", 0.0)
    at = open_page(PAGE)
    assert at.selectbox(key="data_object").value == "battle_outcomes"
    assert len(preview(at)) == 8
    assert any("**8 rows** match" in c.value for c in at.caption)
    at.selectbox(key="data_run").set_value(first).run()
    assert set(preview(at)["run_id"]) == {first}
    at.selectbox(key="data_outcome").set_value("held").run()
    assert at.info[0].value == "No rows match these filters."  # concede=1: every battle of the first run fell
    at.selectbox(key="data_run").set_value(second).run()
    assert set(preview(at)["outcome"]) == {"held"} and len(preview(at)) == 4
    today = dt.datetime.now(dt.UTC).date()
    at.date_input(key="data_until").set_value(today - dt.timedelta(days=1)).run()
    assert at.info[0].value == "No rows match these filters."
    at.date_input(key="data_until").set_value(None)
    at.date_input(key="data_since").set_value(today).run()
    assert len(preview(at)) == 4
    # another object, another set of filters: model calls by model
    at.selectbox(key="data_object").set_value("llm_calls").run()
    assert {"sim/adversary", "sim/agent?concede=0.0", "sim/judge"} <= set(at.selectbox(key="data_model").options)
    at.selectbox(key="data_model").set_value("sim/judge").run()
    calls = preview(at)
    assert set(calls["model"]) == {"sim/judge"} and set(calls["run_id"]) == {second}
    assert len(at.get("download_button")) >= 1
    assert any(e.label == "Columns of llm_calls" for e in at.expander)


def test_the_preview_is_limited_and_says_how_many_rows_there_are() -> None:
    small_run("many", 0.0)
    at = open_page(PAGE)
    at.selectbox(key="data_object").set_value("messages").run()
    total = scalar("SELECT count(*) FROM messages")
    assert total == 16 and len(preview(at)) == 16
    assert any(f"**{total} rows** match" in c.value for c in at.caption)


def test_the_sql_box_runs_a_select_and_offers_the_result_as_csv() -> None:
    run_id = small_run("queried", 1.0)
    at = query(open_page(PAGE), "SELECT run_id, n, achieved, rate FROM run_cells")
    assert not at.error
    (result,) = [node for node in at.main.get_by_key("data_result") if getattr(node, "type", "") == "dataframe"]
    assert result.value.to_dict("records") == [{"run_id": run_id, "n": 4, "achieved": 4, "rate": 1.0}]
    assert "Download the result (CSV)" in [b.label for b in at.get("download_button")]
    at = query(at, "SELECT nope FROM battles")
    assert "The query failed" in at.error[0].value and "nope" in at.error[0].value


COUNTS = "SELECT (SELECT count(*) FROM battles), (SELECT count(*) FROM agents), (SELECT count(*) FROM duckdb_tables())"
REFUSED = [
    ("INSERT INTO agents (name, model, system_prompt) VALUES ('x', 'sim/agent', 'p')", "INSERT"),
    ("DELETE FROM battles", "DELETE"),
    ("DROP TABLE battles", "DROP"),
    ("ATTACH 'other.duckdb' AS other", "ATTACH"),
    ("COPY battles TO 'stolen.csv'", "COPY"),
    ("INSTALL httpfs", "INSTALL/LOAD"),
    ("LOAD httpfs", "INSTALL/LOAD"),
    ("SELECT 1; DROP TABLE battles", "one statement"),
    ("SELECT * FROM read_csv('/etc/passwd')", "outside the database"),
    ("SELECT getenv('HOME')", "outside the database"),
]


def test_the_sql_box_refuses_what_is_not_a_read_and_changes_nothing() -> None:
    """One page for every statement (a page and a run per statement took 1-4 s each): each is
    refused with its reason, the page stays usable for the next, nothing changes."""
    small_run("kept", 0.5)
    before = rows(COUNTS)
    at = open_page(PAGE)
    for sql, reason in REFUSED:
        at = query(at, sql)
        (error,) = at.error
        assert reason in error.value, (sql, error.value)
        assert "Traceback" not in error.value, sql
        with pytest.raises(KeyError):
            at.main.get_by_key("data_result")
        assert rows(COUNTS) == before, sql
        assert not (Path.cwd() / "stolen.csv").exists()


def test_the_schema_reference_documents_every_table_and_view() -> None:
    at = open_page(PAGE)
    labels = {e.label for e in at.expander}
    listed = {
        name
        for (name,) in rows("SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database()")
    }
    assert listed <= labels
    assert any("Schema version" in m.value for m in at.markdown)


def test_an_empty_database_is_an_empty_state_not_an_error() -> None:
    at = open_page(PAGE)
    assert not at.error
    assert at.info[0].value == "No rows match these filters."
