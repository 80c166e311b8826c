"""The store's Wilson macros agree with the Python Wilson interval and stay inside [0, 1]."""

from __future__ import annotations

import pytest

from sparring import stats
from sparring.runtime import get_runtime
from tests.helpers import rows


@pytest.mark.parametrize(("successes", "n"), [(0, 1), (0, 30), (1, 30), (15, 30), (29, 30), (30, 30), (7, 7)])
def test_the_macros_match_python_and_never_leave_zero_to_one(successes: int, n: int) -> None:
    get_runtime().store.migrate()
    ((low, high),) = rows(
        "SELECT wilson_low(?::DOUBLE, ?::DOUBLE), wilson_high(?::DOUBLE, ?::DOUBLE)", [successes, n, successes, n]
    )
    assert 0.0 <= low <= high <= 1.0
    expected = stats.wilson_interval(successes, n)
    assert low == pytest.approx(expected.low, abs=1e-12) and high == pytest.approx(expected.high, abs=1e-12)
