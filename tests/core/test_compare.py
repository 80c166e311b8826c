"""Comparing two sides on the Compare tab (``sparring.compare``): which test, and how it reads."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd

from sparring import compare, report, stats
from sparring.compare import ALL_CELLS
from sparring.store.ui_queries import RunOutcomes, RunRow


def run_row(run_id: str, achieved: int, n: int) -> RunRow:
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return RunRow(
        run_id, f"run {run_id}", "finished", 20, 40, None, None, at, at, 40, 0, 0, 40,
        achieved, n - achieved, 0, 0, 0, 0, n, achieved / n, None, None, 0.0, 0,
    )  # fmt: skip


def outcomes(run_id: str, per_cell: dict[str, list[bool]]) -> RunOutcomes:
    """A finished run whose cells' battles achieved as listed, replicate i sharing seed i across cells."""
    battles = pd.DataFrame(
        [
            {"cell_key": cell, "replicate": i, "defended": True, "achieved": hit, "turns": 2 if hit else 5}
            for cell, hits in per_cell.items()
            for i, hit in enumerate(hits)
        ]
    )
    cells = pd.DataFrame(
        [
            {"cell_key": cell, "label": cell.upper(), "achieved": sum(hits), "n": len(hits)}
            for cell, hits in per_cell.items()
        ]
    )
    survival = pd.DataFrame([{"cell_key": cell, "turn": 0, "survival": 1.0} for cell in per_cell])
    config = {"cells": [{"key": cell, "label": f"label {cell}"} for cell in per_cell]}
    total = sum(len(h) for h in per_cell.values())
    return RunOutcomes(run_row(run_id, sum(sum(h) for h in per_cell.values()), total), config, cells, survival, battles)


A_HITS = [True] * 14 + [False] * 6
B_HITS = [False] * 12 + [True] * 2 + [False] * 6  # the same seeds: 12 pairs where only A fell


def test_two_cells_of_one_run_are_compared_pair_by_pair_as_the_report_does() -> None:
    run = outcomes("r1", {"a": A_HITS, "b": B_HITS})
    found = compare.compare_sides(run, "a", run, "b")
    pairs = [("a", i, hit) for i, hit in enumerate(A_HITS)] + [("b", i, hit) for i, hit in enumerate(B_HITS)]
    cells = [
        {"cell_key": "a", "label": "A", "achieved": 14, "n": 20},
        {"cell_key": "b", "label": "B", "achieved": 2, "n": 20},
    ]
    (expected,) = report.comparisons(cells, pairs)
    assert "McNemar" in found.method
    assert (found.method, found.statement, found.p_value) == (
        expected["method"],
        expected["statement"],
        expected["p_value"],
    )


def test_two_runs_are_independent_samples() -> None:
    first, second = outcomes("r1", {"a": A_HITS}), outcomes("r2", {"b": B_HITS})
    found = compare.compare_sides(first, ALL_CELLS, second, ALL_CELLS)
    expected = stats.compare_proportions(14, 20, 2, 20, label1="A", label2="B")
    assert (found.method, found.difference, found.statement) == (
        expected.method,
        expected.difference,
        expected.statement,
    )
    assert "McNemar" not in found.method


def test_sides_that_share_battles_overlap() -> None:
    assert compare.overlap("r1", "a", "r1", "a")
    assert compare.overlap("r1", ALL_CELLS, "r1", "b")
    assert not compare.overlap("r1", "a", "r1", "b")
    assert not compare.overlap("r1", ALL_CELLS, "r2", ALL_CELLS)


def test_a_side_reads_its_numbers_label_and_curve() -> None:
    run = outcomes("r1", {"a": A_HITS, "b": B_HITS})
    assert compare.side_numbers(run, ALL_CELLS) == (16, 40)
    assert compare.side_numbers(run, "b") == (2, 20)
    assert compare.side_numbers(run, "gone") == (0, 0)
    assert compare.side_label(run, ALL_CELLS) == "run r1 (all cells)"
    assert compare.side_label(run, "a") == "run r1 · label a"
    assert set(compare.side_curve(run, "a", "A")["cell_key"]) == {"A"}
    pooled = compare.side_curve(run, ALL_CELLS, "B")
    expected = stats.kaplan_meier([2 if h else 5 for h in A_HITS + B_HITS], A_HITS + B_HITS)
    assert pooled["survival"].tolist() == [row["survival"] for row in expected.rows()]


def test_the_difference_reads_with_its_verdict_and_none_without_a_p_value() -> None:
    significant = stats.Comparison(0.6, 0.35, 0.8, 0.0004, "McNemar", "…", 0.7, 0.1)
    assert compare.difference_line(significant) == (
        "**Difference A − B: +60 points** (95% CI +35 to +80), p = 0.00040: statistically significant: "
        "chance alone would rarely make a difference this large."
    )
    chance = compare.difference_line(stats.Comparison(-0.05, -0.3, 0.2, 0.7, "Fisher", "…", 0.3, 0.35))
    assert chance is not None and chance.endswith("not statistically significant: chance alone could explain it.")
    assert (
        compare.difference_line(
            stats.Comparison(math.nan, math.nan, math.nan, math.nan, "not computed", "…", math.nan, math.nan)
        )
        is None
    )
