"""The ``battles`` table's columns, named once: the INSERT, the SELECT list and the row-to-record
conversion all come from ``BATTLES``, so no list has to agree with another by position.

A column's ``path`` is where its value lives in the record: ``BattleCreated`` when a battle is
inserted, ``BattleView`` when it is read. The spec's columns come from the battle field
declaration (``sparring.battle_fields``); the rest are the battle's identity and lifecycle.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sparring import records as r
from sparring.battle_fields import BATTLE_FIELDS, builder


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    path: str  # dotted, in BattleCreated (insert) and BattleView (read)
    insert: bool = True  # written when the battle is created
    read: bool = True  # read back into a BattleView
    json: bool = False  # a JSON column: written with json.dumps, read with json.loads


class BattleTable:
    """The table's columns; the SQL and the row conversion are derived from them once."""

    def __init__(self, columns: tuple[Column, ...], view: type[r.BattleView] = r.BattleView) -> None:
        self.columns = columns
        self.inserted = tuple(c for c in columns if c.insert)
        self.selected = tuple(c for c in columns if c.read)
        names = ", ".join(c.name for c in self.inserted)
        self.insert_sql = f"INSERT INTO battles ({names}) VALUES ({', '.join('?' * len(self.inserted))})"
        # For ``SELECT {select_list} FROM battles``: the columns a BattleView is read from.
        self.select_list = ", ".join(c.name for c in self.selected)
        self._to_view = builder(view, tuple(c.path for c in self.selected))
        self._getters = tuple(_getter(c) for c in self.inserted)  # dotted paths
        self._json_read = tuple(i for i, c in enumerate(self.selected) if c.json)

    def insert_params(self, record: r.BattleCreated) -> list[Any]:
        return [get(record) for get in self._getters]

    def from_row(self, row: Sequence[Any]) -> r.BattleView:
        """A row selected with ``select_list`` as a BattleView, by column (no positional unpack)."""
        if self._json_read:
            row = list(row)
            for index in self._json_read:
                row[index] = json.loads(row[index]) if row[index] else {}
        return self._to_view(row)


def _getter(column: Column) -> Any:
    get = operator.attrgetter(column.path)
    if not column.json:
        return get
    return lambda record: json.dumps(get(record), sort_keys=True)


_IDENTITY = (
    Column("battle_id", "battle_id"),
    Column("run_id", "run_id"),
    Column("cell_key", "cell_key"),
    Column("cell_index", "cell_index", read=False),
    Column("replicate", "replicate", read=False),
    Column("launched_by", "launched_by"),
)

_LIFECYCLE = (
    Column("status", "status"),
    Column("created_at", "created_at"),
    Column("updated_at", "created_at", read=False),  # a new battle was last updated when created
    Column("outcome", "outcome", insert=False),
    Column("message_count", "message_count", insert=False),
    Column("agent_turns", "agent_turns", insert=False),
    Column("turns_to_goal", "turns_to_goal", insert=False),
    Column("error", "error", insert=False),
    Column("error_kind", "error_kind", insert=False),
    Column("attempts", "attempts", insert=False),
    Column("started_at", "started_at", insert=False),
    Column("ended_at", "ended_at", insert=False),
    Column("prompt_tokens", "prompt_tokens", insert=False),
    Column("completion_tokens", "completion_tokens", insert=False),
    Column("cost_usd", "cost_usd", insert=False),
    Column("model_calls", "model_calls", insert=False),
    Column("target_queries", "target_queries", insert=False),
    Column("rolled_back", "rolled_back", insert=False),
    Column("conversations", "conversations", insert=False),
)

SPEC_COLUMNS = tuple(Column(f.column, "spec." + f.path, json=f.json) for f in BATTLE_FIELDS)

BATTLES = BattleTable(_IDENTITY + SPEC_COLUMNS + _LIFECYCLE)
