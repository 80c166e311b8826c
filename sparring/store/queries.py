"""Read queries. SQL lives in constants; user text only ever travels as parameters."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from sparring import records as r
from sparring.stopping import CellBattle
from sparring.store.battle_table import BATTLES
from sparring.store.db import Connection

# Every column a BattleView is read from, named once in ``battle_table``.
BATTLE_FIELDS = BATTLES.select_list

GET_BATTLE = f"SELECT {BATTLE_FIELDS} FROM battles WHERE battle_id = ?"

LIST_BATTLES = f"SELECT {BATTLE_FIELDS} FROM battles ORDER BY created_at DESC, battle_id LIMIT ?"

LIST_BATTLES_BY_ID = f"SELECT {BATTLE_FIELDS} FROM battles WHERE list_contains(?, battle_id) ORDER BY created_at DESC"

LIST_RUN_BATTLES = f"SELECT {BATTLE_FIELDS} FROM battles WHERE run_id = ? ORDER BY cell_index, replicate"

GET_MESSAGES = """
SELECT battle_id, seq, role, content, model, prompt_tokens, completion_tokens, latency_ms, cost_usd, created_at,
       conversation, rolled_back, part, tool_name, tool_arguments
FROM messages WHERE battle_id = ? AND seq > ? ORDER BY seq, part = 0, part
"""

GET_VERDICTS = """
SELECT battle_id, seq, achieved, confidence, rationale, judge_model, error, created_at, prompt_version, score, refused,
       check_achieved
FROM verdicts WHERE battle_id = ? AND seq > ? ORDER BY seq
"""

LIST_AGENTS = """
SELECT name, model, system_prompt, temperature, api_base, api_key_env, kind, target FROM agents ORDER BY name
"""


def battle_from_row(row: Sequence[Any]) -> r.BattleView:
    """A row selected with ``BATTLE_FIELDS``, by column name (no positional unpack)."""
    return BATTLES.from_row(row)


def get_battle(con: Connection, battle_id: str) -> r.BattleView | None:
    row = con.execute(GET_BATTLE, [battle_id]).fetchone()
    return battle_from_row(row) if row else None


def list_battles(con: Connection, limit: int = 100) -> list[r.BattleView]:
    return [battle_from_row(row) for row in con.execute(LIST_BATTLES, [limit]).fetchall()]


def list_battles_by_id(con: Connection, battle_ids: Sequence[str]) -> list[r.BattleView]:
    if not battle_ids:
        return []
    return [battle_from_row(row) for row in con.execute(LIST_BATTLES_BY_ID, [list(battle_ids)]).fetchall()]


def list_run_battles(con: Connection, run_id: str) -> list[r.BattleView]:
    return [battle_from_row(row) for row in con.execute(LIST_RUN_BATTLES, [run_id]).fetchall()]


def get_messages(con: Connection, battle_id: str, after_seq: int = 0) -> list[r.Message]:
    """The battle's messages after ``after_seq``: each turn's tool messages (in call order),
    then the turn's own message."""
    return [r.Message(*row) for row in con.execute(GET_MESSAGES, [battle_id, after_seq]).fetchall()]


def get_verdicts(con: Connection, battle_id: str, after_seq: int = 0) -> list[r.Verdict]:
    return [r.Verdict(*row) for row in con.execute(GET_VERDICTS, [battle_id, after_seq]).fetchall()]


def get_transcript(con: Connection, battle_id: str) -> r.Transcript | None:
    battle = get_battle(con, battle_id)
    if battle is None:
        return None
    messages = get_messages(con, battle_id)
    return r.Transcript(
        battle=battle,
        messages=tuple(m for m in messages if m.part == 0),
        verdicts=tuple(get_verdicts(con, battle_id)),
        tool_messages=tuple(m for m in messages if m.part != 0),
    )


def list_agents(con: Connection) -> list[dict[str, Any]]:
    cursor = con.execute(LIST_AGENTS)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


GET_RUN = "SELECT run_id, name, runs_per_cell, config, budget_usd, status, launched_by FROM scale_runs WHERE run_id = ?"
RUN_BATTLE_STATUSES = "SELECT battle_id, status FROM battles WHERE run_id = ?"
RUN_COST = "SELECT coalesce(sum(cost_usd), 0) FROM battles WHERE run_id = ?"
CELL_BATTLES = """
SELECT battle_id, replicate, status, outcome FROM battles WHERE run_id = ? AND cell_key = ? ORDER BY replicate
"""


def get_run(con: Connection, run_id: str) -> r.RunView | None:
    rows = con.execute(GET_RUN, [run_id]).fetchall()
    if not rows:
        return None
    run_id, name, runs_per_cell, config, budget_usd, status, launched_by = rows[0]
    return r.RunView(run_id, name, runs_per_cell, json.loads(config), budget_usd, status, launched_by)


def run_battle_statuses(con: Connection, run_id: str) -> dict[str, str]:
    return {battle_id: status for battle_id, status in con.execute(RUN_BATTLE_STATUSES, [run_id]).fetchall()}


def run_cost(con: Connection, run_id: str) -> float:
    (row,) = con.execute(RUN_COST, [run_id]).fetchall()
    return float(row[0])


# Spend since a time: each model call counts for whoever launched its battle (or the battle's
# scale test); a re-judge's calls, which name only the run, count for the run's launcher.
SPENT_SQL = """
SELECT coalesce(sum(c.cost_usd) FILTER (WHERE coalesce(b.launched_by, s.launched_by) = ?), 0),
       coalesce(sum(c.cost_usd), 0)
FROM llm_calls c
LEFT JOIN battles b ON b.battle_id = c.battle_id
LEFT JOIN scale_runs s ON s.run_id = coalesce(c.run_id, b.run_id)
WHERE c.started_at >= ?
"""


def spent_since(con: Connection, identity: str, since: dt.datetime) -> tuple[float, float]:
    """Dollars spent since ``since`` by ``identity``, and by everyone."""
    row = con.execute(SPENT_SQL, [identity, since]).fetchone()
    return (float(row[0]), float(row[1])) if row else (0.0, 0.0)


def cell_battles(con: Connection, run_id: str, cell_key: str) -> list[CellBattle]:
    """One cell's battles in replicate order, as its stopping rule reads them."""
    return [CellBattle(*row) for row in con.execute(CELL_BATTLES, [run_id, cell_key]).fetchall()]
