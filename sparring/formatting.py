"""How numbers read wherever a person sees them: counts with their noun, shares, intervals.

One function per kind of number, used by the runs list, the run page, Compare, the
written report and the CLI, so a rate reads the same everywhere ("38% (95% CI 29%–48%)").
Shares are whole percents: the intervals of a scale test are several points wide, so a
decimal would be false precision.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sparring.records import BattleView
    from sparring.stats import Interval

NOTHING = "–"


def plural(count: int, noun: str, many: str | None = None) -> str:
    """'1 cell', '2 cells', '1,000 battles'; ``many`` for irregular plurals."""
    if many is None:
        many = noun[:-1] + "ies" if noun.endswith("y") and noun[-2:-1] not in "aeiou" else noun + "s"
    return f"{count:,} {noun if count == 1 else many}"


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


def clip_share(value: float | None) -> float | None:
    """A share (rate, interval bound) forced into [0, 1]; None and NaN stay as they are.

    SQL computes the Wilson bounds in floating point, which leaves -1.2e-17 at 0 successes
    and 1.0000000000000002 at n of n: a share is never below 0 or above 1.
    """
    if value is None or math.isnan(value):
        return value
    return min(max(float(value), 0.0), 1.0)


def format_share(value: float | None) -> str:
    """'38%', never '-0%'; '–' when there is nothing to show."""
    if value is None or math.isnan(value):
        return NOTHING
    return f"{min(max(float(value), 0.0), 1.0):.0%}"


def format_interval(low: float | None, high: float | None, confidence: float = 0.95) -> str:
    """'95% CI 29%–48%', or '' when either bound is missing."""
    if _missing(low) or _missing(high):
        return ""
    return f"{confidence:.0%} CI {format_share(low)}–{format_share(high)}"


def format_money(usd: float | None) -> str:
    """Dollars with enough digits to see sim-sized amounts ('$0.0031', '$12.40', '$1,204')."""
    if usd is None or math.isnan(usd):
        return NOTHING
    if usd == 0:
        return "$0"
    if usd < 0.01:
        return f"${usd:.4f}"
    if usd < 100:
        return f"${usd:,.2f}"
    return f"${usd:,.0f}"


def format_rate(rate: float | None, low: float | None = None, high: float | None = None) -> str:
    """'38% (95% CI 29%–48%)', '38%' without bounds, '–' when there is nothing to rate."""
    if _missing(rate):
        return NOTHING
    interval = format_interval(low, high)
    return f"{format_share(rate)} ({interval})" if interval else format_share(rate)


def outcome_counts(
    achieved: int, held: int, *, undecided: int = 0, failed: int = 0, timed_out: int = 0, cancelled: int = 0
) -> str:
    """'12 achieved · 30 held · 2 failed': achieved and held always, the other outcomes when there are any."""
    parts = [f"{achieved:,} achieved", f"{held:,} held"]
    others = ((undecided, "undecided"), (failed, "failed"), (timed_out, "timed out"), (cancelled, "cancelled"))
    parts.extend(f"{count:,} {label}" for count, label in others if count)
    return " · ".join(parts)


def format_estimate(interval: Interval | None, digits: str = ".0%", joiner: str = "–") -> str:
    """'72% (61%–81%)': an estimate with its interval; '—' when there is none (or it is NaN)."""
    if interval is None or _missing(interval.estimate):
        return "—"
    return f"{interval.estimate:{digits}} ({interval.low:{digits}}{joiner}{interval.high:{digits}})"


def format_kappa(kappa: Interval | None) -> str:
    """'0.62 (0.41 to 0.83)': Cohen's kappa with its interval (it can be negative, so 'to', not a dash)."""
    return format_estimate(kappa, ".2f", " to ")


def truncate(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with '…' when longer."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def elapsed_s(
    created_at: dt.datetime, started_at: dt.datetime | None, ended_at: dt.datetime | None, at: dt.datetime
) -> float:
    """Run time once started (until ``at``, or until the end); waiting time before that."""
    begin = started_at or created_at
    return max(0.0, ((ended_at or at) - begin).total_seconds())


def format_duration(seconds: float) -> str:
    """'4.2 s', '42 s', '3 min 07 s', '2 h 05 min': the precision a person reads a wait in."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_ago(at: dt.datetime | None, reference: dt.datetime) -> str:
    """'just now', '3 min 07 s ago' (from ``at`` to ``reference``); '' without a time."""
    if at is None:
        return ""
    seconds = (reference - at).total_seconds()
    if seconds < 5:
        return "just now"
    return f"{format_duration(seconds)} ago"


def format_uptime(started_at: str | None, at: dt.datetime) -> str:
    """How long since an ISO timestamp (a worker's start); the text as is if it is not one."""
    if not started_at:
        return ""
    try:
        started = dt.datetime.fromisoformat(started_at)
    except ValueError:
        return started_at
    return format_duration((at - started).total_seconds())


ENDINGS = {  # outcome -> how a battle that ended so reads
    "achieved": "the adversary reached its goal on agent turn {turns_to_goal}",
    "held": "the agent held for all {agent_turns} turns",
    "undecided": "the judge ({judge}) gave no usable verdict on the last agent message",
    "cancelled": "stopped by request after {messages} messages",
    "timed_out": "stopped at the time limit after {messages} messages",
    "failed": "stopped by an error after {messages} messages",
}


def outcome_summary(view: BattleView, judge: str) -> str:
    """How a battle ended, in a few words ('the agent held for all 10 turns'); '' while it runs.

    ``judge`` names the judge as the caller shows it (a page passes the model name made inert).
    """
    return ENDINGS.get(view.outcome or "", "").format(
        turns_to_goal=view.turns_to_goal, agent_turns=view.agent_turns, judge=judge, messages=view.message_count
    )
