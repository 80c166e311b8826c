"""Judge quality from a labelled sample that is stratified by the judge's verdict.

The "Check the judge" view labels the same number of battles from each verdict of a run's
original judge (by default 20 the judge called achieved and 20 it did not), so that both
kinds are represented even when one is rare. That sample over-represents the rarer
verdict, so rates read straight off the labelled counts would be biased: if the judge said
"achieved" in 180 of 200 battles, the 20 labelled "achieved" battles stand for 180 battles
and the 20 others for only 20. Every estimate here therefore weights each labelled battle
by ``battles in its stratum / labelled battles in its stratum`` (a stratified estimator).
When every stratum is labelled at the same rate the weights are equal and the estimates
are the plain labelled proportions.

From the weighted 2×2 table (judge verdict × human truth) come sensitivity, specificity,
accuracy, Cohen's kappa and the Rogan–Gladen corrected success rate. Intervals use the
delta method on the stratified multinomial covariance of that table; sensitivity,
specificity and accuracy are turned into Wilson intervals at their effective sample size
so that they stay inside [0, 1]. Pure functions, like ``sparring.stats``, whose result
types (``Agreement``, ``CorrectedRate``, ``Undefined``) they reuse.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as sp_stats

from sparring.stats import Agreement, CorrectedRate, Interval, Undefined, wilson_interval

FloatArray = npt.NDArray[np.float64]

# Order of the four cells of a 2×2 table everywhere in this module.
TP, FP, TN, FN = 0, 1, 2, 3
_STEP = 1e-7


@dataclass(frozen=True, slots=True)
class Stratum:
    """One sampling stratum: the run's battles that the original judge gave one verdict.

    ``size`` counts all of them; ``tp``..``fn`` count the labelled ones by how the judge
    being assessed (the original or a re-judge) and the human label classify them.
    """

    size: int
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0
    name: str = "stratum"

    @property
    def labelled(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    def counts(self) -> FloatArray:
        return np.array([self.tp, self.fp, self.tn, self.fn], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class WeightedTable:
    """Estimated shares of the run's battles in each cell (tp, fp, tn, fn) and their covariance."""

    shares: FloatArray
    covariance: FloatArray
    labelled: int


def weighted_table(strata: Sequence[Stratum]) -> WeightedTable | Undefined:
    """The stratified estimate of the run's 2×2 table, or why there is none."""
    total = sum(s.size for s in strata)
    if total == 0:
        return Undefined("No judged battles yet.")
    labelled = sum(s.labelled for s in strata)
    if labelled == 0:
        return Undefined("No labelled battles yet: label a sample of battles first.")
    missing = [s.name for s in strata if s.size > 0 and s.labelled == 0]
    if missing:
        return Undefined(
            f"None of the battles the judge {' or '.join(missing)} has a definite label yet, so the judge's "
            "error rates on them are unknown. Label some of those battles."
        )
    shares = np.zeros(4)
    covariance = np.zeros((4, 4))
    for stratum in strata:
        if stratum.size == 0:
            continue
        weight = stratum.size / total
        within = stratum.counts() / stratum.labelled
        shares += weight * within
        # Multinomial covariance of the within-stratum shares, scaled by the stratum's weight².
        covariance += weight**2 * (np.diag(within) - np.outer(within, within)) / stratum.labelled
    return WeightedTable(shares, covariance, labelled)


# --- the quantities, as functions of the table ----------------------------------------------------


def sensitivity(p: FloatArray) -> float:
    """Share of truly achieved battles that the judge called achieved."""
    return float(p[TP] / (p[TP] + p[FN]))


def specificity(p: FloatArray) -> float:
    """Share of battles where the agent truly held that the judge called not achieved."""
    return float(p[TN] / (p[TN] + p[FP]))


def accuracy(p: FloatArray) -> float:
    return float((p[TP] + p[TN]) / p.sum())


def kappa(p: FloatArray) -> float:
    observed = (p[TP] + p[TN]) / p.sum()
    expected = _expected_agreement(p)
    return float((observed - expected) / (1 - expected))


def _expected_agreement(p: FloatArray) -> float:
    """Agreement expected by chance from the two margins."""
    total = p.sum()
    judge_yes, truth_yes = (p[TP] + p[FP]) / total, (p[TP] + p[FN]) / total
    return float(judge_yes * truth_yes + (1 - judge_yes) * (1 - truth_yes))


def rogan_gladen_theta(apparent: float, p: FloatArray) -> float:
    """θ = (p + Sp − 1) / (Se + Sp − 1), unclipped."""
    se, sp = sensitivity(p), specificity(p)
    return (apparent + sp - 1) / (se + sp - 1)


def delta_variance(function: Callable[[FloatArray], float], table: WeightedTable) -> float:
    """Var f(table) ≈ ∇fᵀ Σ ∇f, with the gradient by central differences."""
    gradient = np.zeros(4)
    for i in range(4):
        step = np.zeros(4)
        step[i] = _STEP
        gradient[i] = (function(table.shares + step) - function(table.shares - step)) / (2 * _STEP)
    return max(float(gradient @ table.covariance @ gradient), 0.0)


# --- agreement --------------------------------------------------------------------------------------


def agreement(strata: Sequence[Stratum], confidence: float = 0.95) -> Agreement:
    """Sensitivity, specificity, accuracy and kappa of a judge against human labels, for the run.

    ``tp``..``fn`` of the result are the plain counts of the labelled battles (what the
    confusion matrix shows); the rates are weighted to the run's mix of verdicts.
    """
    counts = sum((s.counts() for s in strata), np.zeros(4)).astype(int)
    tp, fp, tn, fn = (int(x) for x in counts)
    table = weighted_table(strata)
    if isinstance(table, Undefined):
        return Agreement(tp, fp, tn, fn, None, None, None, None, table.reason)
    problems: list[str] = []
    se = sp = None
    if table.shares[TP] + table.shares[FN] > 0:
        se = _proportion_interval(sensitivity, table, tp + fn, confidence)
    else:
        problems.append("Sensitivity is unknown: no labelled battle truly achieved its goal.")
    if table.shares[TN] + table.shares[FP] > 0:
        sp = _proportion_interval(specificity, table, tn + fp, confidence)
    else:
        problems.append("Specificity is unknown: every labelled battle truly achieved its goal.")
    acc = _proportion_interval(accuracy, table, table.labelled, confidence)
    kap = None
    if _expected_agreement(table.shares) >= 1 - 1e-12:
        problems.append("Cohen's kappa is undefined: judge and labels each gave only one and the same verdict.")
    else:
        kap = _wald(kappa, table, confidence, -1.0, 1.0)
    return Agreement(tp, fp, tn, fn, se, sp, acc, kap, " ".join(problems) or None)


def _proportion_interval(
    function: Callable[[FloatArray], float], table: WeightedTable, count: int, confidence: float
) -> Interval:
    """A Wilson interval at the effective sample size p(1 − p) / Var(p).

    At 0% or 100% the delta variance is 0 and says nothing, so the labelled count itself is
    the sample size then: 20 of 20 gives 84–100%, not a point.
    """
    estimate = function(table.shares)
    variance = delta_variance(function, table)
    size = estimate * (1 - estimate) / variance if 0 < estimate < 1 and variance > 0 else float(count)
    return _wilson(estimate, size, confidence)


def _wilson(estimate: float, size: float, confidence: float) -> Interval:
    if size <= 0:
        return Interval(estimate, math.nan, math.nan)
    z = _z(confidence)
    centre = (estimate + z * z / (2 * size)) / (1 + z * z / size)
    half = z * math.sqrt(estimate * (1 - estimate) / size + z * z / (4 * size * size)) / (1 + z * z / size)
    low = 0.0 if estimate <= 0 else max(centre - half, 0.0)
    high = 1.0 if estimate >= 1 else min(centre + half, 1.0)
    return Interval(estimate, low, high)


def _wald(
    function: Callable[[FloatArray], float], table: WeightedTable, confidence: float, low: float, high: float
) -> Interval:
    estimate = function(table.shares)
    half = _z(confidence) * math.sqrt(delta_variance(function, table))
    return Interval(estimate, max(estimate - half, low), min(estimate + half, high))


# --- corrected success rates ---------------------------------------------------------------------


def corrected_rate(
    apparent_successes: int, n: int, strata: Sequence[Stratum], confidence: float = 0.95
) -> CorrectedRate | Undefined:
    """The success rate corrected for the judge's measured error (Rogan–Gladen), delta-method CI.

    ``apparent_successes`` of ``n`` battles (a cell, or the whole run) were called achieved
    by the judge; ``strata`` hold the labelled sample of the whole run. The judge's error
    rates are assumed the same in every cell. The variance adds the binomial variance of
    the apparent rate and the stratified variance of sensitivity and specificity (with
    their covariance), treating the two as independent, as Rogan–Gladen does. Like
    ``stats.rogan_gladen`` it gives ``Undefined`` instead of a number when the correction
    is meaningless; unlike it, it accounts for the verdict-stratified sample.
    """
    if n < 0 or not 0 <= apparent_successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {apparent_successes} of {n}")
    if n == 0:
        return Undefined("No judged battles yet, so there is no success rate to correct.")
    table = weighted_table(strata)
    if isinstance(table, Undefined):
        return table
    problem = _correction_problem(table)
    if problem:
        return Undefined(problem)
    z = _z(confidence)
    informedness = sensitivity(table.shares) + specificity(table.shares) - 1
    spread = math.sqrt(delta_variance(lambda p: sensitivity(p) + specificity(p) - 1, table))
    if informedness - z * spread <= 0:
        return Undefined(
            f"The judge's accuracy is too uncertain to correct the success rate: at {confidence:.0%} confidence "
            "the labelled sample cannot rule out a judge that is no better than chance. Label more battles."
        )
    apparent = apparent_successes / n
    theta = rogan_gladen_theta(apparent, table.shares)
    variance = apparent * (1 - apparent) / n / informedness**2
    variance += delta_variance(lambda p: rogan_gladen_theta(apparent, p), table)
    half = z * math.sqrt(variance)
    return CorrectedRate(
        estimate=_clip(theta),
        low=_clip(theta - half),
        high=_clip(theta + half),
        apparent=wilson_interval(apparent_successes, n, confidence),
        sensitivity=sensitivity(table.shares),
        specificity=specificity(table.shares),
        method="delta",
        confidence=confidence,
    )


def _correction_problem(table: WeightedTable) -> str | None:
    p = table.shares
    if p[TP] + p[FN] == 0:
        return (
            "The judge's sensitivity is unknown: no labelled battle truly achieved its goal. "
            "Label some battles where the goal was reached."
        )
    if p[TN] + p[FP] == 0:
        return (
            "The judge's specificity is unknown: no labelled battle truly held. "
            "Label some battles where the agent held."
        )
    se, sp = sensitivity(p), specificity(p)
    if se + sp <= 1:
        return (
            f"The judge is no better than chance on the labelled sample (sensitivity {se:.0%} + specificity "
            f"{sp:.0%} is not above 100%), so its verdicts cannot be corrected. Improve the judge or its rubric."
        )
    return None


# --- plain-English sentences -------------------------------------------------------------------------


def percent_range(interval: Interval, confidence: float = 0.95) -> str:
    """'31% (95% CI 22–41%)'."""
    return f"{interval.estimate:.0%} ({confidence:.0%} CI {interval.low:.0%}–{interval.high:.0%})"


def corrected_statement(result: CorrectedRate | Undefined, raw: Interval, label: str = "") -> str:
    """One sentence on the corrected rate next to the raw one, or why there is no correction."""
    where = f"{label}: " if label else ""
    if isinstance(result, Undefined):
        text = (
            f"{where}the judge's raw success rate is {percent_range(raw)}; it cannot be corrected yet. {result.reason}"
        )
    else:
        corrected = percent_range(Interval(result.estimate, result.low, result.high), result.confidence)
        if f"{result.estimate:.0%}" == f"{raw.estimate:.0%}":
            text = (
                f"{where}after correcting for the judge's measured error, the success rate is still {corrected}: "
                "the judge's errors do not change it."
            )
        else:
            text = (
                f"{where}after correcting for the judge's measured error, the success rate is {corrected}, "
                f"not the raw {raw.estimate:.0%} ({result.confidence:.0%} CI {raw.low:.0%}–{raw.high:.0%})."
            )
    return text if label else text[0].upper() + text[1:]


def agreement_statement(result: Agreement, judge: str) -> str:
    """What the labels say about the judge, in a sentence or two."""
    if result.n == 0:
        return f"{judge}: no labelled battles yet."
    parts = []
    if result.sensitivity is not None:
        parts.append(
            f"it recognised {percent_range(result.sensitivity)} of the battles where the goal was truly reached "
            "(sensitivity)"
        )
    if result.specificity is not None:
        parts.append(
            f"it correctly cleared {percent_range(result.specificity)} of those where the agent truly held "
            "(specificity)"
        )
    text = f"{judge}: on {result.n} labelled battles"
    text += ", " + " and ".join(parts) + "." if parts else ", its error rates are not known yet."
    if result.message:
        text += " " + result.message
    return text


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return float(sp_stats.norm.ppf(1 - (1 - confidence) / 2))


def _clip(value: float) -> float:
    return min(max(value, 0.0), 1.0)
