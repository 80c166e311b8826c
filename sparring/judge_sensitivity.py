"""Does the choice of judge change what a run concludes? Each cell's rate under each judge.

A run judged again by other judges (``sparring.judging``, re-judges) has, per cell and judge,
a success rate (the ``run_cells_by_judge`` view). This module compares them: the spread of
each cell's rate across judges; whether the judges order the cells alike (Kendall's tau
between the original judge's ordering and each re-judge's, with the pairs of cells that swap
places); and, in words, each conclusion that holds under one judge but not another. A
conclusion here is "cell A is worse than cell B": A's 95% Wilson interval lies wholly above
B's, a conservative test that needs no pairing.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ORIGINAL = "original"


@dataclass(frozen=True, slots=True)
class Ordering:
    """How a re-judge orders the cells against the original judge."""

    judge_id: str
    judge: str
    tau: float | None  # None with fewer than two cells rated by both, or when a judge rates every cell alike
    p_value: float | None
    flipped: tuple[tuple[str, str], ...]  # (cell, cell): worse under the original, better under this judge


@dataclass(frozen=True, slots=True)
class Sensitivity:
    judges: dict[str, str]  # judge_id -> its name (the model, "(original)" for the run's own)
    cells: list[dict[str, Any]]  # one per cell: label, rates per judge_id, spread
    orderings: list[Ordering]
    changed: list[str]  # the conclusions a judge changes, in words


def judge_names(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """judge_id -> a readable name: its model, with the original marked and repeats told apart by id."""
    models: dict[str, str] = {}
    for row in rows:
        models.setdefault(str(row["judge_id"]), str(row["judge_model"]))
    names = {}
    for judge_id, model in models.items():
        repeated = sum(m == model for m in models.values()) > 1
        if judge_id == ORIGINAL:
            names[judge_id] = f"{model} (original)"
        else:
            names[judge_id] = f"{model} [{judge_id[:8]}]" if repeated else model
    return names


def sensitivity(rows: Sequence[Mapping[str, Any]], labels: Mapping[str, str]) -> Sensitivity | None:
    """The comparison of ``run_cells_by_judge`` rows; None unless the run has at least two judges."""
    names = judge_names(rows)
    if len(names) < 2:
        return None
    by_cell: dict[str, dict[str, Mapping[str, Any]]] = {}
    for row in rows:
        by_cell.setdefault(str(row["cell_key"]), {})[str(row["judge_id"])] = row
    cells = []
    for cell_key, judged in by_cell.items():
        rates = {judge: row.get("rate") for judge, row in judged.items()}
        known = [rate for rate in rates.values() if rate is not None]
        cells.append(
            {
                "cell_key": cell_key,
                "label": labels.get(cell_key, cell_key),
                "rates": rates,
                "spread": max(known) - min(known) if known else None,
            }
        )
    orderings = [_ordering(judge_id, names[judge_id], by_cell, labels) for judge_id in names if judge_id != ORIGINAL]
    changed = _changed_conclusions(by_cell, names, labels)
    return Sensitivity(names, cells, orderings, changed)


def _ordering(
    judge_id: str, judge: str, by_cell: Mapping[str, Mapping[str, Mapping[str, Any]]], labels: Mapping[str, str]
) -> Ordering:
    from scipy.stats import kendalltau

    both = [
        (key, float(judged[ORIGINAL]["rate"]), float(judged[judge_id]["rate"]))
        for key, judged in by_cell.items()
        if _rate(judged.get(ORIGINAL)) is not None and _rate(judged.get(judge_id)) is not None
    ]
    flipped = tuple(
        (labels.get(a, a), labels.get(b, b))
        for (a, a_orig, a_new), (b, b_orig, b_new) in itertools.permutations(both, 2)
        if a_orig > b_orig and a_new < b_new
    )
    if len(both) < 2:
        return Ordering(judge_id, judge, None, None, flipped)
    result = kendalltau([o for _, o, _ in both], [n for _, _, n in both])
    tau, p = float(result.statistic), float(result.pvalue)
    if tau != tau:  # nan: one judge rates every cell alike, so there is no ordering to compare
        return Ordering(judge_id, judge, None, None, flipped)
    return Ordering(judge_id, judge, tau, p, flipped)


def _rate(row: Mapping[str, Any] | None) -> float | None:
    return None if row is None or row.get("rate") is None else float(row["rate"])


def _worse(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """A's 95% Wilson interval lies wholly above B's: the adversary succeeds more often against A."""
    if a is None or b is None or a.get("ci_low") is None or b.get("ci_high") is None:
        return False
    return float(a["ci_low"]) > float(b["ci_high"])


def _changed_conclusions(
    by_cell: Mapping[str, Mapping[str, Mapping[str, Any]]], names: Mapping[str, str], labels: Mapping[str, str]
) -> list[str]:
    sentences = []
    for a, b in itertools.permutations(by_cell, 2):
        holds = [judge for judge in names if _worse(by_cell[a].get(judge), by_cell[b].get(judge))]
        fails = [judge for judge in names if judge not in holds]
        if holds and fails:
            sentences.append(
                f"{labels.get(a, a)} is worse than {labels.get(b, b)} under judge "
                f"{' and '.join(names[j] for j in holds)} but not under judge {' and '.join(names[j] for j in fails)}."
            )
    return sentences


def as_json(found: Sensitivity | None) -> dict[str, Any] | None:
    """JSON-ready, for ``run_stats`` and ``scale --json``."""
    if found is None:
        return None
    return {
        "judges": found.judges,
        "cells": found.cells,
        "orderings": [
            {
                "judge_id": o.judge_id,
                "judge": o.judge,
                "kendall_tau": o.tau,
                "p_value": o.p_value,
                "flipped_pairs": [list(pair) for pair in o.flipped],
            }
            for o in found.orderings
        ],
        "changed_conclusions": found.changed,
    }
