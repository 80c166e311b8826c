"""The ``battles`` table's columns, named once: the INSERT, the SELECT list and the row-to-record
conversion all come from ``BATTLES``, so no list has to agree with another by position.

A column's ``path`` is where its value lives in the record: ``BattleCreated`` when a battle is
inserted, ``BattleView`` when it is read. The spec's columns come from the battle field
declaration (``sparring.battle_fields``); the rest are the battle's identity and lifecycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sparring import records as r
from sparring.battle_fields import BATTLE_FIELDS, build, read_path


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    path: str  # dotted, in BattleCreated (insert) and BattleView (read)
    insert: bool = True  # written when the battle is created
    read: bool = True  # read back into a BattleView


@dataclass(frozen=True)
class BattleTable:
    columns: tuple[Column, ...]
    view: type[r.BattleView] = r.BattleView

    @property
    def inserted(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.insert)

    @property
    def selected(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.read)

    @property
    def insert_sql(self) -> str:
        names = ", ".join(c.name for c in self.inserted)
        return f"INSERT INTO battles ({names}) VALUES ({', '.join('?' * len(self.inserted))})"

    @property
    def select_list(self) -> str:
        """The columns a BattleView is read from, for ``SELECT {select_list} FROM battles``."""
        return ", ".join(c.name for c in self.selected)

    def insert_params(self, record: r.BattleCreated) -> list[Any]:
        return [read_path(record, c.path) for c in self.inserted]

    def from_row(self, row: Sequence[Any]) -> r.BattleView:
        """A row selected with ``select_list`` as a BattleView."""
        return build(self.view, {c.path: value for c, value in zip(self.selected, row, strict=True)})


_IDENTITY = (
    Column("battle_id", "battle_id"),
    Column("run_id", "run_id"),
    Column("cell_key", "cell_key"),
    Column("cell_index", "cell_index", read=False),
    Column("replicate", "replicate", read=False),
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
)

SPEC_COLUMNS = tuple(Column(f.column, "spec." + f.path) for f in BATTLE_FIELDS)

BATTLES = BattleTable(_IDENTITY + SPEC_COLUMNS + _LIFECYCLE)
