"""Statistics for scale tests: success rates, survival over turns, comparisons, judge quality.

Pure functions over plain counts and sequences, so the store, the reports and the notebooks
all compute the same numbers. Library routines (statsmodels, scipy) do the statistics; this
module chooses between them, handles the degenerate cases a small run produces (no battles,
no events, a judge that never says yes) and phrases results for people who are not
statisticians. Undefined quantities come back as ``nan``, ``None`` or an ``Undefined`` with a
reason, never as an exception or a misleading number.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as sp_stats
from scipy.stats.contingency import expected_freq
from statsmodels.duration.survfunc import SurvfuncRight
from statsmodels.stats import inter_rater
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint, proportions_ztest

NAN = float("nan")
DEFAULT_LABEL1 = "cell A"  # what a comparison calls its first side when the caller names neither
CorrectionMethod = Literal["delta", "bootstrap"]
FloatArray = npt.NDArray[np.float64]


# --- result records ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate with confidence bounds; all three are nan when undefined."""

    estimate: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class SurvivalCurve:
    """Kaplan–Meier step function over agent turns k = 0..max turn, one entry per k.

    ``survival[k]`` is the estimated share of battles whose goal is still not achieved after
    k agent turns; ``low``/``high`` are its pointwise confidence band.
    """

    turns: tuple[int, ...]
    survival: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    at_risk: tuple[int, ...]
    events: tuple[int, ...]
    censored: tuple[int, ...]
    confidence: float = 0.95

    def rows(self) -> list[dict[str, float | int]]:
        """One dict per turn: the shape pandas and Altair want."""
        columns = zip(
            self.turns, self.survival, self.low, self.high, self.at_risk, self.events, self.censored, strict=True
        )
        names = ("turn", "survival", "low", "high", "at_risk", "events", "censored")
        return [dict(zip(names, values, strict=True)) for values in columns]


@dataclass(frozen=True, slots=True)
class TurnsSummary:
    """Turns-to-goal of achieved battles; nan (or None for min/max) when there are none."""

    count: int
    median: float
    p90: float
    mean: float
    min: int | None
    max: int | None


@dataclass(frozen=True, slots=True)
class Comparison:
    """Difference in success rates (rate1 − rate2) with a CI, a p-value and a sentence.

    When a comparison cannot be made (an empty cell) the numbers are nan, ``method`` is
    ``"not computed"`` and ``statement`` says why.
    """

    difference: float
    low: float
    high: float
    p_value: float
    method: str
    statement: str
    rate1: float
    rate2: float
    confidence: float = 0.95

    @property
    def significant(self) -> bool:
        return self.p_value < 1 - self.confidence  # nan compares False


@dataclass(frozen=True, slots=True)
class Agreement:
    """How well the judge's verdicts match human labels ("truth")."""

    tp: int
    fp: int
    tn: int
    fn: int
    sensitivity: Interval | None
    specificity: Interval | None
    accuracy: Interval | None
    kappa: Interval | None
    message: str | None  # why some of the above are None; None when all are defined

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn


@dataclass(frozen=True, slots=True)
class CorrectedRate:
    """A success rate corrected for judge error (Rogan–Gladen) with its confidence interval."""

    estimate: float
    low: float
    high: float
    apparent: Interval  # the judge's raw rate with its Wilson interval, for comparison
    sensitivity: float
    specificity: float
    method: CorrectionMethod
    confidence: float = 0.95
    discarded_draws: int = 0  # bootstrap draws where the resampled judge was no better than chance


@dataclass(frozen=True, slots=True)
class Undefined:
    """A quantity that cannot be computed from the data, and the plain-English reason."""

    reason: str


# --- proportions --------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Success rate with a Wilson score interval.

    Wilson rather than the textbook Wald interval because it stays inside [0, 1] and keeps its
    coverage at 0/n and n/n, which small scale tests hit often. n == 0 gives nan throughout:
    no battles is "unknown", not 0%.
    """
    _check_count(successes, n)
    if n == 0:
        return Interval(NAN, NAN, NAN)
    low, high = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    # The bound at 0/n or n/n is exactly 0 or 1; floating point would leave 0.9999999999999999.
    low = 0.0 if successes == 0 else _clip(float(low))
    high = 1.0 if successes == n else _clip(float(high))
    return Interval(successes / n, low, high)


def compare_proportions(
    s1: int,
    n1: int,
    s2: int,
    n2: int,
    *,
    label1: str = DEFAULT_LABEL1,
    label2: str = "cell B",
    confidence: float = 0.95,
) -> Comparison:
    """Compare two independent success rates (s1/n1 against s2/n2).

    The CI is Newcombe's hybrid score interval (good coverage near 0% and 100%). The p-value
    comes from Fisher's exact test when any expected cell count is below 5, where the
    z-test's normal approximation is poor, and from the pooled two-proportion z-test otherwise.
    """
    _check_count(s1, n1)
    _check_count(s2, n2)
    empty = [label for label, n in ((label1, n1), (label2, n2)) if n == 0]
    if empty:
        verb = "has" if len(empty) == 1 else "have"
        reason = f"Cannot compare {label1} with {label2}: {' and '.join(empty)} {verb} no finished battles yet."
        return _not_computed(reason, s1, n1, s2, n2, confidence)
    low, high = confint_proportions_2indep(s1, n1, s2, n2, method="newcomb", compare="diff", alpha=1 - confidence)
    p_value, method = _independent_p_value(s1, n1, s2, n2)
    rate1, rate2 = s1 / n1, s2 / n2
    interval = Interval(rate1 - rate2, float(low), float(high))
    statement = _statement(label1, label2, rate1, rate2, interval, p_value, method, confidence)
    return Comparison(
        interval.estimate, interval.low, interval.high, p_value, method, statement, rate1, rate2, confidence
    )


def _independent_p_value(s1: int, n1: int, s2: int, n2: int) -> tuple[float, str]:
    table = np.array([[s1, n1 - s1], [s2, n2 - s2]])
    if expected_freq(table).min() < 5:
        return float(sp_stats.fisher_exact(table).pvalue), "Fisher's exact test"
    _, p_value = proportions_ztest(np.array([s1, s2]), np.array([n1, n2]))
    return float(p_value), "two-proportion z-test"


def compare_paired(
    pairs: Sequence[tuple[bool, bool]],
    *,
    label1: str = DEFAULT_LABEL1,
    label2: str = "cell B",
    confidence: float = 0.95,
) -> Comparison:
    """Compare two cells on paired battles (same adversary seed), one (A succeeded, B succeeded) per pair.

    Pairing removes the seed-to-seed variation, so McNemar's test looks only at discordant
    pairs; it is exact (binomial) below 25 of them, where the chi-square approximation is poor.
    statsmodels has no paired-difference CI, so the CI is the Wald interval for (b − c) / n.
    """
    n = len(pairs)
    if n == 0:
        return _not_computed(
            f"Cannot compare {label1} with {label2}: there are no paired battles yet.", 0, 0, 0, 0, confidence
        )
    both = sum(1 for a, b in pairs if a and b)
    only1 = sum(1 for a, b in pairs if a and not b)
    only2 = sum(1 for a, b in pairs if b and not a)
    exact = only1 + only2 < 25
    result = mcnemar(np.array([[both, only1], [only2, n - both - only1 - only2]]), exact=exact, correction=True)
    p_value, method = float(result.pvalue), "McNemar (exact)" if exact else "McNemar (chi-square)"
    rate1, rate2 = (both + only1) / n, (both + only2) / n
    interval = _paired_wald(only1, only2, n, confidence)
    context = f" on the same {n} adversary seeds"
    statement = _statement(label1, label2, rate1, rate2, interval, p_value, method, confidence, context)
    return Comparison(
        interval.estimate, interval.low, interval.high, p_value, method, statement, rate1, rate2, confidence
    )


def _paired_wald(only1: int, only2: int, n: int, confidence: float) -> Interval:
    difference = (only1 - only2) / n
    se = math.sqrt(max(only1 + only2 - (only1 - only2) ** 2 / n, 0.0)) / n
    half = _z(confidence) * se
    return Interval(difference, max(difference - half, -1.0), min(difference + half, 1.0))


def _not_computed(reason: str, s1: int, n1: int, s2: int, n2: int, confidence: float) -> Comparison:
    rate1 = s1 / n1 if n1 else NAN
    rate2 = s2 / n2 if n2 else NAN
    return Comparison(NAN, NAN, NAN, NAN, "not computed", reason, rate1, rate2, confidence)


def _statement(
    label1: str,
    label2: str,
    rate1: float,
    rate2: float,
    interval: Interval,
    p_value: float,
    method: str,
    confidence: float,
    context: str = "",
) -> str:
    """One sentence: direction, the numbers, and whether chance alone could explain it."""
    # The sentence names who succeeded (the adversary): "A succeeded less often" read as if the agent did.
    if _points(interval.estimate) == "+0":
        direction = f"The adversary reached the goal about equally often against {label1} and {label2}"
    else:
        more = "more" if interval.estimate > 0 else "less"
        direction = f"The adversary reached the goal {more} often against {label1} than against {label2}"
    numbers = (
        f"{rate1:.0%} vs {rate2:.0%}, difference {_points(interval.estimate)} points, "
        f"{confidence:.0%} CI {_points(interval.low)} to {_points(interval.high)}"
    )
    alpha = 1 - confidence
    verdict = (
        "statistically significant" if p_value < alpha else f"not statistically significant at the {alpha:.0%} level"
    )
    # A caller's label is a name (a model id, a profile) and is kept as written.
    return f"{direction}{context} ({numbers}); this difference is {verdict} ({format_p(p_value)}, {method})."


def format_p(p_value: float) -> str:
    """'p = 0.41', 'p = 0.028', 'p < 0.0001': two significant digits, no false precision."""
    if math.isnan(p_value):
        return "p not computed"
    if p_value < 0.0001:
        return "p < 0.0001"
    decimals = max(2, 1 - math.floor(math.log10(p_value)))
    return f"p = {p_value:.{decimals}f}"


def _points(share: float) -> str:
    """A difference of shares as signed percentage points ('+31'); never '-0'."""
    return f"{round(share * 100) + 0:+d}"


# --- survival over turns ---------------------------------------------------------------------------


def kaplan_meier(durations: Sequence[int], events: Sequence[bool], confidence: float = 0.95) -> SurvivalCurve:
    """Share of battles still holding after k agent turns, for k = 0..the longest battle.

    An event is "goal achieved at turn k"; a battle that ended otherwise (held, cancelled,
    failed) is censored at its last turn: it counts as at risk up to and including that turn,
    because it is unknown whether it would have fallen later. Ignoring censoring would
    overstate how long agents hold. The band is pointwise, Greenwood variance on the log-log
    scale (stays inside [0, 1]); it is nan where S(k) = 0 and for empty input, whose curve is
    the single point S(0) = 1.
    """
    times, status = _survival_arrays(durations, events)
    horizon = int(times.max()) if times.size else 0
    grid = np.arange(horizon + 1)
    survival, se = _product_limit(times, status, grid)
    low, high = _log_log_band(survival, se, confidence)
    if times.size == 0:
        low, high = np.array([NAN]), np.array([NAN])
    leaving = np.bincount(times, minlength=horizon + 1)
    at_risk = times.size - np.concatenate(([0], np.cumsum(leaving)[:-1]))
    return SurvivalCurve(
        turns=tuple(int(k) for k in grid),
        survival=_floats(survival),
        low=_floats(low),
        high=_floats(high),
        at_risk=tuple(int(x) for x in at_risk),
        events=tuple(int(x) for x in np.bincount(times[status], minlength=horizon + 1)),
        censored=tuple(int(x) for x in np.bincount(times[~status], minlength=horizon + 1)),
        confidence=confidence,
    )


def _survival_arrays(
    durations: Sequence[int], events: Sequence[bool]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    if len(durations) != len(events):
        raise ValueError(f"durations and events differ in length ({len(durations)} vs {len(events)})")
    times = np.asarray(durations, dtype=np.int64).reshape(-1)
    status = np.asarray(events, dtype=bool).reshape(-1)
    if (times < 0).any():
        raise ValueError("durations are agent turns and cannot be negative")
    if (status & (times == 0)).any():
        raise ValueError("a goal cannot be achieved before the first agent turn (event at turn 0)")
    return times, status


def _product_limit(
    times: npt.NDArray[np.int64], status: npt.NDArray[np.bool_], grid: npt.NDArray[np.int64]
) -> tuple[FloatArray, FloatArray]:
    """S(k) and its Greenwood standard error on the grid; statsmodels reports only event times."""
    if not status.any():
        return np.ones(grid.size), np.zeros(grid.size)
    fit = SurvfuncRight(times, status.astype(float))
    index = np.searchsorted(fit.surv_times, grid, side="right") - 1
    before_first = index < 0
    safe = np.maximum(index, 0)
    survival = np.where(before_first, 1.0, fit.surv_prob[safe])
    se = np.where(before_first, 0.0, fit.surv_prob_se[safe])
    return survival.astype(np.float64), se.astype(np.float64)


def _log_log_band(survival: FloatArray, se: FloatArray, confidence: float) -> tuple[FloatArray, FloatArray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = _z(confidence) * se / (survival * np.abs(np.log(survival)))
        low = survival ** np.exp(spread)
        high = survival ** np.exp(-spread)
    low = np.where(survival >= 1, 1.0, np.where(survival <= 0, NAN, low))
    high = np.where(survival >= 1, 1.0, np.where(survival <= 0, NAN, high))
    return low, high


# --- descriptive summaries ------------------------------------------------------------------------


def turns_summary(turns_to_goal: Sequence[int]) -> TurnsSummary:
    """How quickly achieved battles fell. Only achieved battles belong here; use
    ``kaplan_meier`` for a view that also counts the battles that held."""
    values = np.asarray(turns_to_goal, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return TurnsSummary(0, NAN, NAN, NAN, None, None)
    return TurnsSummary(
        count=int(values.size),
        median=float(np.median(values)),
        p90=float(np.percentile(values, 90)),
        mean=float(values.mean()),
        min=int(values.min()),
        max=int(values.max()),
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100, linear interpolation) ignoring nan; nan when nothing is left."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be between 0 and 100, got {q}")
    finite = _finite(values)
    return float(np.percentile(finite, q)) if finite.size else NAN


def latency_summary(values_ms: Sequence[float]) -> dict[str, float]:
    """mean, p50, p95 and max latency in ms; nan values are ignored, empty input gives nan."""
    finite = _finite(values_ms)
    if finite.size == 0:
        return {"mean": NAN, "p50": NAN, "p95": NAN, "max": NAN}
    return {
        "mean": float(finite.mean()),
        "p50": percentile(values_ms, 50),
        "p95": percentile(values_ms, 95),
        "max": float(finite.max()),
    }


# --- judge quality --------------------------------------------------------------------------------


def agreement(judge: Sequence[bool], truth: Sequence[bool], confidence: float = 0.95) -> Agreement:
    """Confusion counts, sensitivity, specificity, accuracy and Cohen's kappa of judge vs truth.

    Sensitivity needs battles that truly succeeded, specificity battles that truly held; when
    the labelled sample lacks one kind the quantity is None and ``message`` says what to label.
    """
    if len(judge) != len(truth):
        raise ValueError(f"judge and truth differ in length ({len(judge)} vs {len(truth)})")
    counts = Counter((bool(j), bool(t)) for j, t in zip(judge, truth, strict=True))
    tp, fp, tn, fn = counts[True, True], counts[True, False], counts[False, False], counts[False, True]
    problems: list[str] = []
    if tp + fn == 0:
        problems.append("Sensitivity is undefined: no labelled battle truly achieved its goal.")
    if tn + fp == 0:
        problems.append("Specificity is undefined: every labelled battle truly achieved its goal.")
    kappa = _kappa_from_table(np.array([[tp, fn], [fp, tn]]), confidence)
    if kappa is None:
        problems.append("Cohen's kappa is undefined: judge and labels each gave only one and the same verdict.")
    n = tp + fp + tn + fn
    return Agreement(
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        sensitivity=wilson_interval(tp, tp + fn, confidence) if tp + fn else None,
        specificity=wilson_interval(tn, tn + fp, confidence) if tn + fp else None,
        accuracy=wilson_interval(tp + tn, n, confidence) if n else None,
        kappa=kappa,
        message=" ".join(["No labelled battles yet."] if n == 0 else problems) or None,
    )


def cohens_kappa(a: Sequence[str | bool], b: Sequence[str | bool], confidence: float = 0.95) -> Interval:
    """Chance-corrected agreement between two raters, with a large-sample (Fleiss) CI.

    Raw agreement flatters raters who mostly say the same common label; kappa discounts the
    agreement expected by chance. nan throughout when undefined (no items, or both raters
    used one and the same label for everything).
    """
    if len(a) != len(b):
        raise ValueError(f"the two raters labelled different numbers of items ({len(a)} vs {len(b)})")
    labels = sorted(set(a) | set(b), key=repr)
    position = {label: i for i, label in enumerate(labels)}
    table = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for x, y in zip(a, b, strict=True):
        table[position[x], position[y]] += 1
    return _kappa_from_table(table, confidence) or Interval(NAN, NAN, NAN)


def _kappa_from_table(table: npt.NDArray[np.int64], confidence: float) -> Interval | None:
    n = int(table.sum())
    if n == 0:
        return None
    expected_agreement = float((table.sum(axis=0) * table.sum(axis=1)).sum()) / n**2
    if expected_agreement >= 1:
        return None
    with np.errstate(invalid="ignore"):  # statsmodels takes sqrt of a variance that round-off can make -1e-16
        result: Any = inter_rater.cohens_kappa(table)
    kappa, se = float(result.kappa), math.sqrt(max(float(result.var_kappa), 0.0))
    half = _z(confidence) * se
    return Interval(kappa, max(kappa - half, -1.0), min(kappa + half, 1.0))


def _check_count(successes: int, n: int) -> None:
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return float(sp_stats.norm.ppf(1 - (1 - confidence) / 2))


def _clip(value: float, low: float = 0.0, high: float = 1.0) -> float:
    return min(max(value, low), high)


def _finite(values: Sequence[float]) -> FloatArray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    return array[~np.isnan(array)]


def _floats(array: FloatArray) -> tuple[float, ...]:
    return tuple(float(x) for x in array)
