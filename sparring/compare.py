"""Compare two sides, two scale tests or two cells of one, as the Compare tab shows them.

Cells of one run share their adversary seeds, so they are compared pair by pair with the
report's own rule (``sparring.report.comparisons``); separate runs are independent samples
(``sparring.stats.compare_proportions``). Which test applies, and how the result reads,
is decided here; the page only lays it out.
"""

from __future__ import annotations

import pandas as pd

from sparring import report, stats
from sparring.store.ui_queries import RunOutcomes, cell_labels

ALL_CELLS = "__all__"  # a side that pools every cell of its run


def overlap(run_a: str, cell_a: str, run_b: str, cell_b: str) -> bool:
    """Whether the two sides share battles (the same cell, or a cell and its pooled run)."""
    return run_a == run_b and (cell_a == cell_b or ALL_CELLS in (cell_a, cell_b))


def side_numbers(outcomes: RunOutcomes, cell: str) -> tuple[int, int]:
    """(achieved, defended) of a run, or of one of its cells, from the documented views."""
    if cell == ALL_CELLS:
        return int(outcomes.run.achieved), int(outcomes.run.n)
    rows = outcomes.cells[outcomes.cells["cell_key"] == cell]
    return (int(rows["achieved"].iloc[0]), int(rows["n"].iloc[0])) if not rows.empty else (0, 0)


def side_label(outcomes: RunOutcomes, cell: str) -> str:
    """'<run name> (all cells)' or '<run name> · <cell label>'."""
    if cell == ALL_CELLS:
        return f"{outcomes.run.name} (all cells)"
    return f"{outcomes.run.name} · {cell_labels(outcomes.config).get(cell, cell)}"


def side_curve(outcomes: RunOutcomes, cell: str, name: str) -> pd.DataFrame:
    """The side's survival curve, its rows keyed ``name``; empty when nothing has finished."""
    if cell != ALL_CELLS:
        curve = outcomes.survival[outcomes.survival["cell_key"] == cell].copy()
    else:  # pooled: the same Kaplan–Meier estimate the run_survival view makes per cell
        battles = outcomes.battles
        estimate = stats.kaplan_meier([int(t) for t in battles["turns"]], [bool(a) for a in battles["achieved"]])
        curve = pd.DataFrame(estimate.rows()) if len(battles) else pd.DataFrame()
    if not curve.empty:
        curve["cell_key"] = name
    return curve


def compare_sides(side_a: RunOutcomes, cell_a: str, side_b: RunOutcomes, cell_b: str) -> stats.Comparison:
    """A against B: paired on shared seeds within one run (the report's rule), else independent samples."""
    (s1, n1), (s2, n2) = side_numbers(side_a, cell_a), side_numbers(side_b, cell_b)
    if side_a.run.run_id != side_b.run.run_id:
        return stats.compare_proportions(s1, n1, s2, n2, label1="A", label2="B")
    battles = side_a.battles.itertuples()
    pairs = [(str(row.cell_key), int(row.replicate), bool(row.achieved)) for row in battles if row.defended]
    return report.compare_cells(
        {"cell_key": cell_a, "label": "A", "achieved": s1, "n": n1},
        {"cell_key": cell_b, "label": "B", "achieved": s2, "n": n2},
        report.outcomes_by_cell(pairs),
    )


def difference_line(found: stats.Comparison) -> str | None:
    """'**Difference A − B: +12 points** (95% CI …), p = 0.03: statistically significant: …'; None without a p-value."""
    if found.p_value != found.p_value:  # nan: the comparison could not be made, the statement says why
        return None
    verdict = (
        "statistically significant: chance alone would rarely make a difference this large"
        if found.p_value < 0.05
        else "not statistically significant: chance alone could explain it"
    )
    return (
        f"**Difference A − B: {found.difference * 100:+.0f} points** "
        f"(95% CI {found.low * 100:+.0f} to {found.high * 100:+.0f}), {stats.format_p(found.p_value)}: {verdict}."
    )
