"""Read queries. SQL lives in constants; user text only ever travels as parameters."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sparring import records as r
from sparring.store.db import Connection

BATTLE_FIELDS = """
battle_id, run_id, cell_key, agent_profile, agent_model, agent_system_prompt, agent_temperature,
agent_api_base, agent_api_key_env, adversary_model, adversary_strategy, adversary_persona, goal,
judge_model, judge_rubric, max_messages, time_limit_s, seed, status, outcome, message_count,
agent_turns, turns_to_goal, error, error_kind, attempts, created_at, started_at, ended_at,
prompt_tokens, completion_tokens, cost_usd, model_calls
"""

GET_BATTLE = f"SELECT {BATTLE_FIELDS} FROM battles WHERE battle_id = ?"

LIST_BATTLES = f"SELECT {BATTLE_FIELDS} FROM battles ORDER BY created_at DESC, battle_id LIMIT ?"

LIST_BATTLES_BY_ID = f"SELECT {BATTLE_FIELDS} FROM battles WHERE list_contains(?, battle_id) ORDER BY created_at DESC"

LIST_RUN_BATTLES = f"SELECT {BATTLE_FIELDS} FROM battles WHERE run_id = ? ORDER BY cell_index, replicate"

GET_MESSAGES = """
SELECT battle_id, seq, role, content, model, prompt_tokens, completion_tokens, latency_ms, cost_usd, created_at
FROM messages WHERE battle_id = ? AND seq > ? ORDER BY seq
"""

GET_VERDICTS = """
SELECT battle_id, seq, achieved, confidence, rationale, judge_model, error, created_at, prompt_version
FROM verdicts WHERE battle_id = ? AND seq > ? ORDER BY seq
"""

LIST_AGENTS = """
SELECT name, model, system_prompt, temperature, api_base, api_key_env FROM agents ORDER BY name
"""


def battle_from_row(row: Sequence[Any]) -> r.BattleView:
    (
        battle_id,
        run_id,
        cell_key,
        agent_profile,
        agent_model,
        agent_system_prompt,
        agent_temperature,
        agent_api_base,
        agent_api_key_env,
        adversary_model,
        adversary_strategy,
        adversary_persona,
        goal,
        judge_model,
        judge_rubric,
        max_messages,
        time_limit_s,
        seed,
        status,
        outcome,
        message_count,
        agent_turns,
        turns_to_goal,
        error,
        error_kind,
        attempts,
        created_at,
        started_at,
        ended_at,
        prompt_tokens,
        completion_tokens,
        cost_usd,
        model_calls,
    ) = row
    spec = r.BattleSpec(
        agent=r.AgentSpec(
            model=agent_model,
            system_prompt=agent_system_prompt,
            temperature=agent_temperature,
            profile=agent_profile,
            api_base=agent_api_base,
            api_key_env=agent_api_key_env,
        ),
        adversary=r.AdversarySpec(
            model=adversary_model, goal=goal, strategy=adversary_strategy, persona=adversary_persona
        ),
        judge=r.JudgeSpec(model=judge_model, rubric=judge_rubric),
        max_messages=max_messages,
        time_limit_s=time_limit_s,
        seed=seed,
    )
    return r.BattleView(
        battle_id=battle_id,
        spec=spec,
        status=status,
        outcome=outcome,
        message_count=message_count,
        agent_turns=agent_turns,
        turns_to_goal=turns_to_goal,
        error=error,
        error_kind=error_kind,
        attempts=attempts,
        created_at=created_at,
        started_at=started_at,
        ended_at=ended_at,
        run_id=run_id,
        cell_key=cell_key,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=cost_usd,
        model_calls=model_calls,
    )


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
    return [r.Message(*row) for row in con.execute(GET_MESSAGES, [battle_id, after_seq]).fetchall()]


def get_verdicts(con: Connection, battle_id: str, after_seq: int = 0) -> list[r.Verdict]:
    return [r.Verdict(*row) for row in con.execute(GET_VERDICTS, [battle_id, after_seq]).fetchall()]


def get_transcript(con: Connection, battle_id: str) -> r.Transcript | None:
    battle = get_battle(con, battle_id)
    if battle is None:
        return None
    return r.Transcript(
        battle=battle,
        messages=tuple(get_messages(con, battle_id)),
        verdicts=tuple(get_verdicts(con, battle_id)),
    )


def list_agents(con: Connection) -> list[dict[str, Any]]:
    cursor = con.execute(LIST_AGENTS)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


GET_RUN = "SELECT run_id, name, runs_per_cell, config, budget_usd, status FROM scale_runs WHERE run_id = ?"
RUN_BATTLE_STATUSES = "SELECT battle_id, status FROM battles WHERE run_id = ?"
RUN_COST = "SELECT coalesce(sum(cost_usd), 0) FROM battles WHERE run_id = ?"


def get_run(con: Connection, run_id: str) -> r.RunView | None:
    rows = con.execute(GET_RUN, [run_id]).fetchall()
    if not rows:
        return None
    run_id, name, runs_per_cell, config, budget_usd, status = rows[0]
    return r.RunView(run_id, name, runs_per_cell, json.loads(config), budget_usd, status)


def run_battle_statuses(con: Connection, run_id: str) -> dict[str, str]:
    return {battle_id: status for battle_id, status in con.execute(RUN_BATTLE_STATUSES, [run_id]).fetchall()}


def run_cost(con: Connection, run_id: str) -> float:
    (row,) = con.execute(RUN_COST, [run_id]).fetchall()
    return float(row[0])
