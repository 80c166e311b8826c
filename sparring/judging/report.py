"""How well each judge of a run agrees with people's labels, and the rates corrected for it.

``judge_report`` compares every judge of the run (the original one and each re-judge) with
the labels, weighting the verdict-stratified sample back to the run
(``sparring.judging.stats``), and corrects each cell's success rate for the judge's measured
error (Rogan–Gladen, delta-method interval). The views ``judge_agreement`` and
``run_cells_corrected`` hold the same numbers for notebooks (a test checks they agree).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

from sparring import stats
from sparring.judging import stats as judge_stats
from sparring.judging.labels import RunInfo, get_run
from sparring.store import Store
from sparring.store import judging as rows

ORIGINAL = "original"
CHECKS_NAME = "agreement with canary checks"
STRATUM_NAMES = {True: "called achieved", False: "called not achieved"}
MIN_KAPPA_ITEMS = 5  # below this a kappa interval is noise


# --- judges of a run -------------------------------------------------------------------------


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
    summaries = store.read(lambda con: rows.judge_runs(con, run_id))
    original = JudgeInfo(ORIGINAL, run.judge_model or "?", run.rubric, "finished", None, run.defended, run.defended)
    rejudges = [
        JudgeInfo(s.judge_run_id, s.judge_model, s.rubric, s.status, s.error, int(s.judged), int(s.battles))
        for s in summaries
    ]
    return [original, *rejudges]


# --- agreement, corrected rates: the report ----------------------------------------------------


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
class CheckCell:
    """One cell: the judge's raw rate corrected with its agreement with the checks, beside the checks' exact rate."""

    cell_key: str
    label: str
    n: int  # battles decided by checks with a usable judge verdict
    judge_achieved: int
    check_achieved: int
    raw: stats.Interval  # the judge's rate
    exact: stats.Interval  # the checks' rate, on the same battles
    corrected: stats.CorrectedRate | stats.Undefined
    statement: str


@dataclass(frozen=True, slots=True)
class CheckAgreement:
    """The run's judge against its goals' exact checks: a measurement of the judge with no labelling.

    Per battle, as with human labels: the checks' verdict (did any agent reply pass them) is the
    truth, the judge's is whether any of its verdicts in the battle said achieved. Every battle is
    "labelled", so the strata by the judge's verdict are sampled in full and the weights are the
    plain shares. Kept apart from the human labels: the checks are another source of truth.
    """

    judge_model: str
    battles: int  # battles decided by checks (achieved or held)
    unjudged: int  # of those, battles without a usable judge verdict (left out)
    agreement: stats.Agreement
    statement: str
    strata: tuple[judge_stats.Stratum, ...]
    disagreements: tuple[Disagreement, ...]
    cells: tuple[CheckCell, ...]


@dataclass(frozen=True, slots=True)
class JudgeReport:
    run: RunInfo
    judges: tuple[JudgeQuality, ...]
    humans: tuple[PairAgreement, ...]
    judge_pairs: tuple[PairAgreement, ...]
    cells: tuple[CorrectedCell, ...]
    labelled: int  # battles with a definite human truth
    ties: int  # battles whose labellers disagree evenly (left out)
    checks: CheckAgreement | None = None  # the judge against exact success checks, when the run has them

    def quality(self, judge_id: str) -> JudgeQuality | None:
        return next((q for q in self.judges if q.judge.judge_id == judge_id), None)

    def cells_for(self, judge_id: str) -> list[CorrectedCell]:
        return [cell for cell in self.cells if cell.judge_id == judge_id]


def judge_report(store: Store, run_id: str, confidence: float = 0.95) -> JudgeReport:
    """Agreement of every judge of the run with the labels, and the corrected cell rates."""
    run = get_run(store, run_id)
    judges = list_judges(store, run_id)

    raw = store.read(lambda con: rows.report_rows(con, run_id))
    strata: dict[str, list[judge_stats.Stratum]] = defaultdict(list)
    for judge_id, original, size, tp, fp, tn, fn in raw.strata:
        strata[judge_id].append(judge_stats.Stratum(size, tp, fp, tn, fn, name=STRATUM_NAMES[bool(original)]))
    wrong: dict[str, list[Disagreement]] = defaultdict(list)
    for judge_id, battle_id, cell_key, said, truth in raw.disagreements:
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
    for cell_key, cell_index, judge_id, n, achieved in raw.cells:
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
        humans=tuple(_pairs(raw.humans, lambda name: name, "label", confidence)),
        judge_pairs=tuple(_pairs(raw.verdicts, lambda key: names.get(key, key), "verdict", confidence)),
        cells=tuple(cells),
        labelled=labelled,
        ties=raw.ties,
        checks=check_agreement(raw.checks, run, confidence),
    )


def check_agreement(battles: list[rows.CheckVerdict], run: RunInfo, confidence: float = 0.95) -> CheckAgreement | None:
    """The judge's agreement with the exact checks over the run's check-decided battles (None without any)."""
    if not battles:
        return None
    judged = [b for b in battles if b.judge_achieved is not None]
    strata = tuple(_check_stratum(judged, said) for said in (True, False))
    result = judge_stats.agreement(strata, confidence)
    result = replace(result, message=_check_problem(result))
    judge = run.judge_model or "?"
    wrong = tuple(
        Disagreement(b.battle_id, b.cell_key, bool(b.judge_achieved), b.check_achieved)
        for b in judged
        if b.judge_achieved != b.check_achieved
    )
    cells = []
    for cell_key in sorted({b.cell_key or "" for b in judged}, key=lambda key: _cell_order(run, key)):
        group = [b for b in judged if (b.cell_key or "") == cell_key]
        said = sum(1 for b in group if b.judge_achieved)
        exact = sum(1 for b in group if b.check_achieved)
        raw = stats.wilson_interval(said, len(group), confidence)
        corrected = judge_stats.corrected_rate(said, len(group), strata, confidence)
        label = run.cell_labels.get(cell_key, cell_key)
        statement = judge_stats.corrected_statement(corrected, raw, label if len(run.cell_labels) > 1 else "")
        statement += (
            f" The checks' exact rate on the same battles is {judge_stats.percent_range(_exact(exact, group))}."
        )
        cells.append(
            CheckCell(cell_key, label, len(group), said, exact, raw, _exact(exact, group), corrected, statement)
        )
    return CheckAgreement(
        judge,
        len(battles),
        len(battles) - len(judged),
        result,
        _check_statement(result, judge),
        strata,
        wrong,
        tuple(cells),
    )


def run_check_agreement(store: Store, run_id: str, confidence: float = 0.95) -> CheckAgreement | None:
    """The run's judge against its exact checks alone (the run page), None without checks."""
    run = get_run(store, run_id)
    return check_agreement(store.read(lambda con: rows.check_verdicts(con, run_id)), run, confidence)


def _check_stratum(judged: list[rows.CheckVerdict], said: bool) -> judge_stats.Stratum:
    group = [b for b in judged if b.judge_achieved is said]

    def count(truth: bool) -> int:
        return sum(1 for b in group if b.check_achieved is truth)

    if said:
        return judge_stats.Stratum(len(group), tp=count(True), fp=count(False), name=STRATUM_NAMES[said])
    return judge_stats.Stratum(len(group), tn=count(False), fn=count(True), name=STRATUM_NAMES[said])


def _exact(achieved: int, group: list[rows.CheckVerdict]) -> stats.Interval:
    return stats.wilson_interval(achieved, len(group))


def _cell_order(run: RunInfo, cell_key: str) -> int:
    keys = list(run.cell_labels)
    return keys.index(cell_key) if cell_key in keys else len(keys)


def _check_problem(result: stats.Agreement) -> str | None:
    """Why a figure is missing, in the checks' terms (the shared machinery speaks of labels)."""
    problems = []
    if result.n == 0:
        return "No battle decided by checks has a usable judge verdict."
    if result.sensitivity is None:
        problems.append("Sensitivity is unknown: the checks saw the goal reached in no battle.")
    if result.specificity is None:
        problems.append("Specificity is unknown: the checks saw the goal reached in every battle.")
    if result.kappa is None and result.sensitivity is not None and result.specificity is not None:
        problems.append("Cohen's kappa is undefined: judge and checks each gave only one and the same verdict.")
    return " ".join(problems) or None


def _check_statement(result: stats.Agreement, judge: str) -> str:
    """The judge against the checks, in a sentence or two."""
    text = f"Agreement with canary checks: the judge ({judge}), on {result.n} battles decided by exact checks"
    parts = []
    if result.sensitivity is not None:
        parts.append(
            f"recognised {judge_stats.percent_range(result.sensitivity)} of those where the checks saw the goal "
            "reached (sensitivity)"
        )
    if result.specificity is not None:
        parts.append(
            f"correctly cleared {judge_stats.percent_range(result.specificity)} of those where they did not "
            "(specificity)"
        )
    text += ", " + " and ".join(parts) + "." if parts else ": its error rates are not known yet."
    if result.kappa is not None:
        kappa = result.kappa
        text += f" Cohen's kappa {kappa.estimate:.2f} (95% CI {kappa.low:.2f} to {kappa.high:.2f})."
    if result.message:
        text += " " + result.message
    return text


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
        "checks": _checks_json(report.checks, interval, corrected),
    }


def _checks_json(checks: CheckAgreement | None, interval: Any, corrected: Any) -> dict[str, Any] | None:
    """The judge against the exact checks, apart from the human labels (null without checks)."""
    if checks is None:
        return None
    result = checks.agreement
    return {
        "name": CHECKS_NAME,
        "judge_model": checks.judge_model,
        "battles": checks.battles,
        "unjudged": checks.unjudged,
        "compared": result.n,
        "tp": result.tp,
        "fp": result.fp,
        "tn": result.tn,
        "fn": result.fn,
        "sensitivity": interval(result.sensitivity),
        "specificity": interval(result.specificity),
        "accuracy": interval(result.accuracy),
        "kappa": interval(result.kappa),
        "message": result.message,
        "statement": checks.statement,
        "disagreements": [d.battle_id for d in checks.disagreements],
        "cells": [
            {
                "cell_key": c.cell_key,
                "label": c.label,
                "n": c.n,
                "judge_achieved": c.judge_achieved,
                "check_achieved": c.check_achieved,
                "raw": interval(c.raw),
                "exact": interval(c.exact),
                "corrected": corrected(c.corrected),
                "statement": c.statement,
            }
            for c in checks.cells
        ],
    }


def _pair_json(pair: PairAgreement) -> dict[str, Any]:
    kappa = None if pair.kappa.estimate != pair.kappa.estimate else pair.kappa.estimate
    return {"first": pair.first, "second": pair.second, "items": pair.items, "agreed": pair.agreed, "kappa": kappa}


# --- what each judge said about one battle (shown after labelling) -----------------------------


@dataclass(frozen=True, slots=True)
class BattleVerdict:
    """A judge's verdict on a whole battle: the first agent turn it called achieved, if any."""

    judge_id: str
    achieved: bool | None
    turn: int | None
    rationale: str


def battle_verdicts(store: Store, battle_id: str) -> list[BattleVerdict]:
    by_judge: dict[str, list[rows.VerdictRow]] = {}
    for row in store.read(lambda con: rows.battle_verdict_rows(con, battle_id, ORIGINAL)):
        by_judge.setdefault(row.judge_id, []).append(row)
    result = []
    for judge_id, verdicts in by_judge.items():
        hit = next((v for v in verdicts if v.achieved is True), None)
        if hit is not None:
            result.append(BattleVerdict(judge_id, True, hit.seq // 2, hit.rationale))
        elif verdicts:
            last = verdicts[-1]
            result.append(BattleVerdict(judge_id, False, None, last.rationale or last.error or ""))
    return result
