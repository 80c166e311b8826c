"""What the app's pages read: one short query per screen refresh, never one per row.

The hub's live list refreshes every second while a battle runs, and the battle page
fetches only what is new since the last refresh (``seq > ?``). Each function takes an
open connection (``Store.read`` provides one and releases the file right after), so
several reads of one refresh share a single attachment.

No index is added for these reads: at 1,000 battles and 100,000 messages the list query
and an incremental transcript read each take a few milliseconds on a full scan (see
``tests/ui/test_render_speed.py``), and DuckDB's ART indexes do not serve ``ORDER BY
... LIMIT`` anyway.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sparring import formatting
from sparring import records as r
from sparring.store import Store, queries

if TYPE_CHECKING:
    # pandas and pyarrow (about half a second to import) are loaded by the reads that return
    # frames (DuckDB's ``.df()``) or write files, not on import: the hub's first page shows
    # none, and a fresh server shows it sooner without them.
    import pandas as pd
    import pyarrow as pa
from sparring.store.db import Connection

GOAL_PREVIEW_CHARS = 200

ROW_FIELDS = f"""
battle_id, status, outcome, agent_model, left(goal, {GOAL_PREVIEW_CHARS}) AS goal, message_count, max_messages,
created_at, started_at, ended_at, left(error, 300) AS error, run_id
"""

# The hub: the latest battles started by hand (scale-test battles have their own page),
# plus this session's battles wherever they fall, in one statement.
HUB_ROWS = f"""
WITH recent AS (
    SELECT battle_id FROM battles WHERE run_id IS NULL ORDER BY created_at DESC, battle_id LIMIT ?
)
SELECT {ROW_FIELDS}, battle_id IN (SELECT battle_id FROM recent) AS in_recent,
       attempts > 1 OR (status = 'queued' AND attempts > 0) AS resumed
FROM battles
WHERE battle_id IN (SELECT battle_id FROM recent) OR list_contains(?, battle_id)
ORDER BY created_at DESC, battle_id
"""

ACTIVE_STATUSES = ("queued", "running")

# Elapsed time as the pages show it, from the status events. Once a battle has started, the
# time it ran: the sum of its attempts, each from a start to the next finish or requeue (or
# to now while it runs), so that a retried battle does not count the time it sat cancelled or
# failed. While queued, the time it has waited since it was submitted or last requeued. At
# equal instants a start sorts first, so that an attempt never spans a later one's events.
# A battle that finished without any start event (written by hand) gets NULL: the page then
# counts from its creation, as before.
ELAPSED = """
WITH wanted AS (
    SELECT DISTINCT unnest($ids) AS battle_id
), chosen AS (
    SELECT battle_id, status, created_at, ended_at FROM battles JOIN wanted USING (battle_id)
), spans AS (
    SELECT battle_id, event, occurred_at,
           lead(occurred_at) OVER (PARTITION BY battle_id ORDER BY occurred_at, event <> 'started', event_id) AS next_at
    FROM battle_events JOIN wanted USING (battle_id)
)
SELECT c.battle_id,
       CASE WHEN c.status = 'queued' THEN
                date_diff('millisecond',
                          coalesce(max(s.occurred_at) FILTER (WHERE s.event = 'requeued'), c.created_at), $at)
            ELSE sum(greatest(0, date_diff('millisecond', s.occurred_at,
                                           least(coalesce(s.next_at, $at), coalesce(c.ended_at, $at)))))
                     FILTER (WHERE s.event = 'started')
       END / 1000.0 AS elapsed_s
FROM chosen c LEFT JOIN spans s USING (battle_id)
GROUP BY c.battle_id, c.status, c.created_at, c.ended_at
"""


@dataclass(frozen=True, slots=True)
class BattleRow:
    """One line of the hub's battle list: just what the line shows."""

    battle_id: str
    status: r.Status
    outcome: r.Outcome | None
    agent_model: str
    goal: str
    message_count: int
    max_messages: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    error: str | None
    run_id: str | None
    in_recent: bool
    elapsed_s: float | None = None  # see ELAPSED

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def state(self) -> str:
        """The outcome once finished, else the status: what a badge shows."""
        return self.outcome if self.status == "finished" and self.outcome else self.status


@dataclass(frozen=True, slots=True)
class HubRows:
    session: list[BattleRow]
    recent: list[BattleRow]

    @property
    def active(self) -> bool:
        return any(row.active for row in (*self.session, *self.recent))


def hub_rows(con: Connection, session_ids: Sequence[str], limit: int) -> HubRows:
    """This session's battles (in ``session_ids`` order) and the ``limit`` latest overall."""
    rows = con.execute(HUB_ROWS, [limit, list(session_ids)]).fetchall()
    # Only a battle that was started more than once (or requeued) needs its running spans
    # added up from its events; for the others the row's own times give the same figure.
    elapsed = elapsed_seconds(con, [row[0] for row in rows if row[-1]])
    make: Any = BattleRow  # a row of HUB_ROWS without its last column, then the elapsed time
    found: list[BattleRow] = [make(*row[:-1], elapsed_s=elapsed.get(row[0])) for row in rows]
    by_id = {row.battle_id: row for row in found}
    session = [by_id[battle_id] for battle_id in session_ids if battle_id in by_id]
    return HubRows(session=session, recent=[row for row in found if row.in_recent])


@dataclass(frozen=True, slots=True)
class BattleUpdate:
    """A battle's header row and what was committed for it after what the page shows."""

    battle: r.BattleView | None
    messages: list[r.Message]
    verdicts: list[r.Verdict]
    elapsed_s: float | None = None  # see ELAPSED


def battle_update(con: Connection, battle_id: str, after_seq: int = 0, after_verdict_seq: int = 0) -> BattleUpdate:
    battle = queries.get_battle(con, battle_id)
    if battle is None:
        return BattleUpdate(None, [], [])
    return BattleUpdate(
        battle=battle,
        messages=queries.get_messages(con, battle_id, after_seq),
        verdicts=queries.get_verdicts(con, battle_id, after_verdict_seq),
        elapsed_s=elapsed_seconds(con, [battle_id]).get(battle_id) if _resumed(battle) else None,
    )


def _resumed(battle: r.BattleView) -> bool:
    """Started more than once (or requeued): only then do its events give another elapsed time than its row."""
    return battle.attempts > 1 or (battle.status == "queued" and battle.attempts > 0)


def elapsed_seconds(con: Connection, battle_ids: Sequence[str], at: dt.datetime | None = None) -> dict[str, float]:
    """Each battle's elapsed time at ``at`` (now by default), as ELAPSED defines it."""
    if not battle_ids:
        return {}
    params = {"ids": list(battle_ids), "at": at or r.utcnow()}
    found = con.execute(ELAPSED, params).fetchall()
    return {battle_id: float(seconds) for battle_id, seconds in found if seconds is not None}


def agent_profiles(con: Connection) -> list[dict[str, Any]]:
    return queries.list_agents(con)


# -- scale tests -------------------------------------------------------------------------------
# The Scale tests page reads the documented views (run_summary, run_cells, run_survival,
# model_calls, battle_outcomes): the very rows the CLI and a notebook read, so the three
# can never disagree.

RUN_ACTIVE_STATUSES = ("queued", "running", "cancelling", "stopping")

RUN_FIELDS = """
run_id, name, status, runs_per_cell, total_battles, budget_usd, error, created_at, finished_at,
battles, queued, running, finished, achieved, held, undecided, failed, timed_out, cancelled, n, rate, ci_low, ci_high,
cost_usd, tokens
"""
# Who launched it (sparring.access), from the run's row: run_summary is shared by notebooks.
RUN_LAUNCHER = "(SELECT s.launched_by FROM scale_runs s WHERE s.run_id = run_summary.run_id) AS launched_by"
RUN_LIST = f"SELECT {RUN_FIELDS}, {RUN_LAUNCHER} FROM run_summary ORDER BY created_at DESC, run_id LIMIT ?"
RUN_ROW = f"SELECT {RUN_FIELDS}, {RUN_LAUNCHER} FROM run_summary WHERE run_id = ?"
RUN_CONFIG = "SELECT config FROM scale_runs WHERE run_id = ?"
RUN_SUMMARY = "SELECT * FROM run_summary WHERE run_id = ?"  # every column: what the report's stats keep
RUN_SUMMARIES = "SELECT * FROM run_summary ORDER BY created_at DESC"
RUN_CELLS = "SELECT * FROM run_cells WHERE run_id = ? ORDER BY cell_index"
RUN_SURVIVAL = "SELECT * FROM run_survival WHERE run_id = ? ORDER BY cell_key, turn"
RUN_MODEL_CALLS = "SELECT * FROM model_calls WHERE run_id = ? ORDER BY purpose, model"
RUN_ACHIEVED_TURNS = """
SELECT battle_id, cell_key, turns_to_goal FROM battle_outcomes
WHERE run_id = ? AND outcome = 'achieved' ORDER BY cell_index, replicate
"""
RUN_BATTLES = """
SELECT battle_id, cell_key, cell_index, replicate, seed, outcome, status, agent_turns, turns_to_goal,
       message_count, tokens, cost_usd, duration_s, error
FROM battle_outcomes WHERE run_id = ? ORDER BY cell_index, replicate
"""
RUN_PAIRS = """
SELECT cell_key, replicate, achieved FROM battle_outcomes WHERE run_id = ? AND defended ORDER BY replicate
"""
# Per-call latencies for the latency chart: every successful call of the run, or a fixed
# random sample of them when there are many (a chart of 50,000 points helps nobody).
RUN_CALL_COUNT = "SELECT count(*) FROM llm_calls WHERE run_id = ? AND error_type IS NULL AND latency_ms IS NOT NULL"
RUN_CALL_LATENCIES = """
SELECT model, purpose, latency_ms FROM llm_calls
WHERE run_id = ? AND error_type IS NULL AND latency_ms IS NOT NULL
"""
RUN_CALL_LATENCY_SAMPLE = RUN_CALL_LATENCIES + " USING SAMPLE reservoir(5000 ROWS) REPEATABLE (7)"
LATENCY_SAMPLE_ROWS = 5000
RUN_REPORT = "SELECT summary, model, created_at FROM run_reports WHERE run_id = ?"
RUN_STATUS = "SELECT status, finished FROM run_summary WHERE run_id = ?"
# The report writer's sample transcripts: the three quickest successes and the two longest holds.
REPORT_SAMPLE_IDS = """
(SELECT battle_id FROM battle_outcomes WHERE run_id = ? AND outcome = 'achieved'
 ORDER BY turns_to_goal, battle_id LIMIT 3)
UNION ALL
(SELECT battle_id FROM battle_outcomes WHERE run_id = ? AND outcome = 'held'
 ORDER BY agent_turns DESC, battle_id LIMIT 2)
"""
REPORT_SAMPLE_LINES = """
SELECT b.battle_id, b.cell_key, b.outcome, b.turns_to_goal, b.agent_turns, m.seq, m.role, m.content
FROM battle_outcomes b JOIN messages m USING (battle_id)
WHERE b.battle_id IN (SELECT unnest(?::VARCHAR[])) AND m.role <> 'note' AND NOT m.rolled_back AND m.part = 0
ORDER BY b.battle_id, m.seq
"""
JUDGE_CALL_COUNT = "SELECT count(*) FROM llm_calls WHERE run_id = ? AND purpose = 'judge' AND model = ?"
TRANSCRIPT_FRAME = """
SELECT m.seq, m.role, m.content, v.achieved, v.confidence, v.rationale
FROM messages m LEFT JOIN verdicts v ON v.battle_id = m.battle_id AND v.seq = m.seq AND m.part = 0
WHERE m.battle_id = ? ORDER BY m.seq, m.part = 0, m.part
"""
RUN_BATTLES_AMONG = "SELECT battle_id FROM battles WHERE run_id = ? AND list_contains(?, battle_id)"
# Both sides of a comparison: the finished battles of a run, or of one of its cells.
SIDE_OUTCOMES = """
SELECT cell_key, replicate, defended, achieved, observed_turns AS turns
FROM battle_outcomes WHERE run_id = ? AND status = 'finished'
"""


@dataclass(frozen=True, slots=True)
class RunRow:
    """One scale test as ``run_summary`` has it: status, progress counts, pooled rate, cost."""

    run_id: str
    name: str
    status: str
    runs_per_cell: int
    total_battles: int
    budget_usd: float | None
    error: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
    battles: int
    queued: int
    running: int
    finished: int
    achieved: int
    held: int
    undecided: int
    failed: int
    timed_out: int
    cancelled: int
    n: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    cost_usd: float
    tokens: int
    launched_by: str | None = None

    @property
    def active(self) -> bool:
        return self.status in RUN_ACTIVE_STATUSES

    @property
    def fraction_done(self) -> float:
        return min(1.0, self.finished / self.total_battles) if self.total_battles else 0.0


# The views' Wilson macros leave floating-point dust outside [0, 1] (-1.2e-17 at 0 of n),
# which would read "-0%": bounds are clipped here, where the app reads them.
BOUND_COLUMNS = ("ci_low", "ci_high")


def clip_bounds(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its interval bounds (``BOUND_COLUMNS``) clipped to [0, 1]."""
    for column in BOUND_COLUMNS:
        if column in frame:
            frame[column] = frame[column].clip(lower=0.0, upper=1.0)
    return frame


def _run_row(row: tuple[Any, ...]) -> RunRow:
    run = RunRow(*row)
    return dataclasses.replace(
        run, ci_low=formatting.clip_share(run.ci_low), ci_high=formatting.clip_share(run.ci_high)
    )


def run_rows(con: Connection, limit: int = 50) -> list[RunRow]:
    """The latest scale tests, newest first."""
    return [_run_row(row) for row in con.execute(RUN_LIST, [limit]).fetchall()]


def run_row(con: Connection, run_id: str) -> RunRow | None:
    found = con.execute(RUN_ROW, [run_id]).fetchall()
    return _run_row(found[0]) if found else None


def run_config(con: Connection, run_id: str) -> dict[str, Any]:
    """The launch input, base seed and cells of a run (``scale_runs.config``); empty if unknown."""
    found = con.execute(RUN_CONFIG, [run_id]).fetchall()
    config: dict[str, Any] = json.loads(found[0][0]) if found and found[0][0] else {}
    return config


@dataclass(frozen=True, slots=True)
class RunProgress:
    """What the live part of a run's page shows: the summary row and the run's models."""

    run: RunRow
    config: dict[str, Any]
    # Battles a worker has already taken whose first write has not landed (still "queued"
    # here): counted as running, not queued, so a commit pause never reads as "Running 0".
    taken: int = 0

    @property
    def running(self) -> int:
        return self.run.running + self.taken

    @property
    def queued(self) -> int:
        return max(0, self.run.queued - self.taken)


RUN_TAKEN = "SELECT count(*) FROM battles WHERE run_id = ? AND status = 'queued' AND list_contains(?, battle_id)"


def run_progress(con: Connection, run_id: str, in_hand: Sequence[str] = ()) -> RunProgress | None:
    """The run's row; ``in_hand``: the battles live workers hold now (see ``RunProgress.taken``)."""
    run = run_row(con, run_id)
    if run is None:
        return None
    taken = con.execute(RUN_TAKEN, [run_id, list(in_hand)]).fetchone() if in_hand and run.queued else None
    return RunProgress(run, run_config(con, run_id), int(taken[0]) if taken else 0)


@dataclass(frozen=True)
class RunReport:
    summary: str
    model: str
    created_at: dt.datetime


@dataclass(frozen=True)
class RunDetail:
    """Everything the page shows for a finished run, read in one go from the documented views."""

    run: RunRow
    config: dict[str, Any]
    cells: pd.DataFrame  # run_cells, plus ``label``
    survival: pd.DataFrame  # run_survival
    achieved_turns: pd.DataFrame  # battle_id, cell_key, turns_to_goal of achieved battles
    model_calls: pd.DataFrame  # model_calls
    latencies: pd.DataFrame  # model, purpose, latency_ms per successful call (maybe a sample)
    successful_calls: int  # how many successful calls there were in all
    battles: pd.DataFrame  # one row per battle of the run
    pairs: list[tuple[str, int, bool]]  # (cell_key, replicate, achieved) of defended battles
    report: RunReport | None

    @property
    def labels(self) -> dict[str, str]:
        return cell_labels(self.config)


RUN_CELLS_BY_JUDGE = """
SELECT * FROM run_cells_by_judge WHERE run_id = ?
ORDER BY cell_index, judge_id = 'original' DESC, judge_id
"""


def cells_by_judge(con: Connection, run_id: str) -> list[dict[str, Any]]:
    """Each cell's rate under each judge of the run (the original and every re-judge)."""
    return _dicts(con, RUN_CELLS_BY_JUDGE, [run_id])


# Cost forecasts (``sparring.forecast``): how long earlier battles of the same agent and goal
# lasted, and how many tokens earlier calls of the same models took at each agent turn.
FORECAST_HISTORY = """
SELECT CASE WHEN outcome = 'achieved' THEN turns_to_goal ELSE agent_turns END AS turns, outcome = 'achieved'
FROM battles
WHERE status = 'finished' AND outcome IN ('achieved', 'held')
  AND agent_model = ? AND agent_system_prompt = ? AND goal = ?
"""
FORECAST_CALL_TOKENS = """
SELECT model, purpose, (seq + 1) // 2 AS turn, avg(prompt_tokens), avg(completion_tokens), count(*)
FROM llm_calls
WHERE error_type IS NULL AND seq IS NOT NULL AND list_contains(?, model)
GROUP BY ALL
"""


def forecast_history(
    con: Connection, agents: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str, str], list[tuple[int, bool]]]:
    """(agent model, system prompt, goal) -> (agent turns, achieved) of each earlier defended battle."""
    return {
        agent: [(int(t), bool(a)) for t, a in con.execute(FORECAST_HISTORY, list(agent)).fetchall()] for agent in agents
    }


def forecast_call_tokens(
    con: Connection, models: Sequence[str]
) -> dict[tuple[str, str, int], tuple[float, float, int]]:
    """(model, purpose, agent turn) -> (mean prompt tokens, mean completion tokens, calls) of earlier calls."""
    found = con.execute(FORECAST_CALL_TOKENS, [list(models)]).fetchall()
    return {(m, p, int(t)): (float(pt), float(ct), int(n)) for m, p, t, pt, ct, n in found}


RUN_CORRECTED = """
SELECT cell_key, n, achieved, rate, ci_low, ci_high, labelled, sensitivity, specificity,
       corrected_rate, corrected_low, corrected_high, correction_note
FROM run_cells_corrected WHERE run_id = ? AND judge_id = 'original' ORDER BY cell_index
"""


def corrected_cells(con: Connection, run_id: str) -> pd.DataFrame:
    """The run's success rates as its judge gave them and corrected for the judge's error."""
    return clip_bounds(_frame(con, RUN_CORRECTED, [run_id]))


def cell_labels(config: dict[str, Any]) -> dict[str, str]:
    """cell_key -> the short label planned for it (what varies across the matrix)."""
    return {str(c["key"]): str(c.get("label") or c["key"]) for c in config.get("cells", [])}


def _frame(con: Connection, sql: str, params: list[Any]) -> pd.DataFrame:
    frame: pd.DataFrame = con.execute(sql, params).df()
    return frame


def run_detail(con: Connection, run_id: str) -> RunDetail | None:
    run = run_row(con, run_id)
    if run is None:
        return None
    config = run_config(con, run_id)
    cells = clip_bounds(_frame(con, RUN_CELLS, [run_id]))
    labels = cell_labels(config)
    cells.insert(0, "label", [labels.get(key, key) for key in cells["cell_key"]])
    (call_count,) = con.execute(RUN_CALL_COUNT, [run_id]).fetchone() or (0,)
    sampled = RUN_CALL_LATENCY_SAMPLE if call_count > LATENCY_SAMPLE_ROWS else RUN_CALL_LATENCIES
    report = con.execute(RUN_REPORT, [run_id]).fetchall()
    return RunDetail(
        run=run,
        config=config,
        cells=cells,
        survival=_frame(con, RUN_SURVIVAL, [run_id]),
        achieved_turns=_frame(con, RUN_ACHIEVED_TURNS, [run_id]),
        model_calls=_frame(con, RUN_MODEL_CALLS, [run_id]),
        latencies=_frame(con, sampled, [run_id]),
        successful_calls=int(call_count),
        battles=_frame(con, RUN_BATTLES, [run_id]),
        pairs=[(str(c), int(i), bool(a)) for c, i, a in con.execute(RUN_PAIRS, [run_id]).fetchall()],
        report=RunReport(*report[0]) if report else None,
    )


def _dicts(con: Connection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@dataclass(frozen=True)
class RunFacts:
    """A run as the report writer and the CLI compute from it: the documented views' rows, as dicts."""

    run: dict[str, Any]  # run_summary, every column
    config: dict[str, Any]  # scale_runs.config
    cells: list[dict[str, Any]]  # run_cells
    survival: list[dict[str, Any]]  # run_survival, without run_id
    calls: list[dict[str, Any]]  # model_calls
    pairs: list[tuple[str, int, bool]]  # as RunDetail.pairs


def run_facts(con: Connection, run_id: str) -> RunFacts | None:
    runs = _dicts(con, RUN_SUMMARY, [run_id])
    if not runs:
        return None
    survival = _dicts(con, RUN_SURVIVAL, [run_id])
    for step in survival:
        del step["run_id"]
    return RunFacts(
        run=runs[0],
        config=run_config(con, run_id),
        cells=_dicts(con, RUN_CELLS, [run_id]),
        survival=survival,
        calls=_dicts(con, RUN_MODEL_CALLS, [run_id]),
        pairs=con.execute(RUN_PAIRS, [run_id]).fetchall(),
    )


@dataclass(frozen=True, slots=True)
class SampleLine:
    """One message of a battle the report writer quotes."""

    battle_id: str
    cell_key: str
    outcome: str
    turns_to_goal: int | None
    agent_turns: int
    seq: int
    role: str
    content: str


def report_samples(con: Connection, run_id: str) -> list[SampleLine]:
    """The messages of the battles the report quotes, by battle then turn."""
    ids = [row[0] for row in con.execute(REPORT_SAMPLE_IDS, [run_id, run_id]).fetchall()]
    return [SampleLine(*row) for row in con.execute(REPORT_SAMPLE_LINES, [ids]).fetchall()] if ids else []


def run_status(con: Connection, run_id: str) -> tuple[str, int] | None:
    """(status, finished battles) of a run, or None if it is not recorded yet."""
    found = con.execute(RUN_STATUS, [run_id]).fetchone()
    return (str(found[0]), int(found[1])) if found else None


def report_summary(con: Connection, run_id: str) -> str | None:
    found = con.execute(RUN_REPORT, [run_id]).fetchone()
    return str(found[0]) if found else None


def judge_call_count(con: Connection, run_id: str, model: str) -> int:
    """How many judge calls ``model`` made for a run (what a re-judge spent)."""
    found = con.execute(JUDGE_CALL_COUNT, [run_id, model]).fetchone()
    return int(found[0]) if found else 0


# The notebook helpers' frames (``sparring.data``): the same statements the pages read.
def runs_frame(con: Connection) -> pd.DataFrame:
    return clip_bounds(_frame(con, RUN_SUMMARIES, []))


def cells_frame(con: Connection, run_id: str) -> pd.DataFrame:
    return clip_bounds(_frame(con, RUN_CELLS, [run_id]))


def survival_frame(con: Connection, run_id: str) -> pd.DataFrame:
    return _frame(con, RUN_SURVIVAL, [run_id])


def transcript_frame(con: Connection, battle_id: str) -> pd.DataFrame:
    return _frame(con, TRANSCRIPT_FRAME, [battle_id])


def run_battles_among(con: Connection, run_id: str, battle_ids: Sequence[str]) -> set[str]:
    """Which of ``battle_ids`` belong to the run (a report may only link to its own battles)."""
    if not battle_ids:
        return set()
    return {row[0] for row in con.execute(RUN_BATTLES_AMONG, [run_id, list(battle_ids)]).fetchall()}


@dataclass(frozen=True)
class RunOutcomes:
    """A run's finished battles for a comparison: rates, pairs and survival come from these."""

    run: RunRow
    config: dict[str, Any]
    cells: pd.DataFrame  # run_cells, plus ``label``
    survival: pd.DataFrame  # run_survival
    battles: pd.DataFrame  # cell_key, replicate, defended, achieved, turns


def run_outcomes(con: Connection, run_id: str) -> RunOutcomes | None:
    run = run_row(con, run_id)
    if run is None:
        return None
    config = run_config(con, run_id)
    cells = clip_bounds(_frame(con, RUN_CELLS, [run_id]))
    labels = cell_labels(config)
    cells.insert(0, "label", [labels.get(key, key) for key in cells["cell_key"]])
    return RunOutcomes(
        run=run,
        config=config,
        cells=cells,
        survival=_frame(con, RUN_SURVIVAL, [run_id]),
        battles=_frame(con, SIDE_OUTCOMES, [run_id]),
    )


EXPORT_PARTS = ("battles", "messages")
EXPORT_FORMATS = ("csv", "parquet")


def export_run_part(store: Store, run_id: str, part: str, fmt: str) -> bytes:
    """One part of a run (``battles`` or ``messages``) as CSV or Parquet bytes, built in memory."""
    if part not in EXPORT_PARTS or fmt not in EXPORT_FORMATS:
        raise ValueError(f"cannot export {part!r} as {fmt!r}")
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    from sparring.store import export

    sql = export.RUN_QUERIES[part]
    table: pa.Table = store.read(lambda con: con.sql(sql, params=[run_id]).to_arrow_table())
    sink = pa.BufferOutputStream()
    if fmt == "parquet":
        pq.write_table(table, sink)
    else:
        pa_csv.write_csv(table, sink)
    return bytes(sink.getvalue().to_pybytes())


# -- the Data page -----------------------------------------------------------------------------
# Browsing builds its statement from the names of the database's own tables and columns,
# read from information_schema and checked against it; every value a user picks travels
# as a parameter.

SCHEMA_OBJECTS = """
SELECT t.table_name, t.table_type, list(c.column_name ORDER BY c.ordinal_position) AS columns
FROM information_schema.tables t
JOIN information_schema.columns c
  ON c.table_catalog = t.table_catalog AND c.table_schema = t.table_schema AND c.table_name = t.table_name
WHERE t.table_catalog = current_database() AND t.table_schema = 'main'
GROUP BY ALL ORDER BY t.table_name
"""

# The column each filter applies to, first match wins.
MODEL_COLUMNS = ("model", "agent_model", "judge_model")
DATE_COLUMNS = ("created_at", "started_at", "occurred_at", "applied_at", "finished_at")
OUTCOMES = ("achieved", "held", "undecided", "failed", "timed_out", "cancelled")
NO_RUN = ""  # the run filter's value for "battles launched alone"


@dataclass(frozen=True, slots=True)
class SchemaObject:
    name: str
    kind: str  # "table" or "view"
    columns: tuple[str, ...]

    def first(self, candidates: Sequence[str]) -> str | None:
        return next((c for c in candidates if c in self.columns), None)

    @property
    def model_column(self) -> str | None:
        return self.first(MODEL_COLUMNS)

    @property
    def date_column(self) -> str | None:
        return self.first(DATE_COLUMNS)


def schema_objects(con: Connection) -> dict[str, SchemaObject]:
    """The database's tables and views by name."""
    return {
        name: SchemaObject(name, "view" if kind == "VIEW" else "table", tuple(columns))
        for name, kind, columns in con.execute(SCHEMA_OBJECTS).fetchall()
    }


@dataclass(frozen=True)
class BrowseFilters:
    run_id: str | None = None  # None: any run; NO_RUN: only rows outside scale tests
    model: str | None = None
    outcome: str | None = None
    since: dt.date | None = None  # inclusive, UTC dates
    until: dt.date | None = None  # inclusive


@dataclass(frozen=True)
class Browse:
    rows: pd.DataFrame
    total: int  # rows matching the filters, of which ``rows`` is the first ``limit``


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _where(obj: SchemaObject, filters: BrowseFilters) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if filters.run_id is not None and "run_id" in obj.columns:
        if filters.run_id == NO_RUN:
            clauses.append("run_id IS NULL")
        else:
            clauses.append("run_id = ?")
            params.append(filters.run_id)
    if filters.model and obj.model_column:
        clauses.append(f"{_ident(obj.model_column)} = ?")
        params.append(filters.model)
    if filters.outcome and "outcome" in obj.columns:
        clauses.append("outcome = ?")
        params.append(filters.outcome)
    if obj.date_column and (filters.since or filters.until):
        day = f"CAST(timezone('UTC', {_ident(obj.date_column)}) AS DATE)"
        if filters.since:
            clauses.append(f"{day} >= ?")
            params.append(filters.since)
        if filters.until:
            clauses.append(f"{day} <= ?")
            params.append(filters.until)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def browse(con: Connection, name: str, filters: BrowseFilters, limit: int = 500) -> Browse:
    """The first ``limit`` rows of a table or view that match ``filters`` (newest first), and their count."""
    obj = schema_objects(con).get(name)
    if obj is None:
        raise LookupError(f"no table or view named {name!r}")
    where, params = _where(obj, filters)
    order = f" ORDER BY {_ident(obj.date_column)} DESC NULLS LAST" if obj.date_column else ""
    source = _ident(obj.name)
    (total,) = con.execute(f"SELECT count(*) FROM {source}{where}", params).fetchone() or (0,)
    rows = _frame(con, f"SELECT * FROM {source}{where}{order} LIMIT {int(limit)}", params)
    return Browse(rows, int(total))


def distinct_values(con: Connection, name: str, column: str, limit: int = 200) -> list[str]:
    """The values a filter can take in one column of a table or view."""
    obj = schema_objects(con).get(name)
    if obj is None or column not in obj.columns:
        return []
    col = _ident(column)
    sql = f"SELECT DISTINCT {col} FROM {_ident(obj.name)} WHERE {col} IS NOT NULL ORDER BY 1 LIMIT {int(limit)}"
    return [str(row[0]) for row in con.execute(sql).fetchall()]
