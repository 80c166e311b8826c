"""Judge quality from a verdict-stratified labelled sample, against hand-computed values."""

from __future__ import annotations

import math

import pytest

from sparring import stats
from sparring.judging import stats as js

Z95 = 1.959963984540054

# 200 battles: the judge called 180 achieved and 20 not; 20 of each were labelled.
# Of the 20 "achieved" ones, 15 truly were (PPV 0.75); of the 20 others, 4 truly were (FOR 0.2).
SKEWED = [
    js.Stratum(180, tp=15, fp=5, name="called achieved"),
    js.Stratum(20, tn=16, fn=4, name="called not achieved"),
]


def test_a_stratified_sample_is_weighted_back_to_the_run() -> None:
    # Shares of the run: tp = 0.9 * 15/20 = 0.675, fp = 0.225, tn = 0.1 * 16/20 = 0.08, fn = 0.02.
    result = js.agreement(SKEWED)
    assert (result.tp, result.fp, result.tn, result.fn) == (15, 5, 16, 4)  # the labelled counts
    assert result.sensitivity is not None and result.specificity is not None and result.accuracy is not None
    assert result.sensitivity.estimate == pytest.approx(0.675 / 0.695)  # 97%, not the naive 15/19 = 79%
    assert result.specificity.estimate == pytest.approx(0.08 / 0.305)  # 26%, not the naive 16/21 = 76%
    assert result.accuracy.estimate == pytest.approx(0.755)
    for interval in (result.sensitivity, result.specificity, result.accuracy):
        assert 0 <= interval.low < interval.estimate < interval.high <= 1


def test_one_stratum_is_a_simple_random_sample_and_matches_stats() -> None:
    """With a single stratum the weights vanish: the numbers are exactly ``stats``'s."""
    sample = [js.Stratum(100, tp=30, fp=10, tn=50, fn=10)]
    judge = [True] * 40 + [False] * 60
    truth = [True] * 30 + [False] * 10 + [False] * 50 + [True] * 10
    ours, theirs = js.agreement(sample), stats.agreement(judge, truth)
    for name in ("sensitivity", "specificity", "accuracy", "kappa"):
        a, b = getattr(ours, name), getattr(theirs, name)
        assert a.estimate == pytest.approx(b.estimate, abs=1e-9), name
        assert a.low == pytest.approx(b.low, abs=1e-7) and a.high == pytest.approx(b.high, abs=1e-7), name

    counts = [js.Stratum(200, tp=80, fp=10, tn=90, fn=20)]
    corrected = js.corrected_rate(30, 100, counts)
    # The textbook Rogan–Gladen with Se 0.8 and Sp 0.9 from 100 + 100 labels:
    # θ = 0.2 / 0.7, Var = (0.3·0.7/100 + θ²·0.8·0.2/100 + (1 − θ)²·0.9·0.1/100) / 0.7².
    theta = 0.2 / 0.7
    half = Z95 * math.sqrt((0.3 * 0.7 / 100 + theta**2 * 0.16 / 100 + (1 - theta) ** 2 * 0.09 / 100) / 0.49)
    assert isinstance(corrected, stats.CorrectedRate)
    assert corrected.estimate == pytest.approx(theta)
    assert corrected.low == pytest.approx(theta - half, abs=1e-7)
    assert corrected.high == pytest.approx(theta + half, abs=1e-7)


def test_corrected_rate_of_the_whole_run_is_the_stratified_estimate() -> None:
    """For the run's own raw rate (180/200), Rogan–Gladen gives back q·PPV + (1 − q)·FOR.

    θ = 0.9 · 0.75 + 0.1 · 0.2 = 0.695. Its variance: the raw rate's binomial term over
    (Se + Sp − 1)², plus the stratified terms q²·PPV(1 − PPV)/20 + (1 − q)²·FOR(1 − FOR)/20.
    """
    result = js.corrected_rate(180, 200, SKEWED)
    assert isinstance(result, stats.CorrectedRate)
    assert result.estimate == pytest.approx(0.695)
    informedness = 0.675 / 0.695 + 0.08 / 0.305 - 1
    variance = 0.9 * 0.1 / 200 / informedness**2 + 0.81 * 0.75 * 0.25 / 20 + 0.01 * 0.2 * 0.8 / 20
    half = Z95 * math.sqrt(variance)  # 0.2473
    assert result.low == pytest.approx(0.695 - half, abs=1e-6)
    assert result.high == pytest.approx(0.695 + half, abs=1e-6)
    assert result.method == "delta"
    assert result.apparent.estimate == pytest.approx(0.9)
    # The naive correction with the plain labelled counts would be far off.
    naive = (0.9 + 16 / 21 - 1) / (15 / 19 + 16 / 21 - 1)  # Se 15/19, Sp 16/21 read off the sample
    assert naive > 0.99


def test_a_cell_is_corrected_with_the_run_wide_error_rates() -> None:
    # Sensitivity 0.971223, specificity 0.262295: θ = (0.5 + Sp − 1) / (Se + Sp − 1) < 0, clipped to 0.
    low_cell = js.corrected_rate(50, 100, SKEWED)
    assert isinstance(low_cell, stats.CorrectedRate)
    assert low_cell.estimate == 0.0 and low_cell.low == 0.0
    high_cell = js.corrected_rate(95, 100, SKEWED)
    assert isinstance(high_cell, stats.CorrectedRate)
    se, sp = 0.675 / 0.695, 0.08 / 0.305
    assert high_cell.estimate == pytest.approx((0.95 + sp - 1) / (se + sp - 1))


@pytest.mark.parametrize(
    ("strata", "reason"),
    [
        ([js.Stratum(10, name="called achieved"), js.Stratum(10, name="called not achieved")], "No labelled battles"),
        (
            [js.Stratum(10, tp=3, fp=2, name="called achieved"), js.Stratum(10, name="called not achieved")],
            "the judge called not achieved has a definite label",
        ),
        ([js.Stratum(10, fp=3, name="a"), js.Stratum(10, tn=3, name="b")], "sensitivity is unknown"),
        ([js.Stratum(10, tp=3, name="a"), js.Stratum(10, fn=3, name="b")], "specificity is unknown"),
        ([js.Stratum(10, tp=2, fp=8, name="a"), js.Stratum(10, tn=2, fn=8, name="b")], "no better than chance"),
        ([js.Stratum(10, tp=2, fp=1, name="a"), js.Stratum(10, tn=2, fn=1, name="b")], "too uncertain"),
        ([], "No judged battles"),
    ],
)
def test_degenerate_corrections_give_a_reason_not_a_number(strata: list[js.Stratum], reason: str) -> None:
    result = js.corrected_rate(5, 20, strata)
    assert isinstance(result, stats.Undefined)
    assert reason in result.reason


def test_no_battles_in_the_cell_is_a_reason_too() -> None:
    result = js.corrected_rate(0, 0, SKEWED)
    assert isinstance(result, stats.Undefined) and "No judged battles yet" in result.reason
    with pytest.raises(ValueError):
        js.corrected_rate(5, 3, SKEWED)


def test_degenerate_agreement_says_why() -> None:
    nothing = js.agreement([js.Stratum(10), js.Stratum(5)])
    assert nothing.sensitivity is None and nothing.kappa is None and nothing.message
    only_successes = js.agreement([js.Stratum(10, tp=4), js.Stratum(5, fn=2)])
    assert only_successes.specificity is None and only_successes.sensitivity is not None
    assert only_successes.message and "Specificity is unknown" in only_successes.message
    constant = js.agreement([js.Stratum(10, tn=5)])
    assert constant.kappa is None and constant.message and "kappa is undefined" in constant.message
    perfect = js.agreement([js.Stratum(10, tp=20), js.Stratum(10, tn=20)])
    assert perfect.sensitivity is not None
    # 20 of 20: an interval from the labelled count, not a point.
    assert perfect.sensitivity.estimate == 1.0 and perfect.sensitivity.low == pytest.approx(0.8389, abs=1e-4)


def test_statements_read_plainly() -> None:
    raw = stats.Interval(0.38, 0.33, 0.43)
    corrected = stats.CorrectedRate(0.31, 0.22, 0.41, raw, 0.8, 0.9, "delta")
    assert js.corrected_statement(corrected, raw) == (
        "After correcting for the judge's measured error, the success rate is 31% (95% CI 22%–41%), "
        "not the raw 38% (95% CI 33%–43%)."
    )
    undefined = js.corrected_statement(stats.Undefined("Label more battles."), raw, "agent A")
    assert undefined == (
        "agent A: the judge's raw success rate is 38% (95% CI 33%–43%); it cannot be corrected yet. Label more battles."
    )
    text = js.agreement_statement(js.agreement(SKEWED), "original judge")
    assert text.startswith("original judge: on 40 labelled battles, it recognised 97% (95% CI")
    assert "(sensitivity)" in text and "(specificity)" in text
