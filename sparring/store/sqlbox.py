"""The read-only SQL box: one SELECT over the documented tables and views, nothing else.

Two layers. First DuckDB's own parser (``extract_statements`` and ``json_serialize_sql``)
checks the text: exactly one statement, of type SELECT; no table functions but a few
harmless generators; no base table outside our schema (so ``FROM 'file.csv'`` cannot
read the disk); no function that reaches outside the database (``getenv`` would reveal
API keys). Then the query runs on a read-only attachment, so even a missed trick cannot
write.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import duckdb
import pandas as pd

from sparring.store import Store, db

# What the SQL box holds before anyone types: outcomes by agent model, a first useful table.
EXAMPLE_SQL = """SELECT agent_model, outcome, count(*) AS battles
FROM battle_outcomes
GROUP BY ALL
ORDER BY agent_model, outcome"""
ALLOWED_TABLE_FUNCTIONS = {"range", "generate_series", "unnest"}
DENIED_FUNCTIONS = {
    "getenv",
    "read_text",
    "read_blob",
    "glob",
    "current_setting",
    "duckdb_settings",
    "duckdb_extensions",
    "duckdb_secrets",
    "which_secret",
    "sql_auto_complete",
}
DENIED_PREFIXES = ("read_", "parquet_", "sniff_", "iceberg_", "delta_", "http", "pg_", "sqlite_", "mysql_")

_STATEMENT_WORDS = {
    "INSERT": "INSERT writes rows",
    "UPDATE": "UPDATE changes rows",
    "DELETE": "DELETE removes rows",
    "CREATE": "CREATE makes new objects",
    "DROP": "DROP removes objects",
    "ALTER": "ALTER changes the schema",
    "ATTACH": "ATTACH opens other databases",
    "DETACH": "DETACH closes databases",
    "COPY": "COPY writes or reads files",
    "EXPORT": "EXPORT writes files",
    "LOAD": "INSTALL/LOAD add extensions",
    "PRAGMA": "PRAGMA changes settings",
    "SET": "SET/USE change settings",
    "CALL": "CALL runs procedures",
    "TRANSACTION": "transactions are not needed to read",
    "VACUUM": "VACUUM rewrites the file",
}

SCHEMA_OBJECTS_SQL = "SELECT lower(table_name) FROM information_schema.tables WHERE table_catalog = current_database()"


# A checked, allowed query that DuckDB could not run (a typo in a column name): DuckDB's own
# error, named here so that callers need not import the database module.
QueryFailed = db.Error


class UnsafeQuery(ValueError):
    """The SQL box refused a query; the message says why in plain words."""


def check_query(sql: str, known_tables: set[str]) -> str:
    """Return the single SELECT statement in ``sql``, or raise ``UnsafeQuery``."""
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise UnsafeQuery("Write a query, for example: SELECT * FROM battle_outcomes LIMIT 10")
    try:
        statements = duckdb.extract_statements(text)
    except duckdb.Error as error:
        raise UnsafeQuery(f"This is not valid SQL: {str(error).splitlines()[0]}") from None
    if len(statements) != 1:
        raise UnsafeQuery("Only one statement at a time: the SQL box runs a single read-only query.")
    kind = str(statements[0].type).rsplit(".", 1)[-1]
    if kind != "SELECT":
        reason = _STATEMENT_WORDS.get(kind, f"{kind} statements are not queries")
        raise UnsafeQuery(f"Refused: {reason}. The SQL box is read-only; only SELECT queries run here.")
    tree = _parse_tree(text)
    ctes = set(_ctes(tree))
    for kind, name in _references(tree):
        lowered = name.lower()
        if kind == "table" and lowered not in known_tables and lowered not in ctes:
            raise UnsafeQuery(f"Refused: '{name}' is not a table or view of this database.")
        if kind == "table_function" and lowered not in ALLOWED_TABLE_FUNCTIONS:
            raise UnsafeQuery(f"Refused: the table function {name}() reads outside the database.")
        if kind == "function" and (lowered in DENIED_FUNCTIONS or lowered.startswith(DENIED_PREFIXES)):
            raise UnsafeQuery(f"Refused: the function {name}() reaches outside the database.")
    return text


def _parse_tree(text: str) -> dict[str, Any]:
    con = db.host_cursor()
    try:
        raw = con.execute("SELECT json_serialize_sql(?)", [text]).fetchone()
    finally:
        con.close()
    tree: dict[str, Any] = json.loads(raw[0]) if raw else {"error": True}
    if tree.get("error"):
        raise UnsafeQuery(f"This query cannot be checked: {tree.get('error_message', 'unsupported syntax')}")
    return tree


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _ctes(tree: dict[str, Any]) -> Iterator[str]:
    for node in _walk(tree):
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            for entry in cte_map.get("map", []):
                if isinstance(entry, dict) and "key" in entry:
                    yield str(entry["key"]).lower()


def _references(tree: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for node in _walk(tree):
        if node.get("type") == "BASE_TABLE":
            schema = node.get("schema_name") or ""
            catalog = node.get("catalog_name") or ""
            if schema not in ("", "main") or catalog:
                yield "table", f"{catalog}.{schema}.{node.get('table_name')}"
            else:
                yield "table", str(node.get("table_name"))
        elif node.get("type") == "TABLE_FUNCTION":
            function = node.get("function") or {}
            yield "table_function", str(function.get("function_name"))
        elif node.get("class") == "FUNCTION" and "function_name" in node:
            yield "function", str(node["function_name"])


def run_query(store: Store, sql: str, limit: int = 10_000) -> pd.DataFrame:
    """Check and run ``sql`` read-only; at most ``limit`` rows."""

    def query(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
        known = {row[0] for row in con.execute(SCHEMA_OBJECTS_SQL).fetchall()}
        text = check_query(sql, known)
        frame: pd.DataFrame = con.execute(f"SELECT * FROM ({text}) LIMIT {int(limit)}").df()
        return frame

    return store.read(query)
