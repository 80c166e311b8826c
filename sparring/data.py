"""Safe live access for notebooks and scripts.

    from sparring import data
    with data.connect() as con:                      # read-only, retried if a writer holds the file
        con.sql("SELECT * FROM run_cells").df()

A connection holds the database file for as long as it is open, and while it does,
battles queue their writes (nothing is lost; they land when it closes). So prefer short
``with`` blocks, or the one-shot helpers below, which open, read and close. The helpers
read the statements the app's pages read (``sparring.store.ui_queries``), so a notebook
and the app cannot disagree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from sparring.settings import get_settings
from sparring.store import db, ui_queries


def database_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The database file: ``path``, or the one under ``SPARRING_DATA_DIR`` (default ``data/``)."""
    return Path(path) if path is not None else get_settings().db_path


def connect(path: str | os.PathLike[str] | None = None, *, wait_s: float = 30.0) -> db.Connection:
    """A read-only DuckDB connection, opened with retry; use it in a ``with`` block."""
    return db.connect_read_only(database_path(path), deadline_s=wait_s)


def query(sql: str, params: list[Any] | None = None, path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Open, run one query, close: the friendliest way to read while battles run."""
    # Names in ``sql`` are the store's tables and views, never this module's functions.
    with db.connect_read_only(database_path(path), deadline_s=30.0, python_scans=False) as con:
        frame: pd.DataFrame = con.execute(sql, params or []).df()
        return frame


def runs(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    with connect(path) as con:
        return ui_queries.runs_frame(con)


def cells(run_id: str, path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    with connect(path) as con:
        return ui_queries.cells_frame(con, run_id)


def survival(run_id: str, path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    with connect(path) as con:
        return ui_queries.survival_frame(con, run_id)


def transcript(battle_id: str, path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    with connect(path) as con:
        return ui_queries.transcript_frame(con, battle_id)
