"""Safe live access for notebooks and scripts.

    from sparring import data
    with data.connect() as con:                      # read-only, retried if a writer holds the file
        con.sql("SELECT * FROM run_cells").df()

A connection holds the database file for as long as it is open, and while it does,
battles queue their writes (nothing is lost; they land when it closes). So prefer short
``with`` blocks, or the one-shot helpers below, which open, read and close.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from sparring.settings import get_settings
from sparring.store import db
from sparring.store.ui_queries import clip_bounds


def database_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The database file: ``path``, or the one under ``SPARRING_DATA_DIR`` (default ``data/``)."""
    return Path(path) if path is not None else get_settings().db_path


def connect(path: str | os.PathLike[str] | None = None, *, wait_s: float = 30.0) -> db.Connection:
    """A read-only DuckDB connection, opened with retry; use it in a ``with`` block."""
    return db.connect_read_only(database_path(path), deadline_s=wait_s)


def query(sql: str, params: list[Any] | None = None, path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Open, run one query, close: the friendliest way to read while battles run."""
    with connect(path) as con:
        frame: pd.DataFrame = con.execute(sql, params or []).df()
        return frame


def runs(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    return clip_bounds(query("SELECT * FROM run_summary ORDER BY created_at DESC", path=path))


def cells(run_id: str, path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    return clip_bounds(query("SELECT * FROM run_cells WHERE run_id = ? ORDER BY cell_index", [run_id], path))


def survival(run_id: str, path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    return query("SELECT * FROM run_survival WHERE run_id = ? ORDER BY cell_key, turn", [run_id], path)


def transcript(battle_id: str, path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    return query(
        """
        SELECT m.seq, m.role, m.content, v.achieved, v.confidence, v.rationale
        FROM messages m LEFT JOIN verdicts v USING (battle_id, seq)
        WHERE m.battle_id = ? ORDER BY m.seq
        """,
        [battle_id],
        path,
    )
