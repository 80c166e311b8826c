"""What judging reads: runs to label, the sample frame, labels, judge runs, the report's rows.

Each function takes an open connection (``Store.read`` provides one) and returns records;
``sparring.judging`` turns them into samples, reports and re-judges. The report's numbers
come from the views of migration 3 (``judge_strata``, ``run_cells_corrected``, ...), which
hold the same computation as ``sparring.judging.stats`` for notebooks; the judge against exact
success checks from ``battle_check_verdicts`` (migration 9).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sparring.store.db import Connection

FINISHED_RUN_STATUSES = ("finished", "stopped", "cancelled")

RUNS_SQL = """
SELECT r.run_id, r.name, r.status, r.created_at,
       any_value(b.judge_model) AS judge_model, any_value(b.judge_rubric) AS rubric,
       count(*) FILTER (WHERE b.outcome IN ('achieved', 'held')) AS defended,
       count(*) FILTER (WHERE b.outcome = 'achieved') AS achieved,
       r.config
FROM scale_runs r LEFT JOIN battles b ON b.run_id = r.run_id
WHERE (? IS NULL OR r.run_id = ?)
GROUP BY r.run_id, r.name, r.status, r.created_at, r.config
ORDER BY r.created_at DESC
"""

DEFENDED_SQL = """
SELECT battle_id, cell_key, cell_index, replicate, outcome = 'achieved' AS original_achieved
FROM battles
WHERE run_id = ? AND status = 'finished' AND outcome IN ('achieved', 'held')
ORDER BY cell_index, replicate, battle_id
"""

BATTLE_RUN_SQL = "SELECT run_id, status, outcome FROM battles WHERE battle_id = ?"
LATEST_LABELS_SQL = """
SELECT battle_id, labeller, label, note, created_at, revisions FROM latest_labels
WHERE run_id = ? AND (? IS NULL OR labeller = ?)
ORDER BY created_at
"""
LABEL_HISTORY_SQL = """
SELECT battle_id, labeller, label, note, created_at FROM judge_labels WHERE battle_id = ? ORDER BY created_at
"""

JUDGE_RUNS_SQL = """
SELECT j.judge_run_id, j.judge_model, j.rubric, j.status, j.error,
       count(b.battle_id) FILTER (WHERE b.achieved IS NOT NULL) AS judged,
       count(b.battle_id) AS battles
FROM judge_runs j LEFT JOIN battle_judgements b ON b.judge_id = j.judge_run_id
WHERE j.run_id = ?
GROUP BY j.judge_run_id, j.judge_model, j.rubric, j.status, j.error, j.created_at
ORDER BY j.created_at
"""
JUDGE_RUN_SQL = """
SELECT judge_run_id, run_id, judge_model, rubric, status, prompt_version FROM judge_runs WHERE judge_run_id = ?
"""

STRATA_SQL = """
SELECT judge_id, original_achieved, size, tp, fp, tn, fn FROM judge_strata WHERE run_id = ?
"""
CELLS_SQL = """
SELECT cell_key, cell_index, judge_id, n, achieved FROM run_cells_corrected WHERE run_id = ?
ORDER BY cell_index, cell_key, judge_id
"""
DISAGREEMENTS_SQL = """
SELECT j.judge_id, j.battle_id, j.cell_key, j.achieved, t.achieved
FROM battle_judgements j JOIN battle_truth t ON t.battle_id = j.battle_id
WHERE j.run_id = ? AND j.achieved IS NOT NULL AND t.achieved IS NOT NULL AND j.achieved <> t.achieved
ORDER BY j.battle_id
"""
TIES_SQL = "SELECT count(*) FROM battle_truth WHERE run_id = ? AND achieved IS NULL"
HUMAN_PAIRS_SQL = """
SELECT a.labeller, b.labeller, a.label, b.label
FROM latest_labels a JOIN latest_labels b ON a.battle_id = b.battle_id AND a.labeller < b.labeller
WHERE a.run_id = ?
ORDER BY a.labeller, b.labeller, a.battle_id
"""
VERDICT_PAIRS_SQL = """
SELECT a.judge_id, b.judge_id, a.achieved, b.achieved
FROM battle_judgements a JOIN battle_judgements b ON a.battle_id = b.battle_id AND a.judge_id < b.judge_id
WHERE a.run_id = ? AND a.achieved IS NOT NULL AND b.achieved IS NOT NULL
"""

CHECK_VERDICTS_SQL = """
SELECT battle_id, cell_key, check_achieved, judge_achieved FROM battle_check_verdicts WHERE run_id = ?
ORDER BY battle_id
"""

ORIGINAL_VERDICT_SQL = """
SELECT seq, achieved, rationale, error FROM verdicts WHERE battle_id = ? ORDER BY seq
"""
JUDGE_VERDICTS_SQL = """
SELECT j.judge_run_id, v.seq, v.achieved, v.rationale, v.error
FROM judge_verdicts v JOIN judge_runs j USING (judge_run_id)
WHERE v.battle_id = ? ORDER BY j.created_at, v.seq
"""

REJUDGE_BATTLES_SQL = """
SELECT battle_id, agent_turns FROM battles
WHERE run_id = ? AND status = 'finished' AND outcome IN ('achieved', 'held')
ORDER BY cell_index, replicate, battle_id
"""
REJUDGE_PROGRESS_SQL = """
SELECT battle_id, max(seq) AS last_seq, coalesce(bool_or(achieved), false) AS achieved
FROM judge_verdicts WHERE judge_run_id = ? GROUP BY battle_id
"""


# -- runs ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: str
    name: str
    status: str
    judge_model: str | None
    rubric: str | None
    defended: int
    achieved: int
    cell_labels: dict[str, str] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_RUN_STATUSES


def _run_info(row: Sequence[Any]) -> RunInfo:
    run_id, name, status, _created, judge_model, rubric, defended, achieved, config = row
    cells = json.loads(config).get("cells", []) if config else []
    labels = {c["key"]: c.get("label") or c["key"] for c in cells}
    return RunInfo(run_id, name, status, judge_model, rubric, int(defended), int(achieved), labels)


def runs(con: Connection, run_id: str | None = None) -> list[RunInfo]:
    """Scale tests, newest first (only ``run_id`` when given)."""
    return [_run_info(row) for row in con.execute(RUNS_SQL, [run_id, run_id]).fetchall()]


# -- the sample frame and labels ------------------------------------------------------------------


class DefendedBattle(NamedTuple):
    battle_id: str
    cell_key: str | None
    cell_index: int | None
    replicate: int | None
    original_achieved: bool


def defended_battles(con: Connection, run_id: str) -> list[DefendedBattle]:
    """The run's finished battles that ended achieved or held: what can be labelled and re-judged."""
    return [DefendedBattle(*row) for row in con.execute(DEFENDED_SQL, [run_id]).fetchall()]


class BattleState(NamedTuple):
    run_id: str | None
    status: str
    outcome: str | None


def battle_state(con: Connection, battle_id: str) -> BattleState | None:
    row = con.execute(BATTLE_RUN_SQL, [battle_id]).fetchone()
    return None if row is None else BattleState(*row)


@dataclass(frozen=True, slots=True)
class LabelRow:
    battle_id: str
    labeller: str
    label: str
    note: str | None
    created_at: Any
    revisions: int = 1


def latest_labels(con: Connection, run_id: str, labeller: str | None = None) -> list[LabelRow]:
    """Each battle's latest label per labeller, oldest first (only ``labeller``'s when given)."""
    return [LabelRow(*row) for row in con.execute(LATEST_LABELS_SQL, [run_id, labeller, labeller]).fetchall()]


def label_history(con: Connection, battle_id: str) -> list[LabelRow]:
    return [LabelRow(*row) for row in con.execute(LABEL_HISTORY_SQL, [battle_id]).fetchall()]


# -- judge runs -----------------------------------------------------------------------------------


class JudgeRunRow(NamedTuple):
    judge_run_id: str
    run_id: str
    judge_model: str
    rubric: str | None
    status: str
    prompt_version: int


def judge_run(con: Connection, judge_run_id: str) -> JudgeRunRow | None:
    row = con.execute(JUDGE_RUN_SQL, [judge_run_id]).fetchone()
    return None if row is None else JudgeRunRow(*row)


class JudgeRunSummary(NamedTuple):
    judge_run_id: str
    judge_model: str
    rubric: str | None
    status: str
    error: str | None
    judged: int
    battles: int


def judge_runs(con: Connection, run_id: str) -> list[JudgeRunSummary]:
    """The run's re-judges in the order they were requested, with how far each got."""
    return [JudgeRunSummary(*row) for row in con.execute(JUDGE_RUNS_SQL, [run_id]).fetchall()]


class RejudgeState(NamedTuple):
    battles: list[tuple[str, int]]  # (battle_id, agent_turns) of every defended battle
    progress: dict[str, tuple[int, bool]]  # battle_id -> (last judged seq, achieved so far)


def rejudge_state(con: Connection, run_id: str, judge_run_id: str) -> RejudgeState:
    battles = [(b, int(turns)) for b, turns in con.execute(REJUDGE_BATTLES_SQL, [run_id]).fetchall()]
    rows = con.execute(REJUDGE_PROGRESS_SQL, [judge_run_id]).fetchall()
    return RejudgeState(battles, {b: (int(seq), bool(hit)) for b, seq, hit in rows})


# -- the report -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportRows:
    """Everything the judge report reads, in one connection."""

    strata: list[tuple[Any, ...]]  # judge_id, original_achieved, size, tp, fp, tn, fn
    cells: list[tuple[Any, ...]]  # cell_key, cell_index, judge_id, n, achieved
    disagreements: list[tuple[Any, ...]]  # judge_id, battle_id, cell_key, judge said, labels say
    ties: int
    humans: list[tuple[Any, ...]]  # labeller, labeller, label, label
    verdicts: list[tuple[Any, ...]]  # judge_id, judge_id, achieved, achieved
    checks: list[CheckVerdict] = field(default_factory=list)  # battles decided by exact checks


class CheckVerdict(NamedTuple):
    """A battle decided by its goal's exact checks, and what its judge said of it (None: no usable verdict)."""

    battle_id: str
    cell_key: str | None
    check_achieved: bool
    judge_achieved: bool | None


def check_verdicts(con: Connection, run_id: str) -> list[CheckVerdict]:
    return [CheckVerdict(*row) for row in con.execute(CHECK_VERDICTS_SQL, [run_id]).fetchall()]


def report_rows(con: Connection, run_id: str) -> ReportRows:
    def rows(sql: str) -> list[tuple[Any, ...]]:
        return con.execute(sql, [run_id]).fetchall()

    return ReportRows(
        strata=rows(STRATA_SQL),
        cells=rows(CELLS_SQL),
        disagreements=rows(DISAGREEMENTS_SQL),
        ties=int(rows(TIES_SQL)[0][0]),
        humans=rows(HUMAN_PAIRS_SQL),
        verdicts=rows(VERDICT_PAIRS_SQL),
        checks=check_verdicts(con, run_id),
    )


class VerdictRow(NamedTuple):
    judge_id: str
    seq: int
    achieved: bool | None
    rationale: str
    error: str | None


def battle_verdict_rows(con: Connection, battle_id: str, original: str) -> list[VerdictRow]:
    """Every verdict on the battle: the original judge's (as ``original``), then each re-judge's."""
    first = [VerdictRow(original, *row) for row in con.execute(ORIGINAL_VERDICT_SQL, [battle_id]).fetchall()]
    return first + [VerdictRow(*row) for row in con.execute(JUDGE_VERDICTS_SQL, [battle_id]).fetchall()]
