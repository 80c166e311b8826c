"""One scale test on the Scale tests page: live progress, then its report, table, charts and exports.

Not a page itself: ``ui/scale_tests.py`` shows it for ``?run=<run id>``. Every number
comes from the documented views (``run_summary``, ``run_cells``, ``run_survival``,
``model_calls``, ``battle_outcomes``), the rows a notebook and the CLI read.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import pandas as pd
import streamlit as st

from jobs import health
from sparring import charts, forecast, formatting, judge_sensitivity, judging, providers, report, stopping, usecases
from sparring.runtime import get_runtime
from sparring.shared_state import read_provider_states
from sparring.store import reads, ui_queries
from sparring.strategies import STRATEGIES
from ui import common, session

SUCCESS_RATE = (
    "**Success rate**: share of defended battles (achieved or held) in which the adversary reached its goal. "
    "Undecided (no usable verdict on the last agent message), failed, timed-out and cancelled battles say nothing "
    "about the agent: they are counted apart and left out of the rate."
)


def key(field: str) -> str:
    return f"scale_{field}"


def cancel_run(run_id: str) -> None:
    common.cancel_and_flash(
        f"Scale test {common.short_id(run_id)}",
        lambda: usecases.cancel_run(run_id, actor=session.actor()),
        usecases.UnknownRunError,
    )


# -- one run: live progress ------------------------------------------------------------------------------


def slowed_notices(config: dict[str, Any]) -> None:
    """A warning for each of the run's providers that is paused or backing off right now, and a
    note for each of our caps (calls in flight, calls a minute) that holds its calls back."""
    settings = get_runtime().settings
    states = read_provider_states(settings.redis_url, settings.namespace)
    used = providers.run_providers(config)
    for sentence in providers.slowed_sentences(states, used):
        st.warning(sentence, icon=":material/speed:")
    for sentence in providers.binding_sentences(states, used):
        st.info(sentence, icon=":material/speed:")


def load_progress(run_id: str) -> ui_queries.RunProgress | None:
    in_hand = health.battles_in_hand()
    return common.read(reads.run_progress, run_id, in_hand)


def progress_active(progress: ui_queries.RunProgress | None) -> bool:
    return progress is not None and progress.run.active


def render_progress(progress: ui_queries.RunProgress | None) -> None:
    if progress is None:
        st.warning("The database is busy; the progress shows again in a moment.", icon=":material/hourglass_top:")
        return
    run, at = progress.run, common.now()
    line = [common.run_badge(run.status)]
    if run.active:
        line.append(":blue[:material/radio_button_checked:] live")
    line.append(f"launched {common.format_ago(run.created_at, at)}")
    end = run.finished_at if not run.active else None
    line.append(
        f"{'ran' if end else 'running for'} {common.format_duration(((end or at) - run.created_at).total_seconds())}"
    )
    st.container(key="scale_run_status").markdown(" · ".join(line))
    if run.active:
        common.writes_waiting_notice()
    share = f"{math.floor(run.fraction_done * 100)}%"  # never "100%" before the last battle
    st.progress(run.fraction_done, text=f"{run.finished:,} of {run.total_battles:,} battles finished ({share})")
    columns = st.columns(8)
    for col, (label, value, help_text) in zip(
        columns,
        (
            ("Queued", progress.queued, "Waiting for a worker"),
            ("Running", progress.running, "In progress now: taken by a worker"),
            ("Achieved", run.achieved, "The adversary reached its goal"),
            ("Held", run.held, "The agent resisted until the message cap"),
            ("Undecided", run.undecided, "No usable verdict on the last agent message: not in the success rate"),
            ("Failed", run.failed, "Provider or infrastructure errors: not in the success rate"),
            ("Timed out", run.timed_out, "Hit the time limit: not in the success rate"),
            (
                "Cancelled",
                run.cancelled,
                "Cancelled, stopped by the budget, or not run because its cell's stopping rule had answered: "
                "not in the success rate",
            ),
        ),
        strict=True,
    ):
        col.metric(label, f"{value:,}", help=help_text)
    if run.n:
        st.caption(
            f"{'So far' if run.active else 'Over all cells'}: the goal was reached in {run.achieved:,} of {run.n:,} "
            f"defended battles, {common.format_rate(run.rate, run.ci_low, run.ci_high)} · cost "
            f"{common.format_money(run.cost_usd)}"
            + (f" of a {common.format_money(run.budget_usd)} budget" if run.budget_usd else "")
        )
    if run.active:
        slowed_notices(progress.config)
        if run.status in ("queued", "running"):
            st.button(
                "Cancel run",
                key=key("cancel_run"),
                icon=":material/stop_circle:",
                on_click=cancel_run,
                args=(run.run_id,),
                help="Queued battles are cancelled now, running ones at their next model call.",
            )
        else:
            st.caption(":material/hourglass_top: Stopping: running battles end at their next model call.")
    elif run.error and run.status in ("cancelled", "stopped", "failed"):
        st.info(f"Stopped early: {common.inert(run.error)}.", icon=":material/info:")


# -- one run: the results -------------------------------------------------------------------------------

# One precision for every share (whole percents: the intervals are several points wide) and
# few enough columns to fit a normal window without scrolling; the notebook has them all.
CELL_COLUMNS = {
    "cell": st.column_config.TextColumn("Cell", help="The cell's name in the charts", width="small"),
    "rate_pct": st.column_config.NumberColumn("Success rate", format="%.0f%%", help="Achieved / defended battles"),
    "ci": st.column_config.TextColumn("95% CI", help="Wilson interval"),
    "n": st.column_config.NumberColumn("n", help="Defended battles (achieved + held): the rate's denominator"),
    "achieved": st.column_config.NumberColumn("Achieved", width="small"),
    "held": st.column_config.NumberColumn("Held", width="small"),
    "undecided": st.column_config.NumberColumn(
        "Undecided", help="No usable verdict on the last agent message: not in n", width="small"
    ),
    "not_rated": st.column_config.NumberColumn(
        "Not rated", help="Failed, timed out or cancelled: not in n", width="small"
    ),
    "median_turns_to_goal": st.column_config.NumberColumn(
        "Median turns", format="%.1f", help="Median agent turns to the goal, achieved battles only"
    ),
    "cost_per_battle_usd": st.column_config.NumberColumn("$ per battle", format="$%.5f", help="Mean cost, US dollars"),
}


CALL_COLUMNS = {
    "purpose": st.column_config.TextColumn("Purpose"),
    "model": st.column_config.TextColumn("Model"),
    "calls": st.column_config.NumberColumn("Calls", help="Attempts, retries included"),
    "errors": st.column_config.NumberColumn("Errors"),
    "rate_limited": st.column_config.NumberColumn("429s"),
    "timeouts": st.column_config.NumberColumn("Timeouts"),
    "mean_latency_ms": st.column_config.NumberColumn("Mean latency (ms)", format="%.0f"),
    "p95_latency_ms": st.column_config.NumberColumn("p95 latency (ms)", format="%.0f"),
    "prompt_tokens": st.column_config.NumberColumn("Prompt tokens"),
    "completion_tokens": st.column_config.NumberColumn("Completion tokens"),
    "cost_usd": st.column_config.NumberColumn("Cost ($)", format="$%.4f"),
}


def battle_columns() -> dict[str, Any]:
    return {
        "link": st.column_config.LinkColumn("Battle", display_text=r"id=([0-9a-f]{8})", help="Open its transcript"),
        "cell": st.column_config.TextColumn("Cell"),
        "replicate": st.column_config.NumberColumn("Replicate", help="Battle i of every cell shares its seed"),
        "outcome": st.column_config.TextColumn("Outcome"),
        "agent_turns": st.column_config.NumberColumn("Agent turns"),
        "turns_to_goal": st.column_config.NumberColumn("Turns to goal"),
        "tokens": st.column_config.NumberColumn("Tokens"),
        "cost_usd": st.column_config.NumberColumn("Cost ($)", format="$%.5f"),
        "duration_s": st.column_config.NumberColumn("Duration (s)", format="%.1f"),
        "error": st.column_config.TextColumn("Error"),
    }


def written_report(detail: ui_queries.RunDetail) -> None:
    st.markdown("#### :material/description: Written report")
    found = detail.report
    if found is None:
        if detail.run.status == "finished":
            st.info("The report is being written; it appears here in a moment.", icon=":material/hourglass_top:")
        else:
            st.caption("No written report for this run.")
        return
    cited = common.cited_battles(found.summary)
    linkable = common.read(reads.run_battles_among, detail.run.run_id, cited) or set()
    with st.container(border=True, key="scale_report"):
        st.markdown(common.inert_with_citations(found.summary, linkable))
    st.caption(
        f"The opening lines are computed from the statistics; the rest was written by "
        f"{common.inert(found.model)} (model output, shown as plain text). Cited battles link to their transcripts."
    )


def cell_table(detail: ui_queries.RunDetail) -> None:
    st.markdown("#### :material/table_chart: Per cell")
    st.caption(SUCCESS_RATE)
    if detail.cells.empty:
        st.caption("No battles recorded for this run.")
        return
    with st.container(key="scale_cells"):
        st.dataframe(
            charts.cell_table(detail.cells),
            column_config=CELL_COLUMNS,
            column_order=list(CELL_COLUMNS),
            hide_index=True,
        )
    judge_warnings(detail.cells)
    st.caption("Read from the `run_cells` view: the numbers a notebook or `python -m sparring scale --json` gets.")


def stopping_section(detail: ui_queries.RunDetail) -> None:
    """A run with a stopping rule: each cell's conclusion in words, what stopping saved, the intervals narrowing."""
    rule = stopping.StoppingRule.of(detail.config.get("input", {}))
    if rule is None or detail.cells.empty:
        return
    st.markdown("#### :material/front_hand: Stopping rule")
    cells = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in detail.cells.to_dict("records")
    ]
    facts = report.stopping_facts(rule, cells, detail.run.runs_per_cell)
    assert facts is not None  # a rule was found above
    st.caption(f"This run's rule: {facts['rule']}; at most {detail.run.runs_per_cell:,} battles per cell.")
    with st.container(key="scale_stopping"):
        for cell in cells:
            sentence = cell.get("stop_sentence") or "still running: its rule has not answered yet."
            st.markdown(f"**{common.inert(str(cell['label']))}**: {sentence}")  # the sentence: numbers and our words
    saved_battles, saved_usd, _ = st.columns([1, 1, 2])
    saved_battles.metric("Battles not run", f"{facts['saved_battles']:,} of {facts['planned_battles']:,}")
    saved_usd.metric(
        "Saved (estimated)", "–" if facts["saved_usd"] is None else common.format_money(facts["saved_usd"])
    )
    st.caption(f"Against running every cell to {detail.run.runs_per_cell:,} battles: {facts['saved_basis']}.")
    stops = {str(c["cell_key"]): int(last) for c in cells if (last := c.get("stop_replicate")) is not None}
    paths = charts.interval_paths(detail.battles, stops)
    chart("narrowing", charts.interval_narrowing(paths, detail.labels, rule.threshold), height=300)


def forecast_vs_actual(detail: ui_queries.RunDetail) -> None:
    """The cost forecast made at launch against what the battles cost."""
    found = detail.config.get("forecast")
    if not found or found.get("expected_usd") is None or detail.cells.empty:
        return
    actual = float(detail.cells["cost_usd"].fillna(0).sum())
    ran = int((detail.cells["battles"] - detail.cells["cancelled"]).sum())
    with st.container(key="scale_forecast"):
        forecast_col, actual_col, off_col = st.columns(3)
        forecast_col.metric("Forecast at launch", common.format_money(found["expected_usd"]))
        actual_col.metric("Actual cost of the battles", common.format_money(actual))
        if actual > 0:
            off_col.metric("Forecast off by", f"{(found['expected_usd'] - actual) / actual:+.0%}")
    st.caption(
        f"Forecast for ≈ {found['expected_battles']:,.0f} battles; {ran:,} ran. "
        f"{common.inert(forecast.describe(found))} The actual cost is the battles' own "
        "(the written report's call aside)."
    )


def judge_sensitivity_section(detail: ui_queries.RunDetail) -> None:
    """A run judged by several judges: each cell's rate under each, how the orderings agree, what changes."""
    rows = common.read(reads.cells_by_judge, detail.run.run_id)
    found = judge_sensitivity.sensitivity(rows or [], detail.labels)
    if found is None:
        return
    st.markdown("#### :material/gavel: Does the judge change the answer?")
    with st.container(key="scale_judges"):
        for sentence in found.changed:
            st.warning(common.inert(sentence), icon=":material/gavel:")
        if not found.changed:
            st.markdown(
                "No conclusion changes with the judge: no cell is clearly worse than another (95% Wilson intervals "
                "apart) under one judge but not under another."
            )
        for ordering in found.orderings:
            tau = "–" if ordering.tau is None else f"{ordering.tau:.2f}"
            flips = "; ".join(f"{a} above {b} under the original, below under this judge" for a, b in ordering.flipped)
            st.markdown(
                f"**{common.inert(ordering.judge)}** against the original: Kendall's tau {tau} over the cells' "
                f"rates"
                + (f"; pairs that swap places: {common.inert(flips)}." if flips else "; no pair of cells swaps places.")
            )
    chart("judges", charts.rates_by_judge(rows or [], detail.labels, found.judges), height=120 + 60 * len(found.cells))
    st.caption(
        "From the `run_cells_by_judge` view. Kendall's tau is 1 when a re-judge orders the cells exactly as the "
        "original judge does, -1 when it reverses the order."
    )


def judge_warnings(cells: pd.DataFrame) -> None:
    """Say in words when a cell's rate rests on a judge that often could not answer."""
    for warning in report.judge_warnings(cells.to_dict("records")):
        st.warning(common.inert(warning), icon=":material/help:")


CORRECTION_NOTES = {
    "no_labels": "no battle of this run has a human label yet",
    "unlabelled_verdict": "label battles the judge called achieved and battles it called held",
    "no_true_success": "no labelled battle truly reached the goal: the judge's sensitivity is unknown",
    "no_true_hold": "no labelled battle truly held: the judge's specificity is unknown",
    "chance_judge": "the judge is no better than chance on the labels (sensitivity + specificity ≤ 1)",
    "too_uncertain": "too few labels to tell the judge from chance: label more battles",
    "no_battles": "no defended battle in this cell",
}


def corrected_rates(detail: ui_queries.RunDetail) -> None:
    """Raw rates next to rates corrected for the judge's measured error (issue: judge quality)."""
    st.markdown("#### :material/fact_check: Corrected for the judge's errors")
    frame = common.read(reads.corrected_cells, detail.run.run_id)
    if frame is None or frame.empty or int(frame["labelled"].max() or 0) == 0:
        st.caption(
            "The rates above are the judge's verdicts as given. Label a sample of this run's battles on "
            "**Check the judge** to see them corrected for the judge's measured false positives and negatives."
        )
        st.page_link("ui/judge.py", label="Check the judge", icon=":material/fact_check:")
        return
    labels = detail.labels
    rows = []
    for row in frame.itertuples():
        corrected = (
            formatting.format_rate(row.corrected_rate, row.corrected_low, row.corrected_high)
            if pd.isna(row.correction_note)
            else f"not computed: {CORRECTION_NOTES.get(row.correction_note, row.correction_note)}"
        )
        rows.append(
            {
                "Cell": labels.get(row.cell_key, row.cell_key),
                "Raw rate (judge as is)": formatting.format_rate(row.rate, row.ci_low, row.ci_high) if row.n else "–",
                "Corrected rate (Rogan–Gladen)": corrected,
            }
        )
    with st.container(key="scale_corrected"):
        st.dataframe(rows, hide_index=True)
    first = frame.iloc[0]
    st.caption(
        f"Raw: the share of defended battles the judge called achieved, with its 95% Wilson interval. Corrected: "
        f"the same rate adjusted for the judge's measured sensitivity ({first.sensitivity:.0%}) and specificity "
        f"({first.specificity:.0%}) on {int(first.labelled)} human-labelled battles, with a 95% delta-method "
        "interval that includes the uncertainty of both. From the `run_cells_corrected` view."
        if first.sensitivity == first.sensitivity and first.specificity == first.specificity
        else "Raw: the judge's verdicts as given. Corrected: adjusted for the judge's measured errors on human labels."
    )


def check_agreement(run_id: str) -> None:
    """The judge against the goals' exact checks: measured on every battle, no labels (apart from them)."""
    checks = common.read(judging.run_check_agreement, run_id)
    if checks is None:
        return
    st.markdown("#### :material/rule: Agreement with canary checks")
    st.markdown(common.inert(checks.statement))
    agreement = checks.agreement
    figures = {
        "Sensitivity": agreement.sensitivity,
        "Specificity": agreement.specificity,
        "Accuracy": agreement.accuracy,
    }
    row = {name: formatting.format_estimate(value) for name, value in figures.items()}
    row["Cohen's kappa"] = formatting.format_kappa(agreement.kappa)
    row["Battles compared"] = str(agreement.n)
    with st.container(key="scale_check_agreement"):
        st.dataframe([row], hide_index=True)
        cells = [
            {
                "Cell": cell.label,
                "Checks' exact rate": formatting.format_rate(cell.exact.estimate, cell.exact.low, cell.exact.high),
                "Judge's raw rate": formatting.format_rate(cell.raw.estimate, cell.raw.low, cell.raw.high),
                "Judge's rate corrected": formatting.format_corrected(cell.corrected),
            }
            for cell in checks.cells
        ]
        st.dataframe(cells, hide_index=True)
    unjudged = f" {checks.unjudged} battles without a usable judge verdict are left out." if checks.unjudged else ""
    st.caption(
        "The checks decided every outcome; the judge was asked beside them. Per battle, the checks' verdict is the "
        "truth and the judge's is whether it called any agent reply achieved. 95% intervals: Wilson for the rates, "
        "delta method for kappa and the corrected rate. Kept apart from the agreement with human labels." + unjudged
    )


def chart(name: str, drawn: Any, note: str = "", height: int | None = None) -> None:
    st.altair_chart(drawn, width="stretch", height=height or "content")
    st.caption(charts.CAPTIONS[name] + note)


def rates_chart(cells: pd.DataFrame) -> None:
    """Streamlit 1.67 collapses a layered chart to its axis unless it is given a height in pixels."""
    rated = int((cells["n"] > 0).sum())
    chart("rates", charts.success_rates(cells), height=110 + 34 * max(1, rated))


def cell_legend(config: dict[str, Any]) -> None:
    """Which cell is which: the charts name cells briefly, this table gives each one's configuration."""
    cells = config.get("cells", [])
    if not cells:
        return
    names = charts.short_labels([str(cell.get("label") or cell.get("key")) for cell in cells])
    rows = [
        {
            "Cell": name,
            "Agent": cell["battle"].get("agent_profile") or cell["battle"].get("agent_model"),
            "Goal": cell["battle"].get("goal"),
            "Strategy": STRATEGIES[s].label if (s := cell["battle"].get("strategy")) in STRATEGIES else s,
        }
        for name, cell in zip(names, cells, strict=True)
    ]
    with st.container(key="scale_cell_legend"):
        st.dataframe(rows, hide_index=True)
    st.caption("The cells as the charts name them, with their full configuration.")


def chart_section(detail: ui_queries.RunDetail) -> None:
    st.markdown("#### :material/bar_chart: Charts")
    labels = detail.labels
    cell_legend(detail.config)
    rates_chart(detail.cells)
    left, right = st.columns(2, gap="large")
    with left:
        chart("survival", charts.survival(detail.survival, labels))
    with right:
        chart("turns", charts.turns_to_goal(detail.achieved_turns, labels))
    left, right = st.columns(2, gap="large")
    with left:
        chart("cost", charts.cost_vs_success(detail.cells))
    with right:
        shown = len(detail.latencies)
        note = (
            f" A random sample of {shown:,} of the run's {detail.successful_calls:,} successful calls."
            if shown < detail.successful_calls
            else ""
        )
        chart("latency", charts.latency(detail.latencies), note)
    if not detail.model_calls.empty:
        with st.expander("Model calls per model and purpose", icon=":material/speed:"):
            st.dataframe(detail.model_calls[list(CALL_COLUMNS)], column_config=CALL_COLUMNS, hide_index=True)
            st.caption("From the `model_calls` view. Latency is over successful attempts; errors include retried ones.")


def comparisons_section(detail: ui_queries.RunDetail) -> None:
    st.markdown("#### :material/compare_arrows: Differences between cells")
    cells = detail.cells.to_dict("records")
    if len(cells) < 2:
        st.caption(
            "This run has one cell: nothing to compare within it. Use **Compare** to set it against another run."
        )
        return
    found = report.comparisons(cells, detail.pairs)
    for item in found:
        icon = ":material/priority_high:" if item["significant"] else ":material/drag_handle:"
        st.markdown(f"{icon} {common.inert(item['statement'])}")
    if len(cells) > 6:
        st.caption("With more than six cells, each cell is compared with the first.")
    st.caption(
        "Paired (McNemar) when the cells share adversary seeds, as a matrix run arranges; otherwise a two-proportion "
        "or Fisher's exact test. A p-value below 0.05 means chance alone would rarely produce a difference this large."
    )


def battles_section(detail: ui_queries.RunDetail) -> None:
    if detail.battles.empty:
        return
    labels = detail.labels
    frame = detail.battles.copy()
    frame.insert(0, "link", [f"{common.BATTLE_URL}?id={battle_id}" for battle_id in frame["battle_id"]])
    frame.insert(1, "cell", [labels.get(cell, cell) for cell in frame["cell_key"]])
    with st.expander(f"All {len(frame):,} battles of this run", icon=":material/forum:"):
        columns = battle_columns()
        with st.container(key="scale_battles"):
            st.dataframe(frame[list(columns)], column_config=columns, hide_index=True)


def export_section(run_id: str) -> None:
    st.markdown("#### :material/download: Export")
    store = get_runtime().store
    with st.container(horizontal=True, gap="small"):
        for part in ui_queries.EXPORT_PARTS:
            for fmt in ui_queries.EXPORT_FORMATS:
                st.download_button(
                    f"{part.capitalize()} ({fmt.upper() if fmt == 'csv' else 'Parquet'})",
                    data=functools.partial(ui_queries.export_run_part, store, run_id, part, fmt),
                    file_name=f"run-{run_id}-{part}.{fmt}",
                    mime="text/csv" if fmt == "csv" else "application/vnd.apache.parquet",
                    key=key(f"export_{part}_{fmt}"),
                    icon=":material/download:",
                    on_click="ignore",
                )
    st.caption(
        "Battles: one row per battle (the `battle_outcomes` view). Messages: every message of the run's battles. "
        f"Everything else: `python -m sparring export --run {run_id}`."
    )


def results(run_id: str) -> None:
    detail = common.read(reads.run_detail, run_id)
    if detail is None:
        return
    written_report(detail)
    cell_table(detail)
    stopping_section(detail)
    forecast_vs_actual(detail)
    corrected_rates(detail)
    check_agreement(run_id)
    judge_sensitivity_section(detail)
    chart_section(detail)
    comparisons_section(detail)
    battles_section(detail)
    export_section(run_id)


def configuration(config: dict[str, Any]) -> None:
    scale = config.get("input", {})
    cells = config.get("cells", [])
    agents = [agent.get("profile") or agent.get("model", "") for agent in scale.get("agents", [])]
    strategies = [STRATEGIES[s].label if s in STRATEGIES else s for s in scale.get("strategies", [])]
    st.caption(
        f"{formatting.plural(len(cells), 'cell')} × {formatting.plural(scale.get('runs', 0), 'run')} · "
        f"max {scale.get('max_messages')} messages · "
        f"base seed {config.get('base_seed')}"
        + (f" · budget {common.format_money(scale['budget_usd'])}" if scale.get("budget_usd") else "")
    )
    with st.expander("Configuration", icon=":material/settings:"):
        st.markdown(
            "  \n".join(
                [
                    "**Agents**: " + " · ".join(common.inert(a) for a in agents),
                    "**Goals**: " + " · ".join(common.inert(g) for g in scale.get("goals", [])),
                    "**Strategies**: " + " · ".join(strategies),
                    f"**Adversary**: {common.inert(scale.get('adversary_model'))} · "
                    f"**Judge**: {common.inert(scale.get('judge_model'))} · "
                    f"**Writer**: {common.inert(scale.get('summary_model'))}",
                    f"**Time limit**: {scale.get('time_limit_s', 0):g} s per battle",
                ]
            )
        )


def show(run_id: str) -> None:
    """The run's page: header, live progress while it runs, the results once it is over."""
    st.page_link(common.SCALE_PAGE, label="All scale tests", icon=":material/arrow_back:")
    progress = load_progress(run_id)
    if progress is None:
        st.warning(
            f"No scale test with the id {common.inert(run_id[:64])}. The link may be incomplete, or the run belongs "
            "to another database.",
            icon=":material/search_off:",
        )
        return
    st.subheader(f"{common.inert(progress.run.name)} `{common.short_id(run_id)}`", anchor=False)
    configuration(progress.config)
    first = [progress]
    common.live(lambda: first.pop() if first else load_progress(run_id), progress_active, render_progress)
    if not progress.run.active:
        results(run_id)
