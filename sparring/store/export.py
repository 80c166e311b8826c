"""Export a run (CSV or Parquet) or the whole database (Parquet), and import it back.

Rows are read through a short read-only attachment as Arrow tables and written with
pyarrow, so user-supplied ids only ever travel as query parameters. A whole-database
export is one Parquet file per table plus ``manifest.json`` (schema version, row counts);
importing it into a store inserts with ``ON CONFLICT DO NOTHING``, so importing twice, or
into a store that already holds some of the rows, never duplicates anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from sparring.store import Store
from sparring.store.db import Connection
from sparring.store.schema import (
    BACKFILL_STRATEGY_COUNTERS,
    RECLASSIFY_UNDECIDED,
    RECOUNT_VERDICTS,
    SCHEMA_VERSION,
    STRATEGIES_SINCE,
    TABLES_SQL,
    UNDECIDED_SINCE,
    VERDICT_COUNTS_SINCE,
)

TABLES = (
    "agents",
    "scale_runs",
    "battles",
    "messages",
    "verdicts",
    "llm_calls",
    "battle_events",
    "run_reports",
    "judge_labels",
    "judge_runs",
    "judge_verdicts",
    "audit",
    "cell_stops",
)

RUN_QUERIES = {
    "battles": "SELECT * FROM battle_outcomes WHERE run_id = ? ORDER BY cell_index, replicate",
    "messages": """
        SELECT m.* FROM messages m JOIN battles b USING (battle_id)
        WHERE b.run_id = ? ORDER BY m.battle_id, m.seq
    """,
    "verdicts": """
        SELECT v.* FROM verdicts v JOIN battles b USING (battle_id)
        WHERE b.run_id = ? ORDER BY v.battle_id, v.seq
    """,
    "llm_calls": "SELECT * FROM llm_calls WHERE run_id = ? ORDER BY started_at",
    "cells": "SELECT * FROM run_cells WHERE run_id = ? ORDER BY cell_index",
    "survival": "SELECT * FROM run_survival WHERE run_id = ? ORDER BY cell_key, turn",
}
SINGLE_BATTLE_QUERIES = {
    "battles": "SELECT * FROM battle_outcomes WHERE battle_id = ?",
    "messages": "SELECT * FROM messages WHERE battle_id = ? ORDER BY seq",
    "verdicts": "SELECT * FROM verdicts WHERE battle_id = ? ORDER BY seq",
    "llm_calls": "SELECT * FROM llm_calls WHERE battle_id = ? ORDER BY started_at",
}
RUN_EXISTS_SQL = "SELECT count(*) FROM scale_runs WHERE run_id = ?"
FORMATS = ("parquet", "csv")


class ExportError(ValueError):
    pass


@dataclass(frozen=True)
class Exported:
    files: tuple[Path, ...]
    rows: dict[str, int]


def _write(table: pa.Table, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        pa_csv.write_csv(table, path)


def export_run(store: Store, run_id: str, out_dir: Path, fmt: str = "parquet") -> Exported:
    """One file per part of the run: battles, messages, verdicts, llm_calls, cells, survival."""
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}")

    def read(con: Connection) -> dict[str, pa.Table]:
        (row,) = con.execute(RUN_EXISTS_SQL, [run_id]).fetchall()
        if not row[0]:
            raise ExportError(f"unknown run id {run_id!r}")
        return {name: con.sql(sql, params=[run_id]).to_arrow_table() for name, sql in RUN_QUERIES.items()}

    return _write_all(store.read(read), out_dir, f"run-{run_id}", fmt)


def export_battle(store: Store, battle_id: str, out_dir: Path, fmt: str = "csv") -> Exported:
    def read(con: Connection) -> dict[str, pa.Table]:
        tables = {
            name: con.sql(sql, params=[battle_id]).to_arrow_table() for name, sql in SINGLE_BATTLE_QUERIES.items()
        }
        if tables["battles"].num_rows == 0:
            raise ExportError(f"unknown battle id {battle_id!r}")
        return tables

    return _write_all(store.read(read), out_dir, f"battle-{battle_id}", fmt)


def _write_all(tables: dict[str, pa.Table], out_dir: Path, prefix: str, fmt: str) -> Exported:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for name, table in tables.items():
        path = out_dir / f"{prefix}-{name}.{fmt}"
        _write(_as_arrow(table), path, fmt)
        files.append(path)
    return Exported(tuple(files), {name: table.num_rows for name, table in tables.items()})


def _as_arrow(table: pa.Table | pa.RecordBatchReader) -> pa.Table:
    return table.read_all() if isinstance(table, pa.RecordBatchReader) else table


def table_rows(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table as Python values, by table (what a scan for a leaked secret reads)."""
    return store.read(lambda con: {name: con.execute(f"SELECT * FROM {name}").fetchall() for name in TABLES})


def export_database(store: Store, out_dir: Path) -> Exported:
    """Every table as Parquet, plus ``manifest.json``."""

    def read(con: Connection) -> dict[str, pa.Table]:
        present = {row[0] for row in con.execute(TABLES_SQL).fetchall()}  # an older file lacks the newer tables
        return {name: con.sql(f"SELECT * FROM {name}").to_arrow_table() for name in TABLES if name in present}

    tables = store.read(read)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for name, table in tables.items():
        path = out_dir / f"{name}.parquet"
        pq.write_table(table, path)
        files.append(path)
    rows = {name: table.num_rows for name, table in tables.items()}
    manifest = out_dir / "manifest.json"
    manifest.write_text(json.dumps({"schema_version": SCHEMA_VERSION, "tables": rows}, indent=2))
    return Exported((*files, manifest), rows)


def import_database(store: Store, in_dir: Path) -> dict[str, int]:
    """Load a whole-database export; return how many rows each table gained."""
    manifest_path = in_dir / "manifest.json"
    if not manifest_path.exists():
        raise ExportError(f"{in_dir} has no manifest.json: not a Sparring export")
    manifest = json.loads(manifest_path.read_text())
    if int(manifest.get("schema_version", 0)) > SCHEMA_VERSION:
        raise ExportError("this export comes from a newer Sparring; upgrade before importing")
    tables = {
        name: pq.read_table(in_dir / f"{name}.parquet") for name in TABLES if (in_dir / f"{name}.parquet").exists()
    }
    added: dict[str, int] = {}
    store.migrate()
    from sparring.store import db

    with db.writing(store.path) as con:
        for name in TABLES:
            if name not in tables:
                continue
            con.register("incoming", tables[name])
            try:
                (before,) = con.execute(f"SELECT count(*) FROM {name}").fetchall()
                columns = ", ".join(f'"{c}"' for c in tables[name].column_names)
                con.execute(
                    f"INSERT INTO {name} ({columns}) SELECT {columns} FROM incoming ON CONFLICT DO NOTHING"
                ).fetchall()
                (after,) = con.execute(f"SELECT count(*) FROM {name}").fetchall()
            finally:
                con.unregister("incoming")
            added[name] = int(after[0]) - int(before[0])
        if int(manifest.get("schema_version", 0)) < UNDECIDED_SINCE:  # exported before undecided existed
            con.execute(RECLASSIFY_UNDECIDED)
        if int(manifest.get("schema_version", 0)) < VERDICT_COUNTS_SINCE:  # battles without their verdict counts
            con.execute(RECOUNT_VERDICTS)
        if int(manifest.get("schema_version", 0)) < STRATEGIES_SINCE:  # exported before the counters existed
            con.execute(BACKFILL_STRATEGY_COUNTERS)
    return added
