"""Altair charts of a scale test (the one home of Altair).

Each function takes the rows of a documented view (or of ``run_stats``) and returns a
chart with tooltips on every mark; ``CAPTIONS`` holds the sentence shown under each.
The page and the example notebook draw the same charts from the same rows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import altair as alt
import pandas as pd

from sparring import formatting

CAPTIONS = {
    "rates": "Share of defended battles in which the adversary reached its goal, per cell, with 95% Wilson "
    "intervals; cells sorted from most to least vulnerable.",
    "survival": "Share of agents still holding after k agent turns (Kaplan–Meier; battles that held, failed or "
    "were cancelled count until their last turn).",
    "turns": "How many agent turns the adversary needed, in the battles where it reached the goal.",
    "cost": "Cost per battle against success rate, per cell. Higher means the adversary reached its goal more "
    "often, so the agent is more vulnerable: the bottom left is cheap and robust, the top right costly and weak.",
    "latency": "Latency of successful model calls, per model and purpose (box: middle half; whiskers: range).",
    "confusion": "The judge's verdicts against the labels, counted over the labelled battles. The sample takes the "
    "same number of battles from each of the original judge's verdicts, so the rates beside it are weighted back "
    "to the whole run.",
    "narrowing": "Each cell's 95% confidence sequence after each decided battle, counted in replicate order "
    "(undecided and failed battles skipped): it is valid however often it is looked at, so the cell could stop as "
    "soon as it answered the question (the dot). The dashed line is the threshold, when the rule has one.",
    "judges": "Each cell's success rate under each judge of the run (the original and every re-judge of the same "
    "transcripts), with 95% Wilson intervals: where the dots of a cell spread apart, its rate depends on the judge.",
    "corrected": "Raw: the share of battles the judge called achieved (95% Wilson interval). Corrected: the same "
    "rate corrected for the judge's error measured against the labels (Rogan–Gladen, 95% delta-method interval).",
}


# Vega cuts axis labels at 180 px, so two long model names that differ only at their end
# ("sim/agent?concede=0.05", "sim/agent?concede=0.3") would read the same.
SHORT_LABEL_CHARS = 24
SEPARATORS = re.compile(r"[?&/ ·,()\[\]]")
LABEL_LIMIT_PX = 260


def cell_codes(count: int) -> list[str]:
    """'A', 'B', …, 'Z', 'AA', 'AB', …: one short code per cell, in cell order."""
    codes = []
    for index in range(count):
        code, number = "", index + 1
        while number:
            number, rest = divmod(number - 1, 26)
            code = chr(ord("A") + rest) + code
        codes.append(code)
    return codes


def _common_prefix(texts: Sequence[str]) -> str:
    """The longest beginning every text shares, character by character."""
    shortest = min(texts, key=len)
    for index, char in enumerate(shortest):
        if any(text[index] != char for text in texts):
            return shortest[:index]
    return shortest


def distinguishing_parts(labels: Sequence[str]) -> list[str]:
    """What tells the labels apart: their common beginning and end cut off at a separator.

    "sim/agent?concede=0.05" and "sim/agent?concede=0.3" give "concede=0.05" and "concede=0.3".
    """
    if len(labels) < 2:
        return list(labels)
    prefix = _common_prefix(list(labels))
    cut = [m.end() for m in SEPARATORS.finditer(prefix)]
    start = cut[-1] if cut else 0
    rests = [label[start:] for label in labels]
    suffix = _common_prefix([rest[::-1] for rest in rests])[::-1]
    first = SEPARATORS.search(suffix)
    end = len(suffix) - first.start() if first else 0
    return [(rest[: len(rest) - end] if end else rest).strip(" ·,&?/()[]") for rest in rests]


def short_labels(labels: Sequence[str]) -> list[str]:
    """A short, distinct name per cell for chart axes and legends: its code and what distinguishes it.

    Labels that are already short and distinct are kept; otherwise each cell gets a code
    ("A", "B", …) followed by its distinguishing part when that is short ("A · concede=0.05"),
    or the code alone. The full label goes in the tooltip and the legend table.
    """
    if len(set(labels)) == len(labels) and all(len(label) <= SHORT_LABEL_CHARS // 2 for label in labels):
        return list(labels)
    parts = [
        part if len(part) <= SHORT_LABEL_CHARS else part[: SHORT_LABEL_CHARS - 1].rstrip() + "…"
        for part in distinguishing_parts(labels)
    ]
    usable = len(set(parts)) == len(parts) and all(parts)
    codes = cell_codes(len(labels))
    return [f"{code} · {part}" if usable else code for code, part in zip(codes, parts, strict=True)]


def cell_table(cells: pd.DataFrame) -> pd.DataFrame:
    """The per-cell table: ``run_cells``' columns plus the ones shown (the charts' short name,
    whole percents, one CI text, the not-rated count)."""
    frame = cells.copy()
    frame.insert(0, "cell", short_labels([str(label) for label in frame["label"]]))
    frame["rate_pct"] = [None if pd.isna(rate) else round(100 * float(rate)) for rate in frame["rate"]]
    frame["ci"] = [
        formatting.format_interval(low, high).removeprefix("95% CI ")
        for low, high in zip(frame["ci_low"], frame["ci_high"], strict=True)
    ]
    frame["not_rated"] = frame["failed"] + frame["timed_out"] + frame["cancelled"]
    return frame


def short_names(labels: dict[str, str]) -> dict[str, str]:
    """cell_key -> short label (``short_labels``), in the dict's (cell) order."""
    return dict(zip(labels, short_labels(list(labels.values())), strict=True))


def _named_cells(frame: pd.DataFrame, labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Add ``cell`` (short name) and ``configuration`` (full label) to rows with ``cell_key``."""
    if labels is None:
        column = frame["label"] if "label" in frame else frame["cell_key"]
        labels = dict(zip(frame["cell_key"], column.fillna(frame["cell_key"]), strict=True))
    names = short_names(labels)
    frame["configuration"] = frame["cell_key"].map(labels).fillna(frame["cell_key"])
    frame["cell"] = frame["cell_key"].map(names).fillna(frame["cell_key"])
    return frame


def _own_keys(frame: pd.DataFrame) -> dict[str, str]:
    return {str(key): str(key) for key in frame["cell_key"].drop_duplicates()}


def latency_series(purposes: Sequence[str], models: Sequence[str]) -> dict[tuple[str, str], str]:
    """(purpose, model) -> a short row label: the purpose, and what tells its models apart."""
    by_purpose: dict[str, list[str]] = {}
    for purpose, model in zip(purposes, models, strict=True):
        if model not in by_purpose.setdefault(purpose, []):
            by_purpose[purpose].append(model)
    series = {}
    for purpose, names in by_purpose.items():
        parts = distinguishing_parts(names)
        if len(set(parts)) != len(parts) or not all(parts):
            parts = names
        for model, part in zip(names, parts, strict=True):
            series[(purpose, model)] = f"{purpose} · {part}"
    return series


def _frame(rows: Sequence[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    return rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))


def _empty(message: str) -> alt.Chart:
    return alt.Chart(pd.DataFrame({"note": [message]})).mark_text(size=14).encode(text="note:N")


def success_rates(cells: Sequence[dict[str, Any]] | pd.DataFrame) -> alt.Chart:
    frame = _frame(cells)
    if frame.empty or frame["n"].fillna(0).sum() == 0:
        return _empty("No defended battle has finished yet.")
    frame = _named_cells(frame)
    frame = frame[frame["n"] > 0].copy()
    order = frame.sort_values("rate", ascending=False)["cell"].tolist()
    tooltip = [
        alt.Tooltip("cell:N", title="cell"),
        alt.Tooltip("configuration:N", title="configuration"),
        alt.Tooltip("rate:Q", title="success rate", format=".1%"),
        alt.Tooltip("ci_low:Q", title="95% CI low", format=".1%"),
        alt.Tooltip("ci_high:Q", title="95% CI high", format=".1%"),
        alt.Tooltip("achieved:Q", title="achieved"),
        alt.Tooltip("n:Q", title="defended battles"),
        alt.Tooltip("failed:Q", title="failed (not counted)"),
    ]
    base = alt.Chart(frame).encode(y=alt.Y("cell:N", sort=order, title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT_PX)))
    bars = base.mark_bar(opacity=0.75).encode(
        x=alt.X(
            "rate:Q", title="success rate (goal reached)", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])
        ),
        tooltip=tooltip,
    )
    interval = base.mark_rule(strokeWidth=2, color="black").encode(x="ci_low:Q", x2="ci_high:Q", tooltip=tooltip)
    return (bars + interval).properties(height=max(60, 28 * len(frame)), title="Success rate per cell")


def survival(curves: Sequence[dict[str, Any]] | pd.DataFrame, labels: dict[str, str] | None = None) -> alt.Chart:
    frame = _frame(curves)
    if frame.empty:
        return _empty("No finished battle yet.")
    frame = _named_cells(frame, labels or _own_keys(frame))
    return (
        alt.Chart(frame)
        .mark_line(interpolate="step-after", point=True)
        .encode(
            x=alt.X("turn:Q", title="agent turns", axis=alt.Axis(tickMinStep=1)),
            y=alt.Y(
                "survival:Q", title="share still holding", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])
            ),
            color=alt.Color("cell:N", title="cell", legend=alt.Legend(labelLimit=LABEL_LIMIT_PX)),
            tooltip=[
                alt.Tooltip("cell:N"),
                alt.Tooltip("configuration:N", title="configuration"),
                alt.Tooltip("turn:Q", title="after k agent turns"),
                alt.Tooltip("survival:Q", title="still holding", format=".1%"),
                alt.Tooltip("at_risk:Q", title="battles at risk"),
                alt.Tooltip("events:Q", title="goal reached at this turn"),
                alt.Tooltip("censored:Q", title="ended without the goal"),
            ],
        )
        .properties(height=280, title="Survival: agents still holding after k turns")
    )


def turns_to_goal(battles: Sequence[dict[str, Any]] | pd.DataFrame, labels: dict[str, str] | None = None) -> alt.Chart:
    frame = _frame(battles)
    if frame.empty or "turns_to_goal" not in frame or frame["turns_to_goal"].dropna().empty:
        return _empty("The adversary has not reached the goal in any battle yet.")
    frame = frame.dropna(subset=["turns_to_goal"]).copy()
    frame = _named_cells(frame, labels or _own_keys(frame))
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("turns_to_goal:O", title="agent turns to the goal"),
            y=alt.Y("count():Q", title="battles"),
            color=alt.Color("cell:N", title="cell", legend=alt.Legend(labelLimit=LABEL_LIMIT_PX)),
            xOffset="cell:N",
            tooltip=[
                alt.Tooltip("cell:N"),
                alt.Tooltip("configuration:N", title="configuration"),
                alt.Tooltip("turns_to_goal:O", title="turns"),
                alt.Tooltip("count():Q", title="battles"),
            ],
        )
        .properties(height=260, title="Turns to the goal (achieved battles)")
    )


def cost_vs_success(cells: Sequence[dict[str, Any]] | pd.DataFrame) -> alt.Chart:
    frame = _frame(cells)
    if frame.empty or frame["n"].fillna(0).sum() == 0:
        return _empty("No defended battle has finished yet.")
    frame = _named_cells(frame)
    frame = frame[frame["n"] > 0].copy()
    return (
        alt.Chart(frame)
        .mark_circle(size=140)
        .encode(
            x=alt.X("cost_per_battle_usd:Q", title="cost per battle ($)"),
            y=alt.Y(
                "rate:Q",
                title="success rate (adversary reached the goal)",
                axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1]),
            ),
            color=alt.Color("cell:N", title="cell", legend=alt.Legend(labelLimit=LABEL_LIMIT_PX)),
            tooltip=[
                alt.Tooltip("cell:N"),
                alt.Tooltip("configuration:N", title="configuration"),
                alt.Tooltip("cost_per_battle_usd:Q", title="$ per battle", format=".5f"),
                alt.Tooltip("rate:Q", title="success rate", format=".1%"),
                alt.Tooltip("tokens_per_battle:Q", title="tokens per battle", format=",.0f"),
            ],
        )
        .properties(height=260, title="Cost versus success rate")
    )


def latency(calls: Sequence[dict[str, Any]] | pd.DataFrame) -> alt.Chart:
    """Latency boxes from per-call rows (``latency_ms``, ``model``, ``purpose``)."""
    frame = _frame(calls)
    if frame.empty:
        return _empty("No model call recorded yet.")
    names = latency_series(list(frame["purpose"]), list(frame["model"]))
    frame["series"] = [names[(p, m)] for p, m in zip(frame["purpose"], frame["model"], strict=True)]
    frame["full"] = frame["purpose"] + " · " + frame["model"]
    # A symlog axis spreads sim calls (well under 1 ms) next to real ones (hundreds of ms),
    # where a linear axis left them a zero-width box; the median dot shows even then.
    x_scale = alt.Scale(type="symlog", constant=1)
    base = alt.Chart(frame).encode(
        y=alt.Y("series:N", title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT_PX)),
        color=alt.Color("purpose:N", legend=None),
    )
    boxes = base.mark_boxplot(extent="min-max", size=18).encode(
        x=alt.X("latency_ms:Q", title="latency (ms, log scale above 1 ms)", scale=x_scale),
        tooltip=[alt.Tooltip("full:N", title="purpose · model"), alt.Tooltip("latency_ms:Q", format=".1f")],
    )
    medians = base.mark_point(filled=True, size=70, opacity=1, stroke="black", strokeWidth=1).encode(
        x=alt.X("median(latency_ms):Q", scale=x_scale),
        tooltip=[
            alt.Tooltip("full:N", title="purpose · model"),
            alt.Tooltip("median(latency_ms):Q", title="median latency (ms)", format=".1f"),
            alt.Tooltip("count():Q", title="calls"),
        ],
    )
    return (boxes + medians).properties(height=max(80, 40 * frame["series"].nunique()), title="Model call latency")


RAW_KIND = "raw (the judge's verdicts)"
CORRECTED_KIND = "corrected for the judge's error"


def confusion_matrix(rows: Sequence[dict[str, Any]] | pd.DataFrame) -> alt.Chart:
    """Judge verdict × human label counts, from rows with ``judge_said``, ``labels_say``, ``battles``."""
    frame = _frame(rows)
    if frame.empty or frame["battles"].sum() == 0:
        return _empty("No labelled battles yet.")
    frame["agrees"] = frame["judge_said"] == frame["labels_say"]
    order = ["achieved", "not achieved"]
    base = alt.Chart(frame).encode(
        x=alt.X("labels_say:N", title="people said", sort=order, axis=alt.Axis(labelAngle=0, orient="top")),
        y=alt.Y("judge_said:N", title="judge said", sort=order),
    )
    tooltip = [
        alt.Tooltip("judge_said:N", title="judge said"),
        alt.Tooltip("labels_say:N", title="people said"),
        alt.Tooltip("battles:Q", title="labelled battles"),
    ]
    cells = base.mark_rect(stroke="white").encode(
        color=alt.Color(
            "agrees:N",
            title=None,
            scale=alt.Scale(domain=[True, False], range=["#9fd3a8", "#f4a6a6"]),
            legend=alt.Legend(labelExpr="datum.value ? 'agree' : 'disagree'"),
        ),
        tooltip=tooltip,
    )
    counts = base.mark_text(size=18, fontWeight="bold").encode(text="battles:Q", tooltip=tooltip)
    # Step sizes, not a height: Streamlit's theme would squeeze the bands of a fixed height.
    return (cells + counts).properties(width=alt.Step(150), height=alt.Step(60), title="Judge against people")


def raw_vs_corrected(rows: Sequence[dict[str, Any]] | pd.DataFrame) -> alt.Chart:
    """Raw and corrected success rates per cell, from rows with ``cell``, ``kind``, ``rate``, ``low``, ``high``.

    ``kind`` is ``RAW_KIND`` or ``CORRECTED_KIND``.
    """
    frame = _frame(rows)
    if frame.empty or frame["rate"].dropna().empty:
        return _empty("No success rate to show yet.")
    frame = frame.dropna(subset=["rate"])
    tooltip = [
        alt.Tooltip("cell:N"),
        alt.Tooltip("kind:N", title="which rate"),
        alt.Tooltip("rate:Q", title="success rate", format=".1%"),
        alt.Tooltip("low:Q", title="95% CI low", format=".1%"),
        alt.Tooltip("high:Q", title="95% CI high", format=".1%"),
    ]
    kinds = [RAW_KIND, CORRECTED_KIND]
    base = alt.Chart(frame).encode(
        y=alt.Y("cell:N", title=None, axis=alt.Axis(labelLimit=300)),
        yOffset=alt.YOffset("kind:N", sort=kinds),
        color=alt.Color(
            "kind:N",
            title=None,
            scale=alt.Scale(domain=kinds, range=["#9aa5b1", "#1c64d9"]),
            legend=alt.Legend(orient="bottom", labelLimit=400),
        ),
    )
    interval = base.mark_rule(strokeWidth=3).encode(
        x=alt.X(
            "low:Q", title="success rate (goal reached)", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])
        ),
        x2="high:Q",
        tooltip=tooltip,
    )
    point = base.mark_point(filled=True, size=90).encode(x="rate:Q", tooltip=tooltip)
    return (interval + point).properties(height=alt.Step(26), title="Raw and corrected success rates")


def interval_paths(battles: pd.DataFrame, stops: dict[str, int]) -> pd.DataFrame:
    """Each cell's anytime-valid interval after each decided battle (``sparring.sequential``).

    ``battles``: the run's battles (``cell_key``, ``replicate``, ``status``, ``outcome``), as
    ``battle_outcomes`` has them; ``stops``: cell_key -> the replicate it stopped at, where it has
    stopped. The path follows the counted battles (``sparring.stopping.counted_prefix``), up to
    the stop: what the rule saw.
    """
    from sparring import stopping
    from sparring.sequential import sequence_bounds

    parts = []
    for cell_key, rows in battles.groupby("cell_key", sort=False):
        cell = [
            stopping.CellBattle(str(b.battle_id), int(b.replicate), str(b.status), b.outcome or None)
            for b in rows.itertuples()
            if pd.notna(b.replicate)
        ]
        last = stops.get(str(cell_key))
        decided = [
            b
            for b in stopping.counted_prefix(cell)
            if b.outcome in stopping.DECIDED and (last is None or b.replicate <= last)
        ]
        if not decided:
            continue
        achieved = pd.Series([b.outcome == "achieved" for b in decided]).cumsum().to_numpy()
        n = pd.RangeIndex(1, len(decided) + 1).to_numpy()
        low, high = sequence_bounds(achieved, n - achieved)
        stopped = (n == len(decided)) & (last is not None)
        parts.append(
            pd.DataFrame(
                {
                    "cell_key": cell_key,
                    "battles": n,
                    "rate": achieved / n,
                    "cs_low": low,
                    "cs_high": high,
                    "stopped": stopped,
                }
            )
        )
    columns = ["cell_key", "battles", "rate", "cs_low", "cs_high", "stopped"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def interval_narrowing(
    paths: pd.DataFrame, labels: dict[str, str] | None = None, threshold: float | None = None
) -> alt.Chart:
    """``interval_paths`` as a band per cell narrowing over battles, a dot where the cell stopped."""
    frame = _frame(paths)
    if frame.empty:
        return _empty("No decided battle yet.")
    frame = _named_cells(frame, labels or _own_keys(frame))
    tooltip = [
        alt.Tooltip("cell:N"),
        alt.Tooltip("configuration:N", title="configuration"),
        alt.Tooltip("battles:Q", title="after decided battles"),
        alt.Tooltip("rate:Q", title="success rate so far", format=".1%"),
        alt.Tooltip("cs_low:Q", title="95% CS low", format=".1%"),
        alt.Tooltip("cs_high:Q", title="95% CS high", format=".1%"),
    ]
    base = alt.Chart(frame).encode(
        x=alt.X("battles:Q", title="decided battles (replicate order)", axis=alt.Axis(tickMinStep=1)),
        color=alt.Color("cell:N", title="cell", legend=alt.Legend(labelLimit=LABEL_LIMIT_PX)),
    )
    share = alt.Axis(format="%")
    band = base.mark_area(opacity=0.25).encode(
        y=alt.Y("cs_low:Q", title="success rate, 95% confidence sequence", axis=share, scale=alt.Scale(domain=[0, 1])),
        y2="cs_high:Q",
        tooltip=tooltip,
    )
    line = base.mark_line().encode(y="rate:Q", tooltip=tooltip)
    stops = (
        base.transform_filter(alt.datum.stopped).mark_point(filled=True, size=80).encode(y="rate:Q", tooltip=tooltip)
    )
    layers = band + line + stops
    if threshold is not None:
        rule = alt.Chart(pd.DataFrame({"threshold": [threshold]})).mark_rule(strokeDash=[4, 4], color="black")
        layers = layers + rule.encode(y="threshold:Q", tooltip=[alt.Tooltip("threshold:Q", format=".1%")])
    return layers.properties(height=260, title="Each cell's interval narrowing over its battles")


def rates_by_judge(
    rows: Sequence[dict[str, Any]] | pd.DataFrame, labels: dict[str, str], judges: dict[str, str]
) -> alt.Chart:
    """``run_cells_by_judge`` rows: a dot per cell and judge, with its interval; ``judges``: judge_id -> name."""
    frame = _frame(rows)
    if frame.empty:
        return _empty("No judge has rated a battle yet.")
    frame = _named_cells(frame, labels)
    frame["judge"] = frame["judge_id"].map(judges).fillna(frame["judge_id"])
    tooltip = [
        alt.Tooltip("cell:N"),
        alt.Tooltip("configuration:N", title="configuration"),
        alt.Tooltip("judge:N"),
        alt.Tooltip("rate:Q", title="success rate", format=".1%"),
        alt.Tooltip("ci_low:Q", title="95% CI low", format=".1%"),
        alt.Tooltip("ci_high:Q", title="95% CI high", format=".1%"),
        alt.Tooltip("n:Q", title="battles judged"),
        alt.Tooltip("spread:Q", title="spread across judges", format=".1%"),
    ]
    base = alt.Chart(frame).encode(
        y=alt.Y("cell:N", title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT_PX)),
        yOffset=alt.YOffset("judge:N"),
        color=alt.Color("judge:N", title="judge", legend=alt.Legend(labelLimit=LABEL_LIMIT_PX)),
    )
    share = alt.X(
        "rate:Q", title="success rate (goal reached)", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])
    )
    dots = base.mark_point(filled=True, size=70).encode(x=share, tooltip=tooltip)
    intervals = base.mark_rule(strokeWidth=2).encode(x="ci_low:Q", x2="ci_high:Q", tooltip=tooltip)
    cells = frame["cell"].nunique()
    return (intervals + dots).properties(
        height=max(80, 24 * cells * len(judges)), title="Success rate per cell and judge"
    )
