"""Judge quality: label a finished run, measure its judges, correct their rates, re-judge it.

Every success rate rests on the judge. This module lets people check it:

- **Sampling.** ``sample_battles`` draws, per verdict of the run's original judge, a seeded
  sample (default 20 "achieved" and 20 "not achieved"), so a rare verdict still gets
  labels. The order is fixed by the seed and the battle's place in the run, so growing the
  sample keeps the battles already drawn, and the two verdicts are interleaved so that the
  order does not give the verdict away.
- **Labels.** ``save_label`` records one person's verdict (achieved / not achieved / unsure
  and a note). Labels are never overwritten: the latest per labeller counts, and a
  battle's truth is the majority of its labellers' definite labels (views
  ``latest_labels`` and ``battle_truth``).
- **Agreement and corrected rates.** ``judge_report`` compares every judge of the run (the
  original one and each re-judge) with the labels, weighting the verdict-stratified sample
  back to the run (``sparring.judge_stats``), and corrects each cell's success rate for the
  judge's measured error (Rogan–Gladen, delta-method interval). The views
  ``judge_agreement`` and ``run_cells_corrected`` hold the same numbers for notebooks.
- **Re-judging.** ``rejudge`` replays another judge model or rubric over the stored
  transcripts, after each agent message as the engine does, stopping at the first
  "achieved". Only judge calls are made; messages and the original verdicts stay as they
  are; the new verdicts go to ``judge_verdicts``.

No Streamlit, no Huey: the pages, the CLI and ``jobs.judging`` call these functions.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sparring import judge as judge_prompt
from sparring import judge_stats, stats
from sparring import records as r
from sparring.gateway import Gateway, ModelCallError, ModelRequest, Stopped
from sparring.modelref import missing_key, parse_model
from sparring.store import RecordSink, Store
from sparring.store.apply import JUDGE_RUN_TERMINAL
from sparring.store.db import Connection
from sparring.validation import InvalidInput, ModelName, Rubric, Text, Text2000, field_errors

log = logging.getLogger(__name__)

ORIGINAL = "original"
DEFAULT_PER_VERDICT = 20
MAX_PER_VERDICT = 1000
FINISHED_RUN_STATUSES = ("finished", "stopped", "cancelled")
REJUDGE_THREADS = 4
STRATUM_NAMES = {True: "called achieved", False: "called not achieved"}
MIN_KAPPA_ITEMS = 5  # below this a kappa interval is noise


class UnknownRunError(LookupError):
    pass


class RunNotFinishedError(ValueError):
    pass


# --- input -----------------------------------------------------------------------------------


class LabelInput(BaseModel):
    """One label as a person gives it (page or script)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    battle_id: Annotated[Text, Field(min_length=1, max_length=64)]
    labeller: Annotated[Text, Field(min_length=1, max_length=100)]
    label: Literal["achieved", "not_achieved", "unsure"]
    note: Text2000 = None


class RejudgeInput(BaseModel):
    """A request to judge a finished run again with another judge model or rubric."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: Annotated[Text, Field(min_length=1, max_length=64)]
    judge_model: ModelName
    rubric: Rubric = None

    @model_validator(mode="after")
    def _key_present(self) -> RejudgeInput:
        message = missing_key(parse_model(self.judge_model))
        if message:
            raise ValueError(f"judge_model: {message}")
        return self


class SampleInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    per_verdict: Annotated[int, Field(ge=1, le=MAX_PER_VERDICT)] = DEFAULT_PER_VERDICT
    seed: Annotated[int, Field(ge=0, le=2**62)] = 0


def _validated(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidInput(field_errors(error)) from None


# --- runs ------------------------------------------------------------------------------------

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


def list_runs(store: Store, *, finished_only: bool = True) -> list[RunInfo]:
    """Scale tests, newest first; by default only finished ones with defended battles."""
    rows = store.read(lambda con: con.execute(RUNS_SQL, [None, None]).fetchall())
    runs = [_run_info(row) for row in rows]
    return [run for run in runs if run.finished and run.defended] if finished_only else runs


def get_run(store: Store, run_id: str) -> RunInfo:
    rows = store.read(lambda con: con.execute(RUNS_SQL, [run_id, run_id]).fetchall())
    if not rows:
        raise UnknownRunError(f"unknown run id {run_id!r}")
    return _run_info(rows[0])


def finished_run(store: Store, run_id: str) -> RunInfo:
    """The run, if it has finished (a run still running would change under the labels)."""
    run = get_run(store, run_id)
    if not run.finished:
        raise RunNotFinishedError(f"run {run_id} is {run.status}; wait until it has finished")
    return run


# --- sampling --------------------------------------------------------------------------------

DEFENDED_SQL = """
SELECT battle_id, cell_key, cell_index, replicate, outcome = 'achieved' AS original_achieved
FROM battles
WHERE run_id = ? AND status = 'finished' AND outcome IN ('achieved', 'held')
ORDER BY cell_index, replicate, battle_id
"""


@dataclass(frozen=True, slots=True)
class SampledBattle:
    battle_id: str
    cell_key: str | None
    original_achieved: bool  # the stratum: what the run's original judge said


def _draw_key(seed: int, purpose: str, cell_index: Any, replicate: Any, battle_id: str) -> bytes:
    # The battle's place in the run, not its id, so that a rerun of the same configuration
    # draws the same sample.
    place = f"{cell_index}:{replicate}" if cell_index is not None and replicate is not None else battle_id
    return hashlib.blake2b(f"{purpose}:{seed}:{place}".encode(), digest_size=8).digest()


def sample_battles(
    store: Store, run_id: str, per_verdict: int = DEFAULT_PER_VERDICT, seed: int = 0
) -> list[SampledBattle]:
    """Up to ``per_verdict`` battles of each original verdict, in a seeded, interleaved order."""
    checked: SampleInput = _validated(SampleInput, {"per_verdict": per_verdict, "seed": seed})
    rows = store.read(lambda con: con.execute(DEFENDED_SQL, [run_id]).fetchall())
    chosen: list[tuple[bytes, SampledBattle]] = []
    for verdict in (True, False):
        stratum = [row for row in rows if bool(row[4]) is verdict]
        stratum.sort(key=lambda row: _draw_key(checked.seed, "draw", row[2], row[3], row[0]))
        for battle_id, cell_key, cell_index, replicate, _ in stratum[: checked.per_verdict]:
            order = _draw_key(checked.seed, "order", cell_index, replicate, battle_id)
            chosen.append((order, SampledBattle(battle_id, cell_key, verdict)))
    return [battle for _, battle in sorted(chosen, key=lambda item: item[0])]


# --- labels ----------------------------------------------------------------------------------

BATTLE_RUN_SQL = "SELECT run_id, status, outcome FROM battles WHERE battle_id = ?"
LATEST_LABELS_SQL = """
SELECT battle_id, labeller, label, note, created_at, revisions FROM latest_labels
WHERE run_id = ? AND (? IS NULL OR labeller = ?)
ORDER BY created_at
"""
LABEL_HISTORY_SQL = """
SELECT battle_id, labeller, label, note, created_at FROM judge_labels WHERE battle_id = ? ORDER BY created_at
"""


@dataclass(frozen=True, slots=True)
class LabelRow:
    battle_id: str
    labeller: str
    label: str
    note: str | None
    created_at: Any
    revisions: int = 1


def save_label(data: dict[str, Any], *, store: Store, sink: RecordSink) -> r.LabelSaved:
    """Validate and record one label; a later label by the same person supersedes it."""
    label: LabelInput = _validated(LabelInput, data)
    row = store.read(lambda con: con.execute(BATTLE_RUN_SQL, [label.battle_id]).fetchone())
    if row is None:
        raise InvalidInput({"battle_id": f"no battle with id {label.battle_id}"})
    if row[1] != "finished":
        raise InvalidInput({"battle_id": "this battle has not finished yet; label it once it has"})
    record = r.LabelSaved(label.battle_id, label.labeller, label.label, label.note)
    sink.write([record])
    return record


def latest_labels(store: Store, run_id: str, labeller: str | None = None) -> dict[str, list[LabelRow]]:
    """Each battle's latest label per labeller (only ``labeller``'s when given)."""
    rows = store.read(lambda con: con.execute(LATEST_LABELS_SQL, [run_id, labeller, labeller]).fetchall())
    result: dict[str, list[LabelRow]] = defaultdict(list)
    for row in rows:
        result[row[0]].append(LabelRow(*row))
    return dict(result)


def label_history(store: Store, battle_id: str) -> list[LabelRow]:
    rows = store.read(lambda con: con.execute(LABEL_HISTORY_SQL, [battle_id]).fetchall())
    return [LabelRow(*row) for row in rows]


# --- judges of a run -------------------------------------------------------------------------

JUDGE_RUNS_SQL = """
SELECT j.judge_run_id, j.judge_model, j.rubric, j.status, j.error, j.created_at,
       count(b.battle_id) FILTER (WHERE b.achieved IS NOT NULL) AS judged,
       count(b.battle_id) AS battles
FROM judge_runs j LEFT JOIN battle_judgements b ON b.judge_id = j.judge_run_id
WHERE j.run_id = ?
GROUP BY ALL
ORDER BY j.created_at
"""
JUDGE_RUN_SQL = "SELECT judge_run_id, run_id, judge_model, rubric, status FROM judge_runs WHERE judge_run_id = ?"
JUDGE_RUN_ENDED = JUDGE_RUN_TERMINAL  # the statuses after which nothing more happens
CANCELLED_NOTE = "Cancelled. What was judged is kept: re-judge with the same judge model and rubric to finish."


def judge_run_status(store: Store, judge_run_id: str) -> str | None:
    """A judge run's status, or None for an unknown id."""
    row = store.read(lambda con: con.execute(JUDGE_RUN_SQL, [judge_run_id]).fetchone())
    return None if row is None else str(row[4])


@dataclass(frozen=True, slots=True)
class JudgeInfo:
    judge_id: str  # "original", or the judge run's id
    judge_model: str
    rubric: str | None
    status: str = "finished"
    error: str | None = None
    judged: int = 0
    battles: int = 0

    @property
    def name(self) -> str:
        who = "original judge" if self.judge_id == ORIGINAL else f"re-judge {self.judge_id[:8]}"
        rubric = "" if self.rubric is None else f", custom rubric “{_shorten(self.rubric, 40)}”"
        return f"{who} ({self.judge_model}{rubric})"


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def list_judges(store: Store, run_id: str) -> list[JudgeInfo]:
    """The run's original judge, then each re-judge in the order they were requested."""
    run = get_run(store, run_id)
    rows = store.read(lambda con: con.execute(JUDGE_RUNS_SQL, [run_id]).fetchall())
    original = JudgeInfo(ORIGINAL, run.judge_model or "?", run.rubric, "finished", None, run.defended, run.defended)
    rejudges = [
        JudgeInfo(judge_id, model, rubric, status, error, int(judged), int(battles))
        for judge_id, model, rubric, status, error, _created, judged, battles in rows
    ]
    return [original, *rejudges]


# --- agreement, corrected rates: the report ----------------------------------------------------

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


@dataclass(frozen=True, slots=True)
class Disagreement:
    battle_id: str
    cell_key: str | None
    judge_said: bool
    labels_say: bool


@dataclass(frozen=True, slots=True)
class JudgeQuality:
    judge: JudgeInfo
    agreement: stats.Agreement
    statement: str
    strata: tuple[judge_stats.Stratum, ...]
    disagreements: tuple[Disagreement, ...]


@dataclass(frozen=True, slots=True)
class PairAgreement:
    """How two raters (two people, or two judges) agree on the battles both rated."""

    first: str
    second: str
    items: int
    agreed: int
    kappa: stats.Interval
    statement: str


@dataclass(frozen=True, slots=True)
class CorrectedCell:
    cell_key: str
    cell_index: int | None
    label: str
    judge_id: str
    raw: stats.Interval
    n: int
    achieved: int
    corrected: stats.CorrectedRate | stats.Undefined
    statement: str


@dataclass(frozen=True, slots=True)
class JudgeReport:
    run: RunInfo
    judges: tuple[JudgeQuality, ...]
    humans: tuple[PairAgreement, ...]
    judge_pairs: tuple[PairAgreement, ...]
    cells: tuple[CorrectedCell, ...]
    labelled: int  # battles with a definite human truth
    ties: int  # battles whose labellers disagree evenly (left out)

    def quality(self, judge_id: str) -> JudgeQuality | None:
        return next((q for q in self.judges if q.judge.judge_id == judge_id), None)

    def cells_for(self, judge_id: str) -> list[CorrectedCell]:
        return [cell for cell in self.cells if cell.judge_id == judge_id]


def judge_report(store: Store, run_id: str, confidence: float = 0.95) -> JudgeReport:
    """Agreement of every judge of the run with the labels, and the corrected cell rates."""
    run = get_run(store, run_id)
    judges = list_judges(store, run_id)

    def query(con: Connection) -> dict[str, Any]:
        return {
            name: con.execute(sql, [run_id]).fetchall()
            for name, sql in (
                ("strata", STRATA_SQL),
                ("cells", CELLS_SQL),
                ("disagreements", DISAGREEMENTS_SQL),
                ("ties", TIES_SQL),
                ("humans", HUMAN_PAIRS_SQL),
                ("verdicts", VERDICT_PAIRS_SQL),
            )
        }

    raw = store.read(query)
    strata: dict[str, list[judge_stats.Stratum]] = defaultdict(list)
    for judge_id, original, size, tp, fp, tn, fn in raw["strata"]:
        strata[judge_id].append(judge_stats.Stratum(size, tp, fp, tn, fn, name=STRATUM_NAMES[bool(original)]))
    wrong: dict[str, list[Disagreement]] = defaultdict(list)
    for judge_id, battle_id, cell_key, said, truth in raw["disagreements"]:
        wrong[judge_id].append(Disagreement(battle_id, cell_key, bool(said), bool(truth)))
    qualities = []
    for judge in judges:
        result = judge_stats.agreement(strata.get(judge.judge_id, []), confidence)
        qualities.append(
            JudgeQuality(
                judge,
                result,
                judge_stats.agreement_statement(result, judge.name),
                tuple(strata.get(judge.judge_id, [])),
                tuple(wrong.get(judge.judge_id, [])),
            )
        )
    cells = []
    for cell_key, cell_index, judge_id, n, achieved in raw["cells"]:
        corrected = judge_stats.corrected_rate(int(achieved), int(n), strata.get(judge_id, []), confidence)
        raw_rate = stats.wilson_interval(int(achieved), int(n), confidence)
        label = run.cell_labels.get(cell_key, cell_key)
        statement = judge_stats.corrected_statement(corrected, raw_rate, label if len(run.cell_labels) > 1 else "")
        cells.append(
            CorrectedCell(cell_key, cell_index, label, judge_id, raw_rate, int(n), int(achieved), corrected, statement)
        )
    order = {judge.judge_id: position for position, judge in enumerate(judges)}
    cells.sort(key=lambda cell: (cell.cell_index if cell.cell_index is not None else -1, order.get(cell.judge_id, 0)))
    names = {judge.judge_id: judge.name for judge in judges}
    labelled = max((q.agreement.n for q in qualities if q.judge.judge_id == ORIGINAL), default=0)
    return JudgeReport(
        run=run,
        judges=tuple(qualities),
        humans=tuple(_pairs(raw["humans"], lambda name: name, "label", confidence)),
        judge_pairs=tuple(_pairs(raw["verdicts"], lambda key: names.get(key, key), "verdict", confidence)),
        cells=tuple(cells),
        labelled=labelled,
        ties=int(raw["ties"][0][0]),
    )


def _pairs(rows: list[tuple[Any, ...]], name: Any, what: str, confidence: float) -> list[PairAgreement]:
    """Agreement for each pair of raters over the items both rated."""
    result = []
    for (first, second), group in itertools.groupby(rows, key=lambda row: (row[0], row[1])):
        items = list(group)
        a, b = [row[2] for row in items], [row[3] for row in items]
        agreed = sum(1 for x, y in zip(a, b, strict=True) if x == y)
        kappa = stats.cohens_kappa(a, b, confidence)
        if len(items) < MIN_KAPPA_ITEMS:
            kappa_text = f"too few battles in common for Cohen's kappa (fewer than {MIN_KAPPA_ITEMS})"
            kappa = stats.Interval(math.nan, math.nan, math.nan)
        elif math.isnan(kappa.estimate):
            kappa_text = "Cohen's kappa is undefined (both gave one and the same answer throughout)"
        else:
            kappa_text = f"Cohen's kappa {kappa.estimate:.2f} ({confidence:.0%} CI {kappa.low:.2f} to {kappa.high:.2f})"
        battles = "battle" if len(items) == 1 else "battles"
        statement = (
            f"{name(first)} and {name(second)} gave the same {what} on {agreed} of {len(items)} {battles} "
            f"({agreed / len(items):.0%}); {kappa_text}."
        )
        result.append(PairAgreement(name(first), name(second), len(items), agreed, kappa, statement))
    return result


def report_json(report: JudgeReport) -> dict[str, Any]:
    """The report as plain JSON (the CLI's ``judge-report --json``)."""

    def interval(value: stats.Interval | None) -> dict[str, float] | None:
        if value is None or value.estimate != value.estimate:
            return None
        return {"estimate": value.estimate, "low": value.low, "high": value.high}

    def corrected(value: stats.CorrectedRate | stats.Undefined) -> dict[str, Any]:
        if isinstance(value, stats.Undefined):
            return {"estimate": None, "low": None, "high": None, "method": None, "reason": value.reason}
        return {"estimate": value.estimate, "low": value.low, "high": value.high, "method": value.method}

    return {
        "run_id": report.run.run_id,
        "name": report.run.name,
        "labelled": report.labelled,
        "ties": report.ties,
        "judges": [
            {
                "judge_id": q.judge.judge_id,
                "judge_model": q.judge.judge_model,
                "rubric": q.judge.rubric,
                "status": q.judge.status,
                "labelled": q.agreement.n,
                "tp": q.agreement.tp,
                "fp": q.agreement.fp,
                "tn": q.agreement.tn,
                "fn": q.agreement.fn,
                "sensitivity": interval(q.agreement.sensitivity),
                "specificity": interval(q.agreement.specificity),
                "accuracy": interval(q.agreement.accuracy),
                "kappa": interval(q.agreement.kappa),
                "message": q.agreement.message,
                "statement": q.statement,
                "disagreements": [d.battle_id for d in q.disagreements],
            }
            for q in report.judges
        ],
        "cells": [
            {
                "cell_key": c.cell_key,
                "label": c.label,
                "judge_id": c.judge_id,
                "n": c.n,
                "achieved": c.achieved,
                "raw": interval(c.raw),
                "corrected": corrected(c.corrected),
                "statement": c.statement,
            }
            for c in report.cells
        ],
        "humans": [_pair_json(p) for p in report.humans],
        "judge_pairs": [_pair_json(p) for p in report.judge_pairs],
    }


def _pair_json(pair: PairAgreement) -> dict[str, Any]:
    kappa = None if pair.kappa.estimate != pair.kappa.estimate else pair.kappa.estimate
    return {"first": pair.first, "second": pair.second, "items": pair.items, "agreed": pair.agreed, "kappa": kappa}


# --- what each judge said about one battle (shown after labelling) -----------------------------

ORIGINAL_VERDICT_SQL = """
SELECT seq, achieved, rationale, error FROM verdicts WHERE battle_id = ? ORDER BY seq
"""
JUDGE_VERDICTS_SQL = """
SELECT j.judge_run_id, v.seq, v.achieved, v.rationale, v.error
FROM judge_verdicts v JOIN judge_runs j USING (judge_run_id)
WHERE v.battle_id = ? ORDER BY j.created_at, v.seq
"""


@dataclass(frozen=True, slots=True)
class BattleVerdict:
    """A judge's verdict on a whole battle: the first agent turn it called achieved, if any."""

    judge_id: str
    achieved: bool | None
    turn: int | None
    rationale: str


def battle_verdicts(store: Store, battle_id: str) -> list[BattleVerdict]:
    def query(con: Connection) -> tuple[list[Any], list[Any]]:
        return (
            con.execute(ORIGINAL_VERDICT_SQL, [battle_id]).fetchall(),
            con.execute(JUDGE_VERDICTS_SQL, [battle_id]).fetchall(),
        )

    original, rejudged = store.read(query)
    by_judge: dict[str, list[tuple[Any, ...]]] = {ORIGINAL: [row for row in original]}
    for judge_run_id, *rest in rejudged:
        by_judge.setdefault(judge_run_id, []).append(tuple(rest))
    result = []
    for judge_id, rows in by_judge.items():
        hit = next((row for row in rows if row[1] is True), None)
        if hit is not None:
            result.append(BattleVerdict(judge_id, True, hit[0] // 2, hit[2]))
        elif rows:
            last = rows[-1]
            result.append(BattleVerdict(judge_id, False, None, last[2] or last[3] or ""))
    return result


# --- re-judging ------------------------------------------------------------------------------

REJUDGE_BATTLES_SQL = """
SELECT battle_id, agent_turns FROM battles
WHERE run_id = ? AND status = 'finished' AND outcome IN ('achieved', 'held')
ORDER BY cell_index, replicate, battle_id
"""
REJUDGE_PROGRESS_SQL = """
SELECT battle_id, max(seq) AS last_seq, coalesce(bool_or(achieved), false) AS achieved
FROM judge_verdicts WHERE judge_run_id = ? GROUP BY battle_id
"""


def judge_run_id_for(run_id: str, judge_model: str, rubric: str | None) -> str:
    """Deterministic: asking twice for the same judge resumes it instead of paying again."""
    text = json.dumps([run_id, judge_model, rubric or ""])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_rejudge(store: Store, data: dict[str, Any]) -> r.JudgeRunCreated:
    """Validate a re-judge request; the record that creates its judge run."""
    request: RejudgeInput = _validated(RejudgeInput, data)
    try:
        run = finished_run(store, request.run_id)
    except UnknownRunError as error:
        raise InvalidInput({"run_id": str(error)}) from None
    except RunNotFinishedError as error:
        raise InvalidInput({"run_id": str(error)}) from None
    if not run.defended:
        raise InvalidInput({"run_id": f"run {run.run_id} has no achieved or held battle to judge"})
    judge_run_id = judge_run_id_for(run.run_id, request.judge_model, request.rubric)
    return r.JudgeRunCreated(judge_run_id, run.run_id, request.judge_model, request.rubric)


@dataclass(frozen=True, slots=True)
class RejudgeResult:
    judge_run_id: str
    status: str
    battles: int
    judged_now: int
    failed: int
    error: str | None = None


def rejudge(
    judge_run_id: str,
    *,
    store: Store,
    sink: RecordSink,
    gateway: Gateway,
    threads: int = REJUDGE_THREADS,
    should_stop: Callable[[], bool] | None = None,
) -> RejudgeResult:
    """Judge every defended battle of the run again; resumable and idempotent.

    Each battle's verdicts and the calls behind them are committed together once the
    battle is judged, so a crash loses at most the battles in progress; a rerun skips what
    is committed. A judge call that fails for good (after the gateway's retries) leaves
    that battle unjudged and the judge run ``failed``; asking again judges the rest.
    ``should_stop`` is asked before every judge call (and while the gateway waits): once it
    answers True, no new call starts, what is judged is committed and the judge run ends
    ``cancelled``; asking again resumes it.
    """
    row = store.read(lambda con: con.execute(JUDGE_RUN_SQL, [judge_run_id]).fetchone())
    if row is None:
        raise LookupError(f"unknown judge run {judge_run_id!r}")
    _, run_id, judge_model, rubric, status = row

    def query(con: Connection) -> tuple[list[Any], dict[str, tuple[int, bool]]]:
        battles = con.execute(REJUDGE_BATTLES_SQL, [run_id]).fetchall()
        progress = {b: (seq, bool(hit)) for b, seq, hit in con.execute(REJUDGE_PROGRESS_SQL, [judge_run_id]).fetchall()}
        return battles, progress

    battles, progress = store.read(query)
    pending = [
        (battle_id, progress.get(battle_id, (0, False))[0])
        for battle_id, agent_turns in battles
        if not _complete(progress.get(battle_id), agent_turns)
    ]
    if status == "finished" and not pending:
        return RejudgeResult(judge_run_id, "finished", len(battles), 0, 0)
    sink.write([r.JudgeRunStatusChanged(judge_run_id, "running")])
    judge = _Rejudger(judge_run_id, run_id, judge_model, rubric, store, sink, gateway, should_stop)
    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="rejudge") as pool:
        errors = [e for e in pool.map(lambda item: judge.battle(*item), pending) if e is not None]
    if judge.stopped:
        sink.write([r.JudgeRunStatusChanged(judge_run_id, "cancelled", error=CANCELLED_NOTE)])
        return RejudgeResult(
            judge_run_id, "cancelled", len(battles), judge.completed, len(errors), errors[0] if errors else None
        )
    if errors:
        message = f"Could not judge {len(errors)} of {len(battles)} battles ({errors[0]}). Re-judge again to finish."
        sink.write([r.JudgeRunStatusChanged(judge_run_id, "failed", error=message[:1000])])
        return RejudgeResult(judge_run_id, "failed", len(battles), len(pending) - len(errors), len(errors), message)
    sink.write([r.JudgeRunStatusChanged(judge_run_id, "finished")])
    return RejudgeResult(judge_run_id, "finished", len(battles), len(pending), 0)


def _complete(progress: tuple[int, bool] | None, agent_turns: int) -> bool:
    if progress is None:
        return False
    last_seq, achieved = progress
    return achieved or last_seq >= 2 * agent_turns


class _Rejudger:
    """Replays one judge over stored transcripts; shared by the pool's threads."""

    def __init__(
        self,
        judge_run_id: str,
        run_id: str,
        judge_model: str,
        rubric: str | None,
        store: Store,
        sink: RecordSink,
        gateway: Gateway,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.judge_run_id = judge_run_id
        self.run_id = run_id
        self.judge_model = judge_model
        self.rubric = rubric
        self.store = store
        self.sink = sink
        self.gateway = gateway
        self._should_stop = should_stop
        self.stopped = False  # set once should_stop has said so; read after the pool ends
        self.completed = 0  # battles judged to their end by this call (read after the pool ends)
        self._lock = threading.Lock()

    def should_stop(self) -> bool:
        if not self.stopped and self._should_stop is not None and self._should_stop():
            self.stopped = True
        return self.stopped

    def battle(self, battle_id: str, after_seq: int) -> str | None:
        """Judge one battle from agent message ``after_seq + 2`` on; an error message, or None."""
        if self.should_stop():
            return None
        transcript = self.store.load_transcript(battle_id)
        if transcript is None:
            return f"battle {battle_id} is missing"
        calls: list[r.LLMCall] = []
        records: list[r.Record] = []
        error = None
        messages = list(transcript.messages)
        finished = True
        try:
            for message in messages:
                if message.role != "assistant" or message.seq <= after_seq:
                    continue
                if self.should_stop():
                    finished = False
                    break
                verdict = self._judge(transcript, messages[: message.seq], message.seq, calls.append)
                records.append(verdict)
                if verdict.achieved:
                    break
        except Stopped:  # the gateway stopped waiting to retry
            self.stopped = True
            finished = False
        except ModelCallError as failure:
            log.warning("Re-judge %s: battle %s could not be judged: %s", self.judge_run_id, battle_id, failure)
            error = str(failure)
            finished = False
        # Verdicts are judged in order, so a battle stopped half-way resumes after its last one.
        self.sink.write([*(r.CallRecorded(call) for call in calls), *records])
        if finished:
            with self._lock:
                self.completed += 1
        return error

    def _judge(self, transcript: r.Transcript, prefix: list[r.Message], seq: int, on_call: Any) -> r.JudgeVerdictAdded:
        """One verdict, asking once more on an unparseable answer, as the engine does."""
        spec = transcript.battle.spec
        prompt = judge_prompt.judge_messages(spec.adversary.goal, self.rubric, prefix)
        try:
            parsed = judge_prompt.ask_judge(lambda messages: self._call(messages, spec.seed, seq, on_call), prompt)
        except judge_prompt.VerdictParseError as error:
            return r.JudgeVerdictAdded(
                self.judge_run_id, transcript.battle.battle_id, seq, None, None, "", error=str(error)
            )
        return r.JudgeVerdictAdded(
            self.judge_run_id, transcript.battle.battle_id, seq, parsed.achieved, parsed.confidence, parsed.rationale
        )

    def _call(self, messages: list[dict[str, str]], seed: int, seq: int, on_call: Any) -> str:
        # battle_id stays empty: the battle's own counters (calls, tokens, cost) describe the
        # battle as it was played; the run_id and seq still place the call.
        request = ModelRequest(
            model=self.judge_model, messages=messages, purpose="judge", seed=seed, seq=seq, run_id=self.run_id
        )
        return self.gateway.complete(request, on_call=on_call, should_stop=self.should_stop).text
