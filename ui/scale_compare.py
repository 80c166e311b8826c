"""Compare two scale tests, or two cells of one, on the Scale tests page.

Not a page itself. Cells of one run share their adversary seeds, so they are compared
pair by pair with the report's own rule (``sparring.report.comparisons``); separate runs
are independent samples (``sparring.stats.compare_proportions``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from sparring import charts, formatting, report, stats
from sparring.store import reads, ui_queries
from sparring.store.ui_queries import RunRow
from ui import common

ALL_CELLS = "__all__"


def key(field: str) -> str:
    return f"scale_{field}"


def chart(name: str, drawn: Any) -> None:  # an Altair chart (Any to mypy: Altair ships no types)
    st.altair_chart(drawn, width="stretch")
    st.caption(charts.CAPTIONS[name])


def side_picker(side: str, rows: list[RunRow], default_index: int) -> tuple[str, str]:
    names = {
        row.run_id: f"{common.truncate(row.name, 50)} · {common.short_id(row.run_id)} · {row.status}" for row in rows
    }
    run_key = key(f"cmp_run_{side}")
    if st.session_state.get(run_key) not in names:
        st.session_state[run_key] = rows[min(default_index, len(rows) - 1)].run_id
    run_id = st.selectbox(f"Run {side}", list(names), key=run_key, format_func=names.__getitem__)
    config = common.read(reads.run_config, run_id) or {}
    labels = ui_queries.cell_labels(config)
    cell_key = key(f"cmp_cell_{side}")
    options = [ALL_CELLS, *labels]
    if st.session_state.get(cell_key) not in options:
        st.session_state[cell_key] = ALL_CELLS
    cell = st.selectbox(
        f"Cell {side}",
        options,
        key=cell_key,
        format_func=lambda c: "all cells (pooled)" if c == ALL_CELLS else labels.get(c, c),
    )
    return str(run_id), str(cell)


def side_numbers(outcomes: ui_queries.RunOutcomes, cell: str) -> tuple[int, int]:
    """(achieved, defended) of a run, or of one of its cells, from the documented views."""
    if cell == ALL_CELLS:
        return int(outcomes.run.achieved), int(outcomes.run.n)
    rows = outcomes.cells[outcomes.cells["cell_key"] == cell]
    return (int(rows["achieved"].iloc[0]), int(rows["n"].iloc[0])) if not rows.empty else (0, 0)


def side_curve(outcomes: ui_queries.RunOutcomes, cell: str, name: str) -> pd.DataFrame:
    if cell != ALL_CELLS:
        curve = outcomes.survival[outcomes.survival["cell_key"] == cell].copy()
    else:  # pooled: the same Kaplan–Meier estimate the run_survival view makes per cell
        battles = outcomes.battles
        estimate = stats.kaplan_meier([int(t) for t in battles["turns"]], [bool(a) for a in battles["achieved"]])
        curve = pd.DataFrame(estimate.rows()) if len(battles) else pd.DataFrame()
    if not curve.empty:
        curve["cell_key"] = name
    return curve


def side_label(outcomes: ui_queries.RunOutcomes, cell: str) -> str:
    if cell == ALL_CELLS:
        return f"{outcomes.run.name} (all cells)"
    return f"{outcomes.run.name} · {ui_queries.cell_labels(outcomes.config).get(cell, cell)}"


def show(rows: list[RunRow]) -> None:
    """Two pickers side by side, the rates with intervals, the difference and its p-value, the curves."""
    if not rows:
        st.info("Launch a scale test first: comparisons need at least one run.", icon=":material/compare_arrows:")
        return
    st.caption(
        "Pick two runs, or two cells of one run. Cells of one run share their adversary seeds, so they are "
        "compared pair by pair (McNemar); different runs are compared as independent samples."
    )
    left, right = st.columns(2, gap="large")
    with left:
        run_a, cell_a = side_picker("A", rows, 0)
    with right:
        run_b, cell_b = side_picker("B", rows, 1)
    if run_a == run_b and (cell_a == cell_b or ALL_CELLS in (cell_a, cell_b)):
        st.info(
            "A and B overlap: pick two different runs, or two different cells of the same run.", icon=":material/info:"
        )
        return
    found = common.read(reads.run_outcomes_pair, run_a, run_b)
    if found is None:
        return
    side_a, side_b = found
    if side_a is None or side_b is None:
        return
    (s1, n1), (s2, n2) = side_numbers(side_a, cell_a), side_numbers(side_b, cell_b)
    if run_a == run_b:
        pairs = [
            (str(row.cell_key), int(row.replicate), bool(row.achieved))
            for row in side_a.battles.itertuples()
            if row.defended
        ]
        cells = [
            {"cell_key": cell_a, "label": "A", "achieved": s1, "n": n1},
            {"cell_key": cell_b, "label": "B", "achieved": s2, "n": n2},
        ]
        (item,) = report.comparisons(cells, pairs)
        method, statement, p_value = item["method"], item["statement"], item["p_value"]
        difference, low, high = item["difference"], item["low"], item["high"]
    else:
        result = stats.compare_proportions(s1, n1, s2, n2, label1="A", label2="B")
        method, statement, p_value = result.method, result.statement, result.p_value
        difference, low, high = result.difference, result.low, result.high
    for col, side, label, s, n in (
        (left, "A", side_label(side_a, cell_a), s1, n1),
        (right, "B", side_label(side_b, cell_b), s2, n2),
    ):
        interval = stats.wilson_interval(s, n)
        with col, st.container(border=True, key=key(f"cmp_side_{side}")):
            st.markdown(f"**{side}**: {common.inert(label)}")
            st.metric("Success rate", common.format_rate(interval.estimate))
            st.caption(
                f"{formatting.format_interval(interval.low, interval.high)} · goal reached in "
                f"{s:,} of {n:,} defended battles"
                if n
                else "No defended battle has finished yet."
            )
    with st.container(border=True, key=key("cmp_result")):
        if p_value == p_value:
            verdict = (
                "statistically significant: chance alone would rarely make a difference this large"
                if p_value < 0.05
                else "not statistically significant: chance alone could explain it"
            )
            st.markdown(
                f"**Difference A − B: {difference * 100:+.0f} points** (95% CI {low * 100:+.0f} to {high * 100:+.0f}), "
                f"{stats.format_p(p_value)}: {verdict}."
            )
        st.markdown(common.inert(statement))
        st.caption(f"Test: {method}.")
    curves = [side_curve(side_a, cell_a, "A"), side_curve(side_b, cell_b, "B")]
    curves = [c for c in curves if not c.empty]
    if curves:
        chart("survival", charts.survival(pd.concat(curves, ignore_index=True), {"A": "A", "B": "B"}))
