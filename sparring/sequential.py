"""Anytime-valid intervals for a success rate, and the two stopping rules built on them.

A Wilson interval is valid for a sample size fixed in advance. Look at it after every battle and
stop as soon as it looks good, and the error rate inflates: with enough looks, a cell whose true
rate sits exactly on the threshold is almost surely declared "below" or "above" at some point. A
*confidence sequence* is a sequence of intervals, one after each battle, that contains the true
rate at every battle at once with probability at least the confidence level, so the interval at
any stopping time (a halfwidth reached, a threshold cleared, a cap hit) keeps its coverage,
however the stopping time was chosen from the data seen so far.

The construction is Robbins' mixture martingale for Bernoulli outcomes (the conjugate
beta-binomial mixture): with a Beta(a, b) prior over rates, the ratio

    M_n(p) = B(a + s, b + f) / B(a, b) / (p^s (1 - p)^f)        (s successes, f failures)

is a nonnegative martingale with M_0 = 1 when p is the true rate, so by Ville's inequality it
ever reaches 1/alpha with probability at most alpha, and {p : M_n(p) < 1/alpha} is a
(1 - alpha) confidence sequence. References: H. Robbins, "Statistical methods related to the law
of the iterated logarithm", Ann. Math. Statist. 41 (1970); S. R. Howard, A. Ramdas,
J. McAuliffe, J. Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences",
Ann. Statist. 49 (2021), on conjugate mixtures such as this beta-binomial one. Equivalently,
M_n(p) = prior(p) / posterior_n(p), the prior-to-posterior ratio.

Why this one rather than the somewhat tighter betting sequences of Waudby-Smith & Ramdas
("Estimating means of bounded random variables by betting", JRSS-B, 2024): it depends on the
data only through the counts, so the state is two integers the store already holds (nothing to
lose when a worker dies or Redis is flushed). The Jeffreys prior Beta(1/2, 1/2) makes it
symmetric in successes and failures and about equally tight at every rate; the interval is
roughly the Wilson interval with z^2 = 2 log(1/alpha) + log(n pi / 2) instead of 1.96^2, the
price of being allowed to look after every battle.

The guarantee needs outcomes fed in an order that does not depend on them. Successful attacks
end sooner, so parallel battles counted as they finish would over-represent successes: feed a
cell's outcomes in replicate order (its longest run of finished replicates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import elementwise
from scipy.special import betaln, xlog1py, xlogy

Decision = Literal["below", "above"]
FloatArray = npt.NDArray[np.float64]
Counts = int | npt.ArrayLike

PRIOR = (0.5, 0.5)  # Jeffreys: symmetric, so the upper bound is the lower bound of the swapped counts
_TINY = float(np.finfo(np.float64).tiny)  # a bracket end above 0 where log() is finite
_TOLERANCES = {"xatol": 1e-12, "xrtol": 1e-10}


@dataclass(frozen=True, slots=True)
class ConfidenceSequence:
    """The running state of one cell: its counts so far and the confidence level.

    Undecided and infrastructure-failed battles are not outcomes and must not be passed in.
    Update with ``observe`` (one battle) or ``add`` (a batch); both return a new record.
    """

    successes: int = 0
    failures: int = 0
    confidence: float = 0.95

    def __post_init__(self) -> None:
        _check_confidence(self.confidence)
        if self.successes < 0 or self.failures < 0:
            raise ValueError(f"counts must be >= 0, got {self.successes} successes and {self.failures} failures")

    @property
    def n(self) -> int:
        return self.successes + self.failures

    @property
    def estimate(self) -> float:
        """The observed rate; nan before the first battle."""
        return self.successes / self.n if self.n else float("nan")

    def observe(self, success: bool) -> ConfidenceSequence:
        """The state after one more decided battle (success: the adversary achieved its goal)."""
        return self.add(int(success), int(not success))

    def add(self, successes: int, failures: int) -> ConfidenceSequence:
        """The state after a batch of battles."""
        return replace(self, successes=self.successes + successes, failures=self.failures + failures)

    def bounds(self) -> tuple[float, float]:
        """(low, high): the interval after the battles seen so far; (0, 1) before the first."""
        low, high = sequence_bounds(self.successes, self.failures, self.confidence)
        return float(low), float(high)

    def halfwidth(self) -> float:
        """Half the interval's width: the W of ``--stop-at-halfwidth W``."""
        low, high = self.bounds()
        return (high - low) / 2


def stop_at_halfwidth(state: ConfidenceSequence, halfwidth: float) -> bool:
    """True once the interval is at most ±halfwidth wide (``--stop-at-halfwidth W``)."""
    if not 0 < halfwidth <= 0.5:
        raise ValueError(f"the halfwidth must be above 0 and at most 0.5, got {halfwidth}")
    return state.halfwidth() <= halfwidth


def stop_at_threshold(state: ConfidenceSequence, threshold: float) -> Decision | None:
    """The decision once the interval lies wholly below or wholly above the threshold, else None.

    Decided on the martingale at the threshold itself rather than on the rounded bounds, so the
    answer is exact: the threshold is outside the interval exactly when M_n(threshold) >= 1/alpha.
    """
    if not 0 < threshold < 1:
        raise ValueError(f"the threshold must be strictly between 0 and 1, got {threshold}")
    log_evidence = float(log_evidence_against(threshold, state.successes, state.failures))
    if log_evidence < -math.log(1 - state.confidence):
        return None
    return "below" if state.estimate < threshold else "above"


def log_evidence_against(rate: float | FloatArray, successes: Counts, failures: Counts) -> FloatArray:
    """log M_n(rate): the log of the mixture martingale, the evidence the counts hold against ``rate``.

    Vectorised over numpy arrays; a rate is excluded at level alpha when this is >= log(1/alpha).
    """
    s, f = _counts(successes, failures)
    p = np.asarray(rate, dtype=np.float64)
    a, b = PRIOR
    log_likelihood = xlogy(s, p) + xlog1py(f, -p)  # 0 * log(0) is 0 here: a rate of 0 or 1 is allowed
    return np.asarray(betaln(a + s, b + f) - betaln(a, b) - log_likelihood, dtype=np.float64)


def sequence_bounds(successes: Counts, failures: Counts, confidence: float = 0.95) -> tuple[FloatArray, FloatArray]:
    """Lower and upper bounds of the confidence sequence, elementwise over arrays of counts.

    Vectorised so a simulation can bound every (successes, failures) pair it visits in one call.
    """
    _check_confidence(confidence)
    s, f = _counts(successes, failures)
    low = _lower_bounds(s, f, confidence)
    high = 1.0 - _lower_bounds(f, s, confidence)  # the Jeffreys prior is symmetric in p and 1 - p
    return low, high


def _lower_bounds(s: FloatArray, f: FloatArray, confidence: float) -> FloatArray:
    """The lower root of log M_n(p) = log(1/alpha), found between 0 and the observed rate.

    log M_n is convex in p with its minimum (below 0, since the mixture never beats the maximum
    likelihood) at s / n, so on (0, s/n] there is exactly one root; with no successes the lower
    bound is 0.
    """
    low = np.zeros(np.broadcast(s, f).shape)
    s, f = np.broadcast_to(s, low.shape), np.broadcast_to(f, low.shape)
    has_root = s > 0
    if not has_root.any():
        return low
    s_r, f_r = s[has_root], f[has_root]
    level = -math.log(1 - confidence)

    def excess(p: FloatArray, s_: FloatArray, f_: FloatArray) -> FloatArray:
        return log_evidence_against(p, s_, f_) - level

    found = elementwise.find_root(
        excess, (np.full(s_r.shape, _TINY), s_r / (s_r + f_r)), args=(s_r, f_r), tolerances=_TOLERANCES
    )
    if not np.all(found.success):  # cannot happen with a valid bracket; a wrong bound must not pass silently
        raise ArithmeticError("the confidence-sequence bound did not converge")
    low[has_root] = found.x
    return low


def _counts(successes: Counts, failures: Counts) -> tuple[FloatArray, FloatArray]:
    s = np.asarray(successes, dtype=np.float64)
    f = np.asarray(failures, dtype=np.float64)
    if (s < 0).any() or (f < 0).any():
        raise ValueError("counts must be >= 0")
    return s, f


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
