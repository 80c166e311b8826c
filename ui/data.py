"""Data: browse the documented tables and views, query them read-only, read the schema.

The same tables and views a notebook reads (``docs/data.md``). Browsing filters by run,
model, outcome and date with parameters; the SQL box goes through
``sparring.store.sqlbox``, which runs one SELECT on a read-only attachment and refuses
anything else with a message.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import streamlit as st

from sparring import formatting, schema_doc, usecases
from sparring.store import StoreBusy, StoreMissing, reads, ui_queries
from sparring.store.sqlbox import EXAMPLE_SQL, QueryFailed, UnsafeQuery
from ui import common, session

log = logging.getLogger(__name__)

PREVIEW_ROWS = 500
QUERY_ROWS = 10_000
ANY = "__any__"
RESULT = "data_sql_result"  # the SQL box's last result: {"sql", "frame" | "error", "kind"}
DEFAULT_SQL = EXAMPLE_SQL
FIRST_CHOICE = "battle_outcomes"


# -- the schema reference (docs/data.md) ------------------------------------------------------------


def schema_reference(text: str) -> None:
    if not text:
        st.caption("The schema reference (docs/data.md) is not installed here; see the project's repository.")
        return
    intro, chapters = schema_doc.doc_sections(text)
    st.markdown(intro)
    for heading, lead, subsections in chapters:
        if not subsections:
            with st.expander(heading):
                st.markdown(lead)
            continue
        st.markdown(f"#### {heading}")
        if lead:
            st.markdown(lead)
        for name, body in subsections:
            with st.expander(name, icon=":material/table:"):
                st.markdown(body)


# -- browsing -------------------------------------------------------------------------------------------


def object_label(objects: dict[str, ui_queries.SchemaObject]) -> Any:
    return lambda name: f"{name} · {objects[name].kind}"


def filter_options(name: str, obj: ui_queries.SchemaObject) -> tuple[list[ui_queries.RunRow], list[str]]:
    return common.read(reads.filter_options, name, obj) or ([], [])


def filters(name: str, obj: ui_queries.SchemaObject) -> ui_queries.BrowseFilters:
    found_runs, models = filter_options(name, obj)
    chosen: dict[str, Any] = {}
    widgets = st.columns(5)
    if "run_id" in obj.columns:
        runs = {ANY: "any", ui_queries.NO_RUN: "none (single battles)"}
        runs.update(
            {run.run_id: f"{common.truncate(run.name, 40)} · {common.short_id(run.run_id)}" for run in found_runs}
        )
        value = widgets[0].selectbox("Run", list(runs), key="data_run", format_func=runs.__getitem__)
        chosen["run_id"] = None if value == ANY else value
    if obj.model_column:
        value = widgets[1].selectbox(
            "Model", [ANY, *models], key="data_model", format_func=lambda m: "any" if m == ANY else m
        )
        chosen["model"] = None if value == ANY else value
        widgets[1].caption(f"Column `{obj.model_column}`")
    if "outcome" in obj.columns:
        value = widgets[2].selectbox(
            "Outcome", [ANY, *ui_queries.OUTCOMES], key="data_outcome", format_func=lambda o: "any" if o == ANY else o
        )
        chosen["outcome"] = None if value == ANY else value
    if obj.date_column:
        chosen["since"] = widgets[3].date_input("From (UTC)", value=None, key="data_since")
        chosen["until"] = widgets[4].date_input("To (UTC)", value=None, key="data_until")
        widgets[3].caption(f"Column `{obj.date_column}`")
    if not chosen:
        st.caption("No run, model, outcome or date column to filter on here.")
    return ui_queries.BrowseFilters(**chosen)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return str(frame.to_csv(index=False)).encode("utf-8")


def browse_section(objects: dict[str, ui_queries.SchemaObject], docs: dict[str, str]) -> None:
    names = sorted(objects, key=lambda n: (objects[n].kind != "view", n))
    if st.session_state.get("data_object") not in names:
        st.session_state["data_object"] = FIRST_CHOICE if FIRST_CHOICE in names else names[0]
    name = st.selectbox(
        "Table or view",
        names,
        key="data_object",
        format_func=object_label(objects),
        help="Views answer common questions directly; tables hold the raw records.",
    )
    obj = objects[name]
    doc = docs.get(name, "")
    if doc:
        st.caption(common.truncate(doc.split("\n\n", 1)[0], 400))
    chosen = filters(name, obj)
    found = common.read(reads.browse, name, chosen, PREVIEW_ROWS)
    if found is None:
        return
    shown = len(found.rows)
    if found.total == 0:
        st.info("No rows match these filters.", icon=":material/filter_alt_off:")
        return
    more = f"; showing the first {shown:,}" if shown < found.total else ""
    order = f", newest first by `{obj.date_column}`" if obj.date_column else ""
    st.caption(f"**{formatting.plural(found.total, 'row')}** match{more}{order}.")
    with st.container(key="data_preview"):
        st.dataframe(found.rows, hide_index=True)
    st.download_button(
        f"Download {'this row' if shown == 1 else f'these {shown:,} rows'} (CSV)",
        data=lambda: csv_bytes(found.rows),
        file_name=f"{name}.csv",
        mime="text/csv",
        icon=":material/download:",
        key="data_preview_csv",
        on_click="ignore",
    )
    if doc:
        with st.expander(f"Columns of {name}", icon=":material/view_column:"):
            st.markdown(doc)


# -- the SQL box -----------------------------------------------------------------------------------------


def run_sql() -> None:
    """The "Run query" button: keep the result (or the refusal) for the render."""
    sql = st.session_state.get("data_sql") or ""
    try:
        frame = usecases.run_sql(sql, limit=QUERY_ROWS, actor=session.actor())
    except usecases.AccessRefused as error:
        st.session_state[RESULT] = {"sql": sql, "kind": "refused", "error": str(error)}
    except UnsafeQuery as error:
        st.session_state[RESULT] = {"sql": sql, "kind": "refused", "error": str(error)}
    except QueryFailed as error:  # valid and allowed, but it failed (a typo in a column name)
        st.session_state[RESULT] = {"sql": sql, "kind": "failed", "error": str(error).splitlines()[0]}
    except (StoreBusy, StoreMissing) as error:
        st.session_state[RESULT] = {"sql": sql, "kind": "busy", "error": str(error)}
    else:
        st.session_state[RESULT] = {"sql": sql, "kind": "ok", "frame": frame}


def sql_section() -> None:
    st.session_state.setdefault("data_sql", DEFAULT_SQL)
    st.text_area(
        "Read-only SQL",
        key="data_sql",
        height=140,
        help="One SELECT over this database's tables and views (DuckDB SQL). "
        "Statements that write, read files or change settings are refused.",
    )
    st.button("Run query", key="data_run_sql", type="primary", icon=":material/play_arrow:", on_click=run_sql)
    st.caption(
        f"Read-only: one SELECT at a time, at most {QUERY_ROWS:,} rows; INSERT, UPDATE, DELETE, DROP, ATTACH, "
        "COPY, INSTALL/LOAD, PRAGMA, SET and file-reading functions are refused. The same query works in a notebook: "
        '`sparring.data.query("SELECT ...")`.'
    )
    result = st.session_state.get(RESULT)
    if not result:
        return
    if result["kind"] == "refused":
        st.error(result["error"], icon=":material/block:")
        return
    if result["kind"] == "failed":
        st.error(f"The query failed: {result['error']}", icon=":material/error:")
        return
    if result["kind"] == "busy":
        st.warning(result["error"], icon=":material/hourglass_top:")
        return
    frame: pd.DataFrame = result["frame"]
    capped = " (the first ones: the box stops there)" if len(frame) >= QUERY_ROWS else ""
    st.caption(f"**{formatting.plural(len(frame), 'row')}**{capped}.")
    with st.container(key="data_result"):
        st.dataframe(frame, hide_index=True)
    st.download_button(
        "Download the result (CSV)",
        data=csv_bytes(frame),
        file_name="query.csv",
        mime="text/csv",
        icon=":material/download:",
        key="data_result_csv",
        on_click="ignore",
    )


# -- the audit trail (admins) -----------------------------------------------------------------------------

ADMIN_ONLY = ("audit",)  # browsed only by admins: who did what is not every viewer's business


def audit_section() -> None:
    st.caption(
        "Sign-ins, launches, cancels, retries, labels, re-judges, profile saves, SQL box queries and refused "
        "actions, newest first. Append-only (docs/data.md, table `audit`)."
    )
    try:
        rows = usecases.audit_trail(limit=PREVIEW_ROWS, actor=session.actor())
    except (StoreBusy, StoreMissing) as error:
        st.warning(str(error), icon=":material/hourglass_top:")
        return
    if not rows:
        st.info("Nothing recorded yet.", icon=":material/history:")
        return
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="data_audit")


# -- page --------------------------------------------------------------------------------------------------


def main() -> None:
    st.set_page_config(page_title="Data · Sparring")
    st.title("Data")
    st.caption(
        "Everything Sparring records lives in one DuckDB file. These are the tables and views a notebook reads "
        "(`from sparring import data`), so the app and your analysis see the same numbers. Times are UTC, money "
        "is US dollars, latencies are milliseconds."
    )
    text = schema_doc.read_doc()
    admin = session.actor().may("admin")
    names = ["Browse", "SQL", "Schema reference"] + (["Audit trail"] if admin else [])
    browse_tab, sql_tab, schema_tab, *audit_tab = st.tabs(names)
    objects = common.read(reads.schema_objects)
    if objects and not admin:
        objects = {name: obj for name, obj in objects.items() if name not in ADMIN_ONLY}
    with browse_tab:
        if objects:
            browse_section(objects, schema_doc.object_docs(text))
        else:
            st.info("Nothing has been recorded yet: start a battle on the hub.", icon=":material/table_view:")
    with sql_tab:
        sql_section()
    with schema_tab:
        schema_reference(text)
    for tab in audit_tab:
        with tab:
            audit_section()


main()
