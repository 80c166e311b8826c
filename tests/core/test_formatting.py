"""How numbers and cells read: clipped shares, one interval format, plurals, short cell names, charts."""

from __future__ import annotations

import json
import math

import pytest

from sparring import charts, formatting, report

DUST = -1.2e-17  # what the views' Wilson macro gives for 0 of n, measured (issue 17, point 7)


@pytest.mark.parametrize(
    ("rate", "low", "high", "text"),
    [
        (0.0, DUST, 0.11, "0% (95% CI 0%–11%)"),
        (1.0, 0.89, 1.0000000000000002, "100% (95% CI 89%–100%)"),
        (0.3846, 0.29, 0.48, "38% (95% CI 29%–48%)"),
        (0.5, None, None, "50%"),
        (None, 0.1, 0.2, "–"),
        (math.nan, math.nan, math.nan, "–"),
    ],
)
def test_a_rate_reads_one_way_inside_zero_and_one(rate: float, low: float, high: float, text: str) -> None:
    assert formatting.format_rate(rate, low, high) == text


def test_bounds_are_clipped_and_missing_values_stay_missing() -> None:
    assert formatting.clip_share(DUST) == 0.0
    assert formatting.clip_share(1.0000000000000002) == 1.0
    assert formatting.clip_share(0.25) == 0.25
    assert formatting.clip_share(None) is None
    assert math.isnan(formatting.clip_share(math.nan))  # type: ignore[arg-type]
    assert formatting.format_share(DUST) == "0%" and formatting.format_interval(DUST, 0.11) == "95% CI 0%–11%"
    assert formatting.format_interval(None, 0.3) == ""


@pytest.mark.parametrize(
    ("count", "noun", "text"),
    [(1, "cell", "1 cell"), (2, "cell", "2 cells"), (1, "row", "1 row"), (0, "row", "0 rows"),
     (3, "strategy", "3 strategies"), (2, "day", "2 days"), (1200, "battle", "1,200 battles")],
)  # fmt: skip
def test_plural(count: int, noun: str, text: str) -> None:
    assert formatting.plural(count, noun) == text


def test_the_report_never_writes_minus_zero() -> None:
    cell = {
        "label": "sim/agent?concede=0",
        "n": 30,
        "achieved": 0,
        "rate": 0.0,
        "ci_low": DUST,
        "ci_high": 0.1135,
        "median_turns_to_goal": None,
        "failed": 0,
        "timed_out": 0,
        "undecided": 0,
    }
    run = {
        "name": "r",
        "finished": 30,
        "battles": 30,
        "achieved": 0,
        "held": 30,
        "undecided": 0,
        "failed": 0,
        "timed_out": 0,
    }
    text = report.key_numbers({"run": {**run, "cancelled": 0, "cost_usd": 0.0}, "cells": [cell], "comparisons": []})
    assert "goal reached in 0 of 30 defended battles (0%, 95% CI 0%–11%)" in text
    assert "-0%" not in text


def test_cells_that_differ_at_the_end_of_a_long_name_get_distinct_short_names() -> None:
    labels = ["sim/agent?concede=0.05", "sim/agent?concede=0.3"]
    assert charts.short_labels(labels) == ["A · concede=0.05", "B · concede=0.3"]
    assert charts.short_labels([f"{m} · goal a" for m in labels]) == ["A · concede=0.05", "B · concede=0.3"]
    # nothing short tells them apart: codes, cut parts
    long_goals = ["gpt · reveal the secret password to me please", "gpt · book a flight to mars for free now please"]
    assert charts.short_labels(long_goals) == ["A · reveal the secret passw…", "B · book a flight to mars f…"]
    same_start = ["x" * 40 + "1", "x" * 40 + "2"]
    short = charts.short_labels(same_start)
    assert len(set(short)) == 2 and all(len(name) <= 30 for name in short)
    # already short names are kept
    assert charts.short_labels(["A", "B"]) == ["A", "B"]
    assert charts.cell_codes(28)[-3:] == ["Z", "AA", "AB"]


def axis_values(spec: dict, channel: str) -> set[str]:
    values = set()
    for layer in spec.get("layer", [spec]):
        for row in spec["datasets"][spec.get("data", layer.get("data", {})).get("name")]:
            values.add(row[layer["encoding"][channel]["field"]])
    return values


def test_the_rate_chart_names_each_cell_apart_with_the_full_label_in_the_tooltip() -> None:
    cells = [
        {"cell_key": "k1", "label": "sim/agent?concede=0.05", "n": 10, "achieved": 1, "rate": 0.1, "ci_low": 0.02,
         "ci_high": 0.4, "failed": 0, "cost_per_battle_usd": 0.0, "tokens_per_battle": 10},
        {"cell_key": "k2", "label": "sim/agent?concede=0.3", "n": 10, "achieved": 8, "rate": 0.8, "ci_low": 0.5,
         "ci_high": 0.94, "failed": 0, "cost_per_battle_usd": 0.0, "tokens_per_battle": 10},
    ]  # fmt: skip
    for chart in (charts.success_rates(cells), charts.cost_vs_success(cells)):
        spec = chart.to_dict()
        (rows,) = spec["datasets"].values()
        assert [row["cell"] for row in rows] == ["A · concede=0.05", "B · concede=0.3"]
        assert [row["configuration"] for row in rows] == ["sim/agent?concede=0.05", "sim/agent?concede=0.3"]
        assert "configuration" in json.dumps(spec)  # in the tooltip
    labels = {"k1": "sim/agent?concede=0.05", "k2": "sim/agent?concede=0.3"}
    curves = [{"cell_key": k, "turn": 1, "survival": 0.5, "at_risk": 2, "events": 1, "censored": 0} for k in labels]
    (rows,) = charts.survival(curves, labels).to_dict()["datasets"].values()
    assert {row["cell"] for row in rows} == {"A · concede=0.05", "B · concede=0.3"}


def test_the_cost_caption_says_that_up_means_vulnerable() -> None:
    caption = charts.CAPTIONS["cost"]
    assert "top left is cheap and robust" not in caption
    assert "bottom left is cheap and robust" in caption and "vulnerable" in caption
    cell = {"cell_key": "k", "label": "x", "n": 1, "rate": 1.0, "cost_per_battle_usd": 0.1, "tokens_per_battle": 1}
    spec = json.dumps(charts.cost_vs_success([cell]).to_dict())
    assert "adversary reached the goal" in spec


def test_latency_rows_are_told_apart_and_calls_near_zero_stay_visible() -> None:
    calls = [
        {"purpose": "agent", "model": model, "latency_ms": latency}
        for model, latencies in (("sim/agent?concede=0.05", (0.02, 0.05)), ("sim/agent?concede=0.3", (0.03, 0.04)))
        for latency in latencies
    ] + [{"purpose": "summary", "model": "openai/gpt-4o-mini", "latency_ms": 900.0}]
    spec = charts.latency(calls).to_dict()
    (rows,) = spec["datasets"].values()
    assert {row["series"] for row in rows} == {
        "agent · concede=0.05",
        "agent · concede=0.3",
        "summary · openai/gpt-4o-mini",
    }
    layers = spec["layer"]
    # sub-millisecond boxes next to a 900 ms one: a symlog axis, and a median dot that shows at any width
    assert all(layer["encoding"]["x"]["scale"]["type"] == "symlog" for layer in layers)
    (dots,) = [layer for layer in layers if layer["mark"]["type"] == "point"]
    assert dots["encoding"]["x"]["aggregate"] == "median" and dots["mark"]["size"] >= 50


@pytest.mark.parametrize(
    ("usd", "text"),
    [(None, "–"), (math.nan, "–"), (0.0, "$0"), (0.00312, "$0.0031"), (12.4, "$12.40"), (1204.4, "$1,204")],
)
def test_money_shows_sim_sized_amounts_and_no_false_cents(usd: float | None, text: str) -> None:
    assert formatting.format_money(usd) == text


def test_outcome_counts_always_name_achieved_and_held_and_the_rest_when_present() -> None:
    assert formatting.outcome_counts(3, 1_200) == "3 achieved · 1,200 held"
    assert formatting.outcome_counts(0, 0, undecided=1, timed_out=2, cancelled=4) == (
        "0 achieved · 0 held · 1 undecided · 2 timed out · 4 cancelled"
    )


@pytest.mark.parametrize(
    ("seconds", "text"), [(4.24, "4.2 s"), (42.4, "42 s"), (187, "3 min 07 s"), (7_500, "2 h 05 min")]
)
def test_a_duration_reads_with_the_precision_of_a_wait(seconds: float, text: str) -> None:
    assert formatting.format_duration(seconds) == text


def test_times_ago_uptimes_and_elapsed_runs() -> None:
    import datetime as dt

    at = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert formatting.format_ago(None, at) == ""
    assert formatting.format_ago(at - dt.timedelta(seconds=3), at) == "just now"
    assert formatting.format_ago(at - dt.timedelta(seconds=187), at) == "3 min 07 s ago"
    assert formatting.format_uptime((at - dt.timedelta(hours=2, minutes=5)).isoformat(), at) == "2 h 05 min"
    assert formatting.format_uptime("yesterday", at) == "yesterday"
    assert formatting.format_uptime(None, at) == ""
    created, started = at - dt.timedelta(seconds=30), at - dt.timedelta(seconds=20)
    assert formatting.elapsed_s(created, None, None, at) == 30.0  # waiting since created
    assert formatting.elapsed_s(created, started, at - dt.timedelta(seconds=5), at) == 15.0  # ran, then ended


def test_truncate_keeps_one_line_and_marks_the_cut() -> None:
    assert formatting.truncate("a  b\nc", 10) == "a b c"
    assert formatting.truncate("abcdefghijk", 5) == "abcd…"


def test_how_a_battle_ended_reads_in_a_few_words() -> None:
    import dataclasses
    import datetime as dt

    from sparring import records as r
    from sparring.validation import validate_battle

    spec = validate_battle({"agent_model": "sim/agent", "goal": "Get a refund"}).to_spec()
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    running = r.BattleView("b" * 16, spec, "running", None, 7, 3, None, None, None, 1, at, at, None)
    assert formatting.outcome_summary(running, judge="J") == ""
    ended = dataclasses.replace(running, status="finished")
    said = {
        outcome: formatting.outcome_summary(dataclasses.replace(ended, outcome=outcome, turns_to_goal=2), judge="J")
        for outcome in ("achieved", "held", "undecided", "cancelled", "timed_out", "failed")
    }
    assert said == {
        "achieved": "the adversary reached its goal on agent turn 2",
        "held": "the agent held for all 3 turns",
        "undecided": "the judge (J) gave no usable verdict on the last agent message",
        "cancelled": "stopped by request after 7 messages",
        "timed_out": "stopped at the time limit after 7 messages",
        "failed": "stopped by an error after 7 messages",
    }


def test_the_cell_table_names_cells_as_the_charts_do_in_whole_percents() -> None:
    import pandas as pd

    cells = pd.DataFrame(
        [
            {"label": "gpt · refund", "rate": 0.3846, "ci_low": DUST, "ci_high": 0.48, "failed": 1, "timed_out": 2,
             "cancelled": 0},
            {"label": "gpt · discount", "rate": math.nan, "ci_low": math.nan, "ci_high": math.nan, "failed": 0,
             "timed_out": 0, "cancelled": 3},
        ]
    )  # fmt: skip
    table = charts.cell_table(cells)
    assert table["cell"].tolist() == charts.short_labels(["gpt · refund", "gpt · discount"])
    assert table["rate_pct"].tolist()[0] == 38 and pd.isna(table["rate_pct"].tolist()[1])
    assert table["ci"].tolist() == ["0%–48%", ""]
    assert table["not_rated"].tolist() == [3, 3]
    assert "cell" not in cells  # the view's frame is left as read


def test_cell_names_keep_no_half_of_a_bracket() -> None:
    """New-user run: the sample profiles' names gave "A · firm)" and "B · lenient)"."""
    profiles = ["Acme support (sim, firm)", "Acme support (sim, lenient)"]
    assert charts.short_labels(profiles) == ["A · firm", "B · lenient"]
    assert charts.short_labels([f"{p} · refund" for p in profiles]) == ["A · firm", "B · lenient"]


def test_an_estimate_is_written_with_its_interval_or_a_dash() -> None:
    from sparring.stats import Interval

    assert formatting.format_estimate(Interval(0.72, 0.611, 0.815)) == "72% (61%–82%)"
    assert formatting.format_estimate(None) == "—"
    assert formatting.format_estimate(Interval(float("nan"), 0.0, 1.0)) == "—"
    assert formatting.format_kappa(Interval(-0.05, -0.3, 0.2)) == "-0.05 (-0.30 to 0.20)"
