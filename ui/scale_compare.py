"""Compare two scale tests, or two cells of one, on the Scale tests page.

Not a page itself. Which test compares the two sides, and how its result reads, is
``sparring.compare``; this module draws the pickers, the two rates and the curves.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from sparring import charts, compare, formatting, stats
from sparring.store import reads, ui_queries
from sparring.store.ui_queries import RunRow
from ui import common

ALL_CELLS = compare.ALL_CELLS


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
    if compare.overlap(run_a, cell_a, run_b, cell_b):
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
    (s1, n1), (s2, n2) = compare.side_numbers(side_a, cell_a), compare.side_numbers(side_b, cell_b)
    difference = compare.compare_sides(side_a, cell_a, side_b, cell_b)
    for col, side, label, s, n in (
        (left, "A", compare.side_label(side_a, cell_a), s1, n1),
        (right, "B", compare.side_label(side_b, cell_b), s2, n2),
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
        line = compare.difference_line(difference)
        if line:
            st.markdown(line)
        st.markdown(common.inert(difference.statement))
        st.caption(f"Test: {difference.method}.")
    curves = [compare.side_curve(side_a, cell_a, "A"), compare.side_curve(side_b, cell_b, "B")]
    curves = [c for c in curves if not c.empty]
    if curves:
        chart("survival", charts.survival(pd.concat(curves, ignore_index=True), {"A": "A", "B": "B"}))
