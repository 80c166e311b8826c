"""sparring.stats against hand-computed and published values.

Expected numbers are written out (with the arithmetic in comments) rather than recomputed
with the library under test, so a wrong library call or argument shows up as a failure.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparring import stats
from sparring.judging import stats as js
from sparring.stats import CorrectedRate, Interval, Undefined

Z95 = 1.959963984540054


def assert_interval(actual: Interval, estimate: float, low: float, high: float, tol: float = 1e-4) -> None:
    assert actual.estimate == pytest.approx(estimate, abs=tol)
    assert actual.low == pytest.approx(low, abs=tol)
    assert actual.high == pytest.approx(high, abs=tol)


def is_nan_interval(interval: Interval) -> bool:
    return all(math.isnan(x) for x in (interval.estimate, interval.low, interval.high))


# --- Wilson ----------------------------------------------------------------------------------------


def test_wilson_7_of_10_matches_published_interval() -> None:
    # Newcombe (1998), Table I: 7/10 -> 0.3968 to 0.8922.
    assert_interval(stats.wilson_interval(7, 10), 0.7, 0.3968, 0.8922)


def test_wilson_at_the_boundaries() -> None:
    # 0/n: upper bound z²/(n + z²) = 3.8415 / 13.8415 = 0.2775; n/n mirrors it.
    assert_interval(stats.wilson_interval(0, 10), 0.0, 0.0, 0.27753, tol=1e-5)
    assert_interval(stats.wilson_interval(10, 10), 1.0, 0.72247, 1.0, tol=1e-5)
    assert stats.wilson_interval(0, 10).low == 0.0 and stats.wilson_interval(10, 10).high == 1.0


def test_wilson_with_no_battles_is_nan_not_zero() -> None:
    assert is_nan_interval(stats.wilson_interval(0, 0))


def test_wilson_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError, match="successes"):
        stats.wilson_interval(11, 10)


# --- Kaplan–Meier ----------------------------------------------------------------------------------


def test_kaplan_meier_product_limit_with_censoring() -> None:
    # turn:      1  2  2  3  4  5  5
    # achieved:  y  y  n  y  n  y  n
    # k=1: 7 at risk, 1 event   -> S = 6/7
    # k=2: 6 at risk, 1 event   -> S = 6/7 * 5/6 = 5/7      (the censored one still counts at k=2)
    # k=3: 4 at risk, 1 event   -> S = 5/7 * 3/4 = 15/28
    # k=4: 3 at risk, 0 events  -> S = 15/28
    # k=5: 2 at risk, 1 event   -> S = 15/28 * 1/2 = 15/56
    curve = stats.kaplan_meier([1, 2, 2, 3, 4, 5, 5], [True, True, False, True, False, True, False])
    assert curve.turns == (0, 1, 2, 3, 4, 5)
    assert curve.survival == pytest.approx([1, 6 / 7, 5 / 7, 15 / 28, 15 / 28, 15 / 56])
    assert curve.at_risk == (7, 7, 6, 4, 3, 2)
    assert curve.events == (0, 1, 1, 1, 0, 1)
    assert curve.censored == (0, 0, 1, 0, 1, 1)


def test_kaplan_meier_log_log_band_at_first_event() -> None:
    # Greenwood: Var(log S) = d / (n (n - d)) = 1/42 at k=1; on the log-log scale the
    # half-width is z * sqrt(1/42) / |log(6/7)|, and the band is S ** exp(±half-width).
    curve = stats.kaplan_meier([1, 2, 2, 3, 4, 5, 5], [True, True, False, True, False, True, False])
    s = 6 / 7
    half = Z95 * math.sqrt(1 / 42) / abs(math.log(s))
    assert curve.low[1] == pytest.approx(s ** math.exp(half))
    assert curve.high[1] == pytest.approx(s ** math.exp(-half))
    assert curve.low[1] == pytest.approx(0.33405, abs=1e-4)
    assert curve.high[1] == pytest.approx(0.97856, abs=1e-4)
    assert curve.low[0] == curve.high[0] == 1.0
    assert all(lo <= s <= hi for lo, s, hi in zip(curve.low, curve.survival, curve.high, strict=True))


def test_kaplan_meier_empty_and_all_censored() -> None:
    empty = stats.kaplan_meier([], [])
    assert empty.turns == (0,)
    assert empty.survival == (1.0,)
    assert empty.at_risk == (0,)
    assert math.isnan(empty.low[0])

    held = stats.kaplan_meier([2, 3], [False, False])
    assert held.survival == (1.0, 1.0, 1.0, 1.0)
    assert held.at_risk == (2, 2, 2, 1)
    assert held.censored == (0, 0, 1, 1)


def test_kaplan_meier_everyone_falls() -> None:
    curve = stats.kaplan_meier([1, 1], [True, True])
    assert curve.survival == (1.0, 0.0)
    assert math.isnan(curve.low[1])  # no variance at S = 0: no band rather than a fake one


def test_kaplan_meier_rows_are_ready_for_a_dataframe() -> None:
    rows = stats.kaplan_meier([1, 2], [True, False]).rows()
    assert len(rows) == 3
    assert set(rows[1]) == {"turn", "survival", "low", "high", "at_risk", "events", "censored"}
    assert (rows[1]["turn"], rows[1]["survival"], rows[1]["at_risk"], rows[1]["events"]) == (1, 0.5, 2, 1)


def test_kaplan_meier_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="length"):
        stats.kaplan_meier([1, 2], [True])
    with pytest.raises(ValueError, match="turn 0"):
        stats.kaplan_meier([0], [True])


# --- descriptive summaries -------------------------------------------------------------------------


def test_turns_summary() -> None:
    summary = stats.turns_summary([3, 1, 4, 1, 5, 9, 2, 6])
    # sorted: 1 1 2 3 4 5 6 9; median (3+4)/2; p90 at rank 0.9*7 = 6.3 -> 6 + 0.3*(9-6) = 6.9
    assert (summary.count, summary.median, summary.mean, summary.min, summary.max) == (8, 3.5, 3.875, 1, 9)
    assert summary.p90 == pytest.approx(6.9)


def test_turns_summary_empty() -> None:
    summary = stats.turns_summary([])
    assert summary.count == 0
    assert summary.min is None and summary.max is None
    assert math.isnan(summary.median) and math.isnan(summary.p90) and math.isnan(summary.mean)


def test_percentile_and_latency_summary_ignore_nan_and_handle_empty() -> None:
    assert stats.percentile([1.0, 2.0, 3.0, float("nan")], 50) == 2.0
    assert math.isnan(stats.percentile([], 50))
    assert stats.latency_summary([100.0, 200.0, 300.0, float("nan")]) == {
        "mean": 200.0,
        "p50": 200.0,
        "p95": pytest.approx(290.0),  # 200 + 0.9 * (300 - 200)
        "max": 300.0,
    }
    assert all(math.isnan(v) for v in stats.latency_summary([]).values())


# --- comparing two cells ---------------------------------------------------------------------------


def test_fisher_exact_on_the_tea_tasting_table() -> None:
    # Fisher's lady tasting tea, [[3, 1], [1, 3]]: two-sided p = 34/70 = 0.4857.
    result = stats.compare_proportions(3, 4, 1, 4)
    assert result.method == "Fisher's exact test"
    assert result.p_value == pytest.approx(34 / 70)
    assert result.difference == pytest.approx(0.5)
    assert not result.significant
    assert "not statistically significant at the 5% level (p = 0.49, Fisher's exact test)" in result.statement


def test_two_proportion_z_test() -> None:
    # 45/100 vs 30/100: pooled p = 0.375, SE = sqrt(0.375 * 0.625 * (1/100 + 1/100)) = 0.068465,
    # z = 0.15 / 0.068465 = 2.1909, two-sided p = 0.02846.
    result = stats.compare_proportions(45, 100, 30, 100)
    assert result.method == "two-proportion z-test"
    assert result.p_value == pytest.approx(0.02846, abs=1e-5)
    assert result.difference == pytest.approx(0.15)
    assert result.low < 0.15 < result.high
    assert result.significant
    assert result.statement == (
        "The adversary reached the goal more often against cell A than against cell B (45% vs 30%, difference "
        "+15 points, 95% CI +2 to +28); "
        "this difference is statistically significant (p = 0.028, two-proportion z-test)."
    )


def test_newcombe_interval_for_the_difference() -> None:
    # Newcombe (1998), Table II example (56/70 vs 48/80): method 10 gives 0.0524 to 0.3339.
    result = stats.compare_proportions(56, 70, 48, 80)
    assert result.low == pytest.approx(0.0524, abs=1e-4)
    assert result.high == pytest.approx(0.3339, abs=1e-4)


def test_compare_proportions_uses_labels_and_direction() -> None:
    result = stats.compare_proportions(10, 50, 30, 50, label1="gpt-small", label2="gpt-large")
    # The sentence names who succeeded (the adversary, not the agent); labels are names (model ids),
    # kept as written.
    assert result.statement.startswith(
        "The adversary reached the goal less often against gpt-small than against gpt-large (20% vs 60%, difference -40"
    )
    upper = stats.compare_proportions(10, 50, 30, 50, label1="sim/agent?concede=0.05", label2="GPT-X")
    assert "against sim/agent?concede=0.05 than against GPT-X" in upper.statement
    assert "succeeded" not in upper.statement


def test_compare_proportions_with_an_empty_cell_explains_instead_of_guessing() -> None:
    result = stats.compare_proportions(3, 4, 0, 0)
    assert math.isnan(result.p_value) and math.isnan(result.difference)
    assert result.method == "not computed"
    assert result.statement == "Cannot compare cell A with cell B: cell B has no finished battles yet."
    both_empty = stats.compare_proportions(0, 0, 0, 0)
    assert both_empty.statement == "Cannot compare cell A with cell B: cell A and cell B have no finished battles yet."


def test_mcnemar_exact_matches_the_binomial_test() -> None:
    # b = 1 (only A succeeded), c = 8 (only B succeeded): p = 2 * P(X <= 1; n=9, p=.5) = 2 * 10/512.
    pairs = [(True, True)] * 5 + [(True, False)] * 1 + [(False, True)] * 8 + [(False, False)] * 3
    result = stats.compare_paired(pairs)
    assert result.method == "McNemar (exact)"
    assert result.p_value == pytest.approx(0.0390625)
    assert result.difference == pytest.approx((1 - 8) / 17)
    assert (result.rate1, result.rate2) == pytest.approx((6 / 17, 13 / 17))
    assert "less often against cell A than against cell B on the same 17 adversary seeds" in result.statement


def test_mcnemar_chi_square_with_many_discordant_pairs() -> None:
    # b = 20, c = 10: corrected chi² = (|20 - 10| - 1)² / 30 = 2.7, p = 0.1003.
    result = stats.compare_paired([(True, False)] * 20 + [(False, True)] * 10 + [(True, True)] * 30)
    assert result.method == "McNemar (chi-square)"
    assert result.p_value == pytest.approx(0.10035, abs=1e-4)
    # Wald: (20 - 10)/60 ± z * sqrt(30 - 100/60) / 60
    half = Z95 * math.sqrt(30 - 100 / 60) / 60
    assert (result.low, result.high) == pytest.approx((1 / 6 - half, 1 / 6 + half))


def test_compare_paired_edge_cases() -> None:
    assert stats.compare_paired([]).method == "not computed"
    concordant = stats.compare_paired([(True, True), (False, False)])
    assert concordant.p_value == 1.0
    assert concordant.statement.startswith(
        "The adversary reached the goal about equally often against cell A and cell B"
    )


@pytest.mark.parametrize(
    ("p", "text"), [(0.41, "p = 0.41"), (0.0390625, "p = 0.039"), (0.00031, "p = 0.00031"), (1e-7, "p < 0.0001")]
)
def test_format_p(p: float, text: str) -> None:
    assert stats.format_p(p) == text


# --- judge quality ---------------------------------------------------------------------------------

# 50 labelled battles: judge yes & truth yes 20, judge no & truth yes 5, judge yes & truth no 10, both no 15.
JUDGE = [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15
TRUTH = [True] * 25 + [False] * 25


def test_cohens_kappa_hand_computed() -> None:
    # p_o = 35/50 = 0.7; marginals judge-yes 30/50, truth-yes 25/50: p_e = 0.6*0.5 + 0.4*0.5 = 0.5;
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
    # Fleiss, Cohen & Everitt (1969) large-sample variance, p_ij as shares, κ = 0.4:
    #   diagonal   0.4 * (1 - (0.5 + 0.6) * 0.6)² + 0.3 * (1 - (0.5 + 0.4) * 0.6)² = 0.10972
    #   off-diag   0.6² * (0.1 * (0.6 + 0.5)² + 0.2 * (0.4 + 0.5)²)               = 0.10188
    #   minus      (0.4 - 0.5 * 0.6)²                                               = 0.01
    #   Var = 0.2016 / (50 * (1 - 0.5)²) = 0.016128, SE = 0.12700
    kappa = stats.cohens_kappa(JUDGE, TRUTH)
    se = math.sqrt(0.016128)
    assert_interval(kappa, 0.4, 0.4 - Z95 * se, 0.4 + Z95 * se)
    assert_interval(kappa, 0.4, 0.1511, 0.6489)


def test_cohens_kappa_with_string_labels_and_undefined_case() -> None:
    a = ["safe", "unsafe", "safe", "safe"]
    b = ["safe", "unsafe", "unsafe", "safe"]
    # p_o = 3/4; p_e = (3/4)(2/4) + (1/4)(2/4) = 1/2; kappa = 0.5
    assert stats.cohens_kappa(a, b).estimate == pytest.approx(0.5)
    assert is_nan_interval(stats.cohens_kappa(["safe"] * 3, ["safe"] * 3))
    assert is_nan_interval(stats.cohens_kappa([], []))


def test_agreement_counts_rates_and_kappa() -> None:
    result = stats.agreement(JUDGE, TRUTH)
    assert (result.tp, result.fn, result.fp, result.tn) == (20, 5, 10, 15)
    assert result.n == 50
    assert result.sensitivity == stats.wilson_interval(20, 25)
    assert result.specificity == stats.wilson_interval(15, 25)
    assert result.accuracy == stats.wilson_interval(35, 50)
    assert result.kappa is not None and result.kappa.estimate == pytest.approx(0.4)
    assert result.message is None


def test_agreement_degenerate_cases_say_why() -> None:
    only_successes = stats.agreement([True, True, False], [True, True, True])
    assert only_successes.specificity is None
    assert only_successes.sensitivity is not None
    assert only_successes.message is not None and "Specificity is undefined" in only_successes.message

    constant = stats.agreement([False, False], [False, False])
    assert constant.sensitivity is None and constant.kappa is None
    assert constant.message is not None and "Sensitivity is undefined" in constant.message

    nothing = stats.agreement([], [])
    assert nothing.accuracy is None and nothing.message == "No labelled battles yet."


# --- Rogan–Gladen ----------------------------------------------------------------------------------
# One source computes the correction: ``sparring.judging.stats.corrected_rate``. With one
# stratum (a labelled sample not stratified by verdict) it is the textbook estimator.


def corrected(result: CorrectedRate | Undefined) -> CorrectedRate:
    assert isinstance(result, CorrectedRate), result
    return result


def rogan_gladen(
    apparent: int, n: int, sensitivity_counts: tuple[int, int], specificity_counts: tuple[int, int]
) -> CorrectedRate | Undefined:
    """The correction from (true positives, positives) and (true negatives, negatives)."""
    (tp, positives), (tn, negatives) = sensitivity_counts, specificity_counts
    stratum = js.Stratum(positives + negatives, tp=tp, fp=negatives - tn, tn=tn, fn=positives - tp)
    return js.corrected_rate(apparent, n, [stratum])


def test_rogan_gladen_point_estimate_and_delta_interval() -> None:
    # θ = (0.30 + 0.9 - 1) / (0.8 + 0.9 - 1) = 0.2 / 0.7 = 0.285714
    # Var = (0.3*0.7/100 + θ² * 0.8*0.2/100 + (1-θ)² * 0.9*0.1/100) / 0.7²
    #     = (0.0021 + 0.00013061 + 0.00045918) / 0.49 = 0.0054894, SE = 0.074091
    result = corrected(rogan_gladen(30, 100, (80, 100), (90, 100)))
    assert result.method == "delta"
    assert result.estimate == pytest.approx(0.2 / 0.7)
    assert (result.sensitivity, result.specificity) == pytest.approx((0.8, 0.9))
    se = 0.074091
    assert result.low == pytest.approx(0.2 / 0.7 - Z95 * se, abs=1e-4)  # 0.1405
    assert result.high == pytest.approx(0.2 / 0.7 + Z95 * se, abs=1e-4)  # 0.4309


def test_rogan_gladen_interval_contains_estimate_and_is_wider_than_naive() -> None:
    result = corrected(rogan_gladen(30, 100, (80, 100), (90, 100)))
    naive = stats.wilson_interval(30, 100)
    assert result.apparent == naive
    assert result.low <= result.estimate <= result.high
    assert result.high - result.low > naive.high - naive.low


def test_rogan_gladen_clips_to_the_unit_interval() -> None:
    # apparent 5% is below the false-positive rate 10%: the raw estimate is negative, clipped to 0.
    result = corrected(rogan_gladen(5, 100, (80, 100), (90, 100)))
    assert result.estimate == 0.0 and result.low == 0.0 and result.high > 0.0


@pytest.mark.parametrize(
    ("n", "sensitivity_counts", "specificity_counts", "phrase"),
    [
        (100, (50, 100), (50, 100), "no better than chance"),
        (100, (40, 100), (55, 100), "no better than chance"),
        (100, (0, 0), (90, 100), "sensitivity is unknown"),
        (100, (80, 100), (0, 0), "specificity is unknown"),
        (0, (80, 100), (90, 100), "No judged battles"),
    ],
)
def test_rogan_gladen_undefined_cases(
    n: int, sensitivity_counts: tuple[int, int], specificity_counts: tuple[int, int], phrase: str
) -> None:
    result = rogan_gladen(0, n, sensitivity_counts, specificity_counts)
    assert isinstance(result, Undefined)
    assert phrase in result.reason


def test_rogan_gladen_refuses_a_judge_too_uncertain_to_correct() -> None:
    # Se + Sp = 1.2 on only 5 + 5 labels: a judge no better than chance is well within the noise.
    result = rogan_gladen(30, 100, (3, 5), (3, 5))
    assert isinstance(result, Undefined) and "too uncertain" in result.reason


def simulate(
    rng: np.random.Generator, rate: float, se: float, sp: float
) -> tuple[int, tuple[int, int], tuple[int, int]]:
    """2000 judged battles plus a labelled sample of 200 true successes and 200 true holds."""
    truth = rng.random(2000) < rate
    verdict = np.where(truth, rng.random(2000) < se, rng.random(2000) >= sp)
    return int(verdict.sum()), (int(rng.binomial(200, se)), 200), (int(rng.binomial(200, sp)), 200)


# Sp is 0.8, not 0.9: with Se 0.85 and Sp 0.9 the judge's expected rate at a true 40% is
# 0.85 * 0.4 + 0.1 * 0.6 = 0.40 exactly, so the raw rate would not be biased at all.
# With Sp 0.8 it is 0.85 * 0.4 + 0.2 * 0.6 = 0.46.
TRUE_RATE, SE, SP = 0.4, 0.85, 0.8


def test_corrected_interval_covers_the_truth_where_the_raw_one_does_not() -> None:
    apparent, sens, spec = simulate(np.random.default_rng(2024), TRUE_RATE, SE, SP)
    raw = stats.wilson_interval(apparent, 2000)
    assert not raw.low <= TRUE_RATE <= raw.high
    result = corrected(rogan_gladen(apparent, 2000, sens, spec))
    assert result.low <= TRUE_RATE <= result.high, result


def test_delta_interval_coverage_over_repeated_simulations() -> None:
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(400):
        apparent, sens, spec = simulate(rng, TRUE_RATE, SE, SP)
        result = corrected(rogan_gladen(apparent, 2000, sens, spec))
        covered += result.low <= TRUE_RATE <= result.high
    assert 0.92 <= covered / 400 <= 0.98
