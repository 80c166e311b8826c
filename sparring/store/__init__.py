"""The DuckDB store: schema, group-commit writes and short, retrying reads.

``Store`` is both the engine's ``RecordSink`` (where records go) and its
``BattleSource`` (where a resumed battle reads what is already committed). A remote
worker can swap the sink for a Redis Stream without the engine noticing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Protocol, TypeVar

from sparring import records as r
from sparring.stopping import CellBattle
from sparring.store import db, queries, schema
from sparring.store.db import StoreBusy, StoreMissing
from sparring.store.recorder import GroupCommitter, committer_for

__all__ = ["BattleSource", "ReadQuery", "RecordSink", "Store", "StoreBusy", "StoreMissing", "open_store"]

T = TypeVar("T")

# A read the store runs for its caller (``Store.read``): callers name it without naming DuckDB.
ReadQuery = Callable[[db.Connection], T]


class RecordSink(Protocol):
    def write(self, records: Sequence[r.Record]) -> None:
        """Make ``records`` durable; return only once they are."""


class BattleSource(Protocol):
    """Where workers read battle and run state (the file, or the live mirror)."""

    def load_transcript(self, battle_id: str) -> r.Transcript | None:
        """The battle and everything committed for it so far, or None if unknown."""

    def get_battle(self, battle_id: str) -> r.BattleView | None: ...

    def get_run(self, run_id: str) -> r.RunView | None: ...

    def run_battle_statuses(self, run_id: str) -> dict[str, str]: ...

    def run_cost(self, run_id: str) -> float: ...

    def cell_battles(self, run_id: str, cell_key: str) -> list[CellBattle]:
        """One cell's battles (id, replicate, status, outcome) in replicate order."""


class Store:
    """One DuckDB file. Holds no connection between operations."""

    def __init__(self, path: Path, *, linger_s: float = 0.002, read_deadline_s: float = 30.0) -> None:
        self.path = Path(path)
        self.linger_s = linger_s
        self.read_deadline_s = read_deadline_s

    @functools.cached_property
    def committer(self) -> GroupCommitter:
        return committer_for(self.path, self.linger_s)

    def migrate(self) -> int:
        return schema.migrate(self.path)

    # -- writing ------------------------------------------------------------------------
    def write(self, records: Sequence[r.Record]) -> None:
        self.committer.write(records)

    def submit(self, records: Sequence[r.Record]) -> Future[None]:
        """Hand ``records`` over without waiting; they commit in the order submitted."""
        return self.committer.submit(records)

    # -- reading ------------------------------------------------------------------------
    @contextlib.contextmanager
    def reading(self, deadline_s: float | None = None) -> Iterator[db.Connection]:
        with db.reading(self.path, self.read_deadline_s if deadline_s is None else deadline_s) as con:
            yield con

    def with_read_deadline(self, deadline_s: float) -> Store:
        """This store's file, its reads given up after ``deadline_s`` (a page waits less than a worker)."""
        return Store(self.path, linger_s=self.linger_s, read_deadline_s=deadline_s)

    def read(self, query: ReadQuery[T], deadline_s: float | None = None) -> T:
        """Run ``query`` on a short read-only connection."""
        with self.reading(deadline_s) as con:
            return query(con)

    def get_battle(self, battle_id: str) -> r.BattleView | None:
        return self.read(lambda con: queries.get_battle(con, battle_id))

    def load_transcript(self, battle_id: str) -> r.Transcript | None:
        return self.read(lambda con: queries.get_transcript(con, battle_id))

    def list_battles(self, limit: int = 100) -> list[r.BattleView]:
        return self.read(lambda con: queries.list_battles(con, limit))

    def list_battles_by_id(self, battle_ids: Sequence[str]) -> list[r.BattleView]:
        return self.read(lambda con: queries.list_battles_by_id(con, battle_ids))

    def get_messages(self, battle_id: str, after_seq: int = 0) -> list[r.Message]:
        return self.read(lambda con: queries.get_messages(con, battle_id, after_seq))

    def list_agents(self) -> list[dict[str, object]]:
        return self.read(queries.list_agents)

    def get_run(self, run_id: str) -> r.RunView | None:
        return self.read(lambda con: queries.get_run(con, run_id))

    def run_battle_statuses(self, run_id: str) -> dict[str, str]:
        return self.read(lambda con: queries.run_battle_statuses(con, run_id))

    def run_cost(self, run_id: str) -> float:
        return self.read(lambda con: queries.run_cost(con, run_id))

    def spent_since(self, identity: str, since: dt.datetime) -> tuple[float, float]:
        """Dollars spent since ``since`` by ``identity`` (what they launched), and by everyone."""
        return self.read(lambda con: queries.spent_since(con, identity, since))

    def cell_battles(self, run_id: str, cell_key: str) -> list[CellBattle]:
        return self.read(lambda con: queries.cell_battles(con, run_id, cell_key))


_stores: dict[Path, Store] = {}


def open_store(path: Path, *, migrate: bool = True) -> Store:
    """The store of ``path``, migrated once per process."""
    key = Path(path).resolve()
    store = _stores.get(key)
    if store is None:
        store = Store(path)
        if migrate:
            store.migrate()
        _stores[key] = store
    return store
