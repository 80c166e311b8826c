"""Apply a batch of records to DuckDB inside one transaction.

Every write is idempotent, so a batch may be applied twice (a retried commit, a
redelivered stream entry) with the same result:

- rows with a natural key (messages and verdicts by ``(battle_id, seq)``, model calls
  by ``call_id``, battles, runs) are inserted with ``ON CONFLICT DO NOTHING``;
- counters on ``battles`` only move by what an insert actually added (``RETURNING``);
- status changes are events with an ``event_id``; a change is applied only when its
  event row is new, and never to a battle that has already finished (first finish wins;
  only a requeue re-opens a battle).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sparring import records as r
from sparring.store.battle_table import BATTLES
from sparring.store.db import Connection, ConstraintError


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:  # records carry aware times; a naive one is taken as UTC
        return value.replace(tzinfo=dt.UTC)
    return value


# A batch's columns: name and the Python type every non-null value is converted to. A
# large batch reaches DuckDB as a dict of NumPy object arrays, whose column types DuckDB
# infers from a sample of the values: converting every value to the column's one type
# first keeps that inference exact (a float column whose sample held only ints would
# otherwise be read as integers). NumPy rather than Arrow: a worker without pyarrow holds
# about 65 MB less after 50 battles at once (``python -m bench.memory``, BENCHMARKS.md).
Schema = tuple[tuple[str, Callable[[Any], Any]], ...]

MESSAGE_SCHEMA: Schema = (
    ("battle_id", str),
    ("seq", int),
    ("role", str),
    ("content", str),
    ("model", str),
    ("prompt_tokens", int),
    ("completion_tokens", int),
    ("latency_ms", float),
    ("cost_usd", float),
    ("created_at", _utc),
    ("conversation", int),
    ("rolled_back", bool),
    ("part", int),
    ("tool_name", str),
    ("tool_arguments", str),
)

VERDICT_SCHEMA: Schema = (
    ("battle_id", str),
    ("seq", int),
    ("achieved", bool),
    ("confidence", float),
    ("rationale", str),
    ("judge_model", str),
    ("error", str),
    ("created_at", _utc),
    ("prompt_version", int),
    ("score", int),
    ("refused", bool),
    ("check_achieved", bool),
)

CALL_SCHEMA: Schema = (
    ("call_id", str),
    ("battle_id", str),
    ("run_id", str),
    ("seq", int),
    ("purpose", str),
    ("model", str),
    ("provider", str),
    ("attempt", int),
    ("started_at", _utc),
    ("latency_ms", float),
    ("prompt_tokens", int),
    ("completion_tokens", int),
    ("cost_usd", float),
    ("error_type", str),
    ("error", str),
    ("http_status", int),
)

# The columns, and where each value comes from, are named once in ``battle_table``.
INSERT_BATTLE = BATTLES.insert_sql

# Bulk inserts: ``{source}`` is either registered NumPy arrays (large batches) or a
# VALUES list of placeholders (small batches, where registering arrays costs more).
# ``{conflict}`` is empty on the fast path and ``ON CONFLICT DO NOTHING`` on the safe one.
INSERT_MESSAGES = "INSERT INTO messages {source} {conflict} RETURNING battle_id, seq, role, conversation"

# Idempotent: only messages not rolled back yet change, and only those move the counters.
ROLL_BACK = """
UPDATE messages SET rolled_back = true
WHERE battle_id = ? AND list_contains(?, seq) AND NOT rolled_back
RETURNING role
"""

COUNT_ROLL_BACK = """
UPDATE battles SET rolled_back = rolled_back + ?, agent_turns = agent_turns - ?, updated_at = ?
WHERE battle_id = ?
"""

INSERT_VERDICTS = "INSERT INTO verdicts {source} {conflict} RETURNING battle_id, achieved"

INSERT_CALLS = """
INSERT INTO llm_calls {source} {conflict}
RETURNING battle_id, prompt_tokens, completion_tokens, cost_usd
"""

SMALL_BATCH = 16

# The same for one battle (the common case): a point update is three times cheaper in
# DuckDB than an update joined to a VALUES list.
BUMP_BATTLE = """
UPDATE battles SET message_count = greatest(message_count, ?),
                   agent_turns = agent_turns + ?,
                   target_queries = target_queries + ?,
                   conversations = greatest(conversations, ?),
                   prompt_tokens = prompt_tokens + ?,
                   completion_tokens = completion_tokens + ?,
                   cost_usd = cost_usd + ?,
                   model_calls = model_calls + ?,
                   verdicts = verdicts + ?,
                   error_verdicts = error_verdicts + ?,
                   updated_at = ?
WHERE battle_id = ?
"""

# One statement moves every counter of every battle touched by the batch.
BUMP_BATTLES = """
UPDATE battles SET message_count = greatest(battles.message_count, v.top_seq),
                   agent_turns = battles.agent_turns + v.agent_messages,
                   target_queries = battles.target_queries + v.agent_messages,
                   conversations = greatest(battles.conversations, v.top_conversation),
                   prompt_tokens = battles.prompt_tokens + v.prompt_tokens,
                   completion_tokens = battles.completion_tokens + v.completion_tokens,
                   cost_usd = battles.cost_usd + v.cost_usd,
                   model_calls = battles.model_calls + v.calls,
                   verdicts = battles.verdicts + v.verdicts,
                   error_verdicts = battles.error_verdicts + v.error_verdicts,
                   updated_at = v.touched
FROM (VALUES {values})
     AS v(battle_id, top_seq, agent_messages, top_conversation, prompt_tokens, completion_tokens, cost_usd, calls,
          verdicts, error_verdicts, touched)
WHERE battles.battle_id = v.battle_id
"""

INSERT_EVENTS = (
    "INSERT INTO battle_events (event_id, battle_id, occurred_at, event, detail) {source} {conflict} RETURNING event_id"
)

MARK_STARTED = """
UPDATE battles SET status = 'running', started_at = coalesce(started_at, ?),
                   attempts = attempts + 1, updated_at = ?
WHERE battle_id = ? AND status <> 'finished'
"""

MARK_FINISHED = """
UPDATE battles SET status = 'finished', outcome = ?, turns_to_goal = ?, error = ?,
                   error_kind = ?, judged_turns = coalesce(?, judged_turns), ended_at = ?, updated_at = ?
WHERE battle_id = ? AND status <> 'finished'
"""

MARK_REQUEUED = """
UPDATE battles SET status = 'queued', outcome = NULL, turns_to_goal = NULL, error = NULL,
                   error_kind = NULL, ended_at = NULL, updated_at = ?
WHERE battle_id = ? AND (? OR status <> 'finished')
"""

DISCARD_BATTLE = """
DELETE FROM battles WHERE battle_id = ? AND status = 'queued' AND message_count = 0 AND attempts = 0
"""

DISCARD_RUN = """
DELETE FROM scale_runs WHERE run_id = ? AND NOT EXISTS (SELECT 1 FROM battles WHERE run_id = ?)
"""

UPSERT_AGENT = """
INSERT INTO agents (name, model, system_prompt, temperature, api_base, api_key_env, created_at, updated_at,
                    kind, target, saved_by)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET model = excluded.model, system_prompt = excluded.system_prompt,
    temperature = excluded.temperature, api_base = excluded.api_base,
    api_key_env = excluded.api_key_env, updated_at = excluded.updated_at,
    kind = excluded.kind, target = excluded.target, saved_by = excluded.saved_by
"""

INSERT_RUN = """
INSERT INTO scale_runs (run_id, name, config, runs_per_cell, total_battles, budget_usd, status,
                        created_at, updated_at, launched_by)
VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)
"""

UPDATE_RUN_STATUS = """
UPDATE scale_runs SET status = ?, error = coalesce(?, error), updated_at = ?,
    finished_at = CASE WHEN ? THEN ? ELSE finished_at END
WHERE run_id = ?
"""

UPSERT_REPORT = """
INSERT INTO run_reports (run_id, summary, stats, model, created_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (run_id) DO UPDATE SET summary = excluded.summary, stats = excluded.stats,
    model = excluded.model, created_at = excluded.created_at
"""

INSERT_CELL_STOP = """
INSERT INTO cell_stops (run_id, cell_key, stopped, last_replicate, n, achieved, cs_low, cs_high, decision, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
"""

RUN_TERMINAL = {"finished", "cancelled", "failed", "stopped"}


def apply_records(con: Connection, batch: Sequence[r.Record]) -> None:
    """Apply ``batch`` on ``con`` (the caller owns the transaction).

    Fast path first: plain inserts, which is what a batch almost always is. A record seen
    before (a resumed battle, a redelivered stream entry) makes a plain insert violate a
    key; then the transaction is rolled back and the batch applied again with
    ``ON CONFLICT DO NOTHING`` (three times slower per statement in DuckDB, so not the
    default).
    """
    try:
        _apply(con, batch, safe=False)
    except ConstraintError:
        con.execute("ROLLBACK")
        con.execute("BEGIN TRANSACTION")
        _apply(con, batch, safe=True)


def _apply(con: Connection, batch: Sequence[r.Record], safe: bool) -> None:
    for created in batch:
        if isinstance(created, (r.BattleCreated, r.RunCreated, r.AgentSaved)):
            _apply_create(con, created, safe)
    counters = _Counters()
    _insert_messages(con, [x.message for x in batch if isinstance(x, r.MessageAdded)], safe, counters)
    _insert_verdicts(con, [x.verdict for x in batch if isinstance(x, r.VerdictAdded)], safe, counters)
    _insert_calls(con, [x.call for x in batch if isinstance(x, r.CallRecorded)], safe, counters)
    counters.apply(con)
    for rolled in batch:
        if isinstance(rolled, r.MessagesRolledBack):
            _roll_back(con, rolled)
    events = [x for x in batch if isinstance(x, (r.BattleStarted, r.BattleFinished, r.BattleRequeued))]
    fresh = _insert_events(con, events, safe)
    for record in batch:
        if isinstance(record, (r.BattleStarted, r.BattleFinished, r.BattleRequeued)):
            if record.event_id in fresh:
                _apply_event(con, record)
        elif isinstance(record, r.BattleDiscarded):
            con.execute(DISCARD_BATTLE, [record.battle_id])
        elif isinstance(record, r.RunDiscarded):
            con.execute(DISCARD_RUN, [record.run_id, record.run_id])
        elif isinstance(record, r.RunStatusChanged):
            terminal = record.status in RUN_TERMINAL
            con.execute(
                UPDATE_RUN_STATUS,
                [record.status, record.error, record.at, terminal, record.at, record.run_id],
            )
        elif isinstance(record, r.CellStopped):
            con.execute(
                INSERT_CELL_STOP,
                [
                    record.run_id,
                    record.cell_key,
                    record.stopped,
                    record.last_replicate,
                    record.n,
                    record.achieved,
                    record.cs_low,
                    record.cs_high,
                    record.decision,
                    record.created_at,
                ],
            )
        elif isinstance(record, r.ReportSaved):
            con.execute(
                UPSERT_REPORT,
                [record.run_id, record.summary, json.dumps(record.stats), record.model, record.created_at],
            )
    _apply_judging(con, batch, safe)


class _Counters:
    """What the batch added to each battle: new messages, tokens, cost, calls, verdicts.

    Only rows the batch really inserted are counted (``RETURNING``), so a batch applied
    again after a conflict counts nothing twice.
    """

    # top seq, agent messages, top conversation, prompt tokens, completion tokens, cost, calls,
    # verdicts, error verdicts
    def __init__(self) -> None:
        self.by_battle: dict[str, list[Any]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0.0, 0, 0, 0])

    def message(self, battle_id: str, seq: int, role: str, conversation: int) -> None:
        entry = self.by_battle[battle_id]
        entry[0] = max(entry[0], seq)
        entry[1] += role == "assistant"
        entry[2] = max(entry[2], conversation or 1)

    def call(self, battle_id: str | None, prompt_tokens: int, completion_tokens: int, cost: float | None) -> None:
        if battle_id is None:
            return
        entry = self.by_battle[battle_id]
        entry[3] += prompt_tokens
        entry[4] += completion_tokens
        entry[5] += cost or 0.0
        entry[6] += 1

    def verdict(self, battle_id: str, achieved: bool | None) -> None:
        entry = self.by_battle[battle_id]
        entry[7] += 1
        entry[8] += achieved is None

    def apply(self, con: Connection) -> None:
        if not self.by_battle:
            return
        now = r.utcnow()
        if len(self.by_battle) == 1:
            ((battle_id, (top_seq, agent, conversation, *rest)),) = self.by_battle.items()
            con.execute(BUMP_BATTLE, [top_seq, agent, agent, conversation, *rest, now, battle_id])
            return
        values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?::TIMESTAMPTZ)"] * len(self.by_battle))
        params: list[Any] = []
        for battle_id, entry in self.by_battle.items():
            params += [battle_id, *entry, now]
        con.execute(BUMP_BATTLES.format(values=values), params)


def _apply_create(con: Connection, record: r.BattleCreated | r.RunCreated | r.AgentSaved, safe: bool) -> None:
    if isinstance(record, r.BattleCreated):
        con.execute(INSERT_BATTLE + (" ON CONFLICT DO NOTHING" if safe else ""), BATTLES.insert_params(record))
    elif isinstance(record, r.RunCreated):
        con.execute(
            INSERT_RUN + (" ON CONFLICT DO NOTHING" if safe else ""),
            [
                record.run_id,
                record.name,
                json.dumps(record.config),
                record.runs_per_cell,
                record.total_battles,
                record.budget_usd,
                record.created_at,
                record.created_at,
                record.launched_by,
            ],
        )
    else:
        con.execute(
            UPSERT_AGENT,
            [
                record.name,
                record.model,
                record.system_prompt,
                record.temperature,
                record.api_base,
                record.api_key_env,
                record.created_at,
                record.created_at,
                record.agent_kind,
                record.agent_target,
                record.saved_by,
            ],
        )


def _dedupe(rows: list[Any], key: Any) -> list[Any]:
    seen: dict[Any, Any] = {}
    for row in rows:
        seen.setdefault(key(row), row)
    return list(seen.values())


def _bulk_insert(con: Connection, statement: str, schema: Schema, rows: list[tuple[Any, ...]], safe: bool) -> list[Any]:
    conflict = "ON CONFLICT DO NOTHING" if safe else ""
    if len(rows) <= SMALL_BATCH:
        placeholders = "(" + ", ".join("?" * len(schema)) + ")"
        values = "VALUES " + ", ".join([placeholders] * len(rows))
        sql = statement.format(source=values, conflict=conflict)
        return con.execute(sql, [v for row in rows for v in row]).fetchall()
    columns = {
        name: np.array([None if row[i] is None else convert(row[i]) for row in rows], dtype=object)
        for i, (name, convert) in enumerate(schema)
    }
    con.register("new_rows", columns)
    try:
        return con.execute(statement.format(source="SELECT * FROM new_rows", conflict=conflict)).fetchall()
    finally:
        con.unregister("new_rows")


def _insert_messages(con: Connection, messages: list[r.Message], safe: bool, counters: _Counters) -> None:
    if not messages:
        return
    messages = _dedupe(messages, lambda m: (m.battle_id, m.seq, m.part))
    rows = [
        (
            m.battle_id,
            m.seq,
            m.role,
            m.content,
            m.model,
            m.prompt_tokens,
            m.completion_tokens,
            m.latency_ms,
            m.cost_usd,
            m.created_at,
            m.conversation,
            m.rolled_back,
            m.part,
            m.tool_name,
            m.tool_arguments,
        )
        for m in messages
    ]
    for battle_id, seq, role, conversation in _bulk_insert(con, INSERT_MESSAGES, MESSAGE_SCHEMA, rows, safe):
        counters.message(battle_id, seq, role, conversation)


def _roll_back(con: Connection, record: r.MessagesRolledBack) -> None:
    roles = con.execute(ROLL_BACK, [record.battle_id, list(record.seqs)]).fetchall()
    agent = sum(1 for (role,) in roles if role == "assistant")
    if agent:
        con.execute(COUNT_ROLL_BACK, [agent, agent, r.utcnow(), record.battle_id])


def _insert_verdicts(con: Connection, verdicts: list[r.Verdict], safe: bool, counters: _Counters) -> None:
    if not verdicts:
        return
    verdicts = _dedupe(verdicts, lambda v: (v.battle_id, v.seq))
    rows = [
        (
            v.battle_id,
            v.seq,
            v.achieved,
            v.confidence,
            v.rationale,
            v.judge_model,
            v.error,
            v.created_at,
            v.prompt_version,
            v.score,
            v.refused,
            v.check_achieved,
        )
        for v in verdicts
    ]
    for battle_id, achieved in _bulk_insert(con, INSERT_VERDICTS, VERDICT_SCHEMA, rows, safe):
        counters.verdict(battle_id, achieved)


def _insert_calls(con: Connection, calls: list[r.LLMCall], safe: bool, counters: _Counters) -> None:
    if not calls:
        return
    calls = _dedupe(calls, lambda c: c.call_id)
    rows = [
        (
            c.call_id,
            c.battle_id,
            c.run_id,
            c.seq,
            c.purpose,
            c.model,
            c.provider,
            c.attempt,
            c.started_at,
            c.latency_ms,
            c.prompt_tokens,
            c.completion_tokens,
            c.cost_usd,
            c.error_type,
            c.error,
            c.http_status,
        )
        for c in calls
    ]
    for battle_id, prompt_tokens, completion_tokens, cost in _bulk_insert(con, INSERT_CALLS, CALL_SCHEMA, rows, safe):
        counters.call(battle_id, prompt_tokens, completion_tokens, cost)


EVENT_SCHEMA: Schema = (
    ("event_id", str),
    ("battle_id", str),
    ("occurred_at", _utc),
    ("event", str),
    ("detail", str),
)


def _event_row(record: r.BattleStarted | r.BattleFinished | r.BattleRequeued) -> tuple[Any, ...]:
    if isinstance(record, r.BattleStarted):
        event, detail = "started", record.worker
    elif isinstance(record, r.BattleFinished):
        event, detail = f"finished:{record.outcome}", record.error
    else:
        event, detail = "requeued", record.reason
    return (record.event_id, record.battle_id, record.at, event, detail)


def _insert_events(
    con: Connection, events: list[r.BattleStarted | r.BattleFinished | r.BattleRequeued], safe: bool
) -> set[str]:
    """Insert status events; return the ids that are new (only those change a battle)."""
    if not events:
        return set()
    events = _dedupe(events, lambda e: e.event_id)
    rows = [_event_row(e) for e in events]
    return {row[0] for row in _bulk_insert(con, INSERT_EVENTS, EVENT_SCHEMA, rows, safe)}


def _apply_event(con: Connection, record: r.BattleStarted | r.BattleFinished | r.BattleRequeued) -> None:
    if isinstance(record, r.BattleStarted):
        con.execute(MARK_STARTED, [record.at, record.at, record.battle_id])
    elif isinstance(record, r.BattleFinished):
        con.execute(
            MARK_FINISHED,
            [
                record.outcome,
                record.turns_to_goal,
                record.error,
                record.error_kind,
                record.judged_turns,
                record.at,
                record.at,
                record.battle_id,
            ],
        )
    else:
        con.execute(MARK_REQUEUED, [record.at, record.battle_id, record.reopen])


# -- judge quality: labels, judge runs and their verdicts -------------------------------------------
# Labels and judge runs are rare rows, so they always insert with ON CONFLICT DO NOTHING; a
# re-judge writes many verdicts, which take the same fast/safe path as the engine's.

INSERT_LABEL = """
INSERT INTO judge_labels (label_id, battle_id, labeller, label, note, created_at)
VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
"""

INSERT_JUDGE_RUN = """
INSERT INTO judge_runs (judge_run_id, run_id, judge_model, rubric, status, created_at, updated_at, prompt_version,
                        requested_by)
VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?) ON CONFLICT DO NOTHING
"""

# The audit trail is append-only: rows are inserted, never updated or deleted.
INSERT_AUDIT = """
INSERT INTO audit (audit_id, occurred_at, actor, role, action, target, outcome, detail)
VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
"""

INSERT_JUDGE_VERDICTS = "INSERT INTO judge_verdicts {source} {conflict} RETURNING battle_id"

UPDATE_JUDGE_RUN_STATUS = """
UPDATE judge_runs SET status = ?, error = ?, updated_at = ?,
    finished_at = CASE WHEN ? THEN ? ELSE NULL END
WHERE judge_run_id = ?
"""

JUDGE_RUN_TERMINAL = {"finished", "failed", "cancelled"}

JUDGE_VERDICT_SCHEMA: Schema = (
    ("judge_run_id", str),
    ("battle_id", str),
    ("seq", int),
    ("achieved", bool),
    ("confidence", float),
    ("rationale", str),
    ("error", str),
    ("created_at", _utc),
    ("prompt_version", int),
)


def _apply_judging(con: Connection, batch: Sequence[r.Record], safe: bool) -> None:
    for record in batch:
        if isinstance(record, r.LabelSaved):
            con.execute(
                INSERT_LABEL,
                [record.label_id, record.battle_id, record.labeller, record.label, record.note, record.created_at],
            )
        elif isinstance(record, r.Audited):
            con.execute(
                INSERT_AUDIT,
                [
                    record.audit_id,
                    record.at,
                    record.actor,
                    record.role,
                    record.action,
                    record.target,
                    record.outcome,
                    record.detail,
                ],
            )
        elif isinstance(record, r.JudgeRunCreated):
            con.execute(
                INSERT_JUDGE_RUN,
                [
                    record.judge_run_id,
                    record.run_id,
                    record.judge_model,
                    record.rubric,
                    record.created_at,
                    record.created_at,
                    record.prompt_version,
                    record.requested_by,
                ],
            )
    verdicts = _dedupe(
        [x for x in batch if isinstance(x, r.JudgeVerdictAdded)], lambda v: (v.judge_run_id, v.battle_id, v.seq)
    )
    if verdicts:
        rows = [
            (
                v.judge_run_id,
                v.battle_id,
                v.seq,
                v.achieved,
                v.confidence,
                v.rationale,
                v.error,
                v.created_at,
                v.prompt_version,
            )
            for v in verdicts
        ]
        _bulk_insert(con, INSERT_JUDGE_VERDICTS, JUDGE_VERDICT_SCHEMA, rows, safe)
    for record in batch:
        if isinstance(record, r.JudgeRunStatusChanged):
            terminal = record.status in JUDGE_RUN_TERMINAL
            con.execute(
                UPDATE_JUDGE_RUN_STATUS,
                [record.status, record.error, record.at, terminal, record.at, record.judge_run_id],
            )
