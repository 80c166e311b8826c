"""How numbers read wherever a person sees them: counts with their noun, shares, intervals.

One function per kind of number, used by the runs list, the run page, Compare, the
written report and the CLI, so a rate reads the same everywhere ("38% (95% CI 29%–48%)").
Shares are whole percents: the intervals of a scale test are several points wide, so a
decimal would be false precision.
"""

from __future__ import annotations

import math

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


def format_rate(rate: float | None, low: float | None = None, high: float | None = None) -> str:
    """'38% (95% CI 29%–48%)', '38%' without bounds, '–' when there is nothing to rate."""
    if _missing(rate):
        return NOTHING
    interval = format_interval(low, high)
    return f"{format_share(rate)} ({interval})" if interval else format_share(rate)
