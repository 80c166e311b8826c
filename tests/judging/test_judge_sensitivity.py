"""Judge sensitivity (issue 21): a run judged again by two judges of different error rates.

The transcripts are written with a known truth (``builders``); the re-judges are the sim judge
without error and one that calls a held battle achieved half the time at each agent message.
The accurate judge orders the cells as the original does; the noisy one lifts every cell
towards 100%, so "agent 1 is worse than agent 0" holds under the first and not under the second.
"""

from __future__ import annotations

import pytest

from sparring import charts, judge_sensitivity, judging
from sparring.render import inert_markdown
from sparring.report import run_stats
from sparring.runtime import get_runtime
from sparring.store import reads
from tests.judging.builders import Planned, write_run
from tests.ui.apptest import open_page

ACCURATE, NOISY = "sim/judge?fpr=0", "sim/judge?fpr=0.5"
TRUE_SUCCESSES = {0: 2, 1: 20, 2: 34}  # of 40 battles per cell


@pytest.fixture
def judged_run() -> str:
    runtime = get_runtime()
    runtime.store.migrate()
    battles = [
        Planned(cell, judge_said=i < TRUE_SUCCESSES[cell], truth=i < TRUE_SUCCESSES[cell])
        for cell in TRUE_SUCCESSES
        for i in range(40)
    ]
    run_id, _ = write_run(runtime.store, battles, cells=3)
    for model in (ACCURATE, NOISY):
        record = judging.plan_rejudge(runtime.store, {"run_id": run_id, "judge_model": model})
        runtime.sink.write([record])
        result = judging.rejudge(record.judge_run_id, store=runtime.store, sink=runtime.sink, gateway=runtime.gateway)
        assert result.status == "finished"
    return run_id


def test_the_view_gives_each_cells_rate_under_each_judge_and_the_spread(judged_run: str) -> None:
    rows = reads.cells_by_judge(get_runtime().store, judged_run)
    assert len(rows) == 3 * 3  # three cells, three judges
    by = {(row["cell_key"], row["judge_model"], row["judge_id"] == "original"): row for row in rows}
    for cell, successes in TRUE_SUCCESSES.items():
        original = by[(f"cell{cell}", "sim/judge", True)]
        accurate = by[(f"cell{cell}", ACCURATE, False)]
        noisy = by[(f"cell{cell}", NOISY, False)]
        assert original["rate"] == accurate["rate"] == successes / 40  # the error-free judge finds the truth
        assert noisy["rate"] > accurate["rate"]  # false positives only add successes
        assert original["spread"] == pytest.approx(noisy["rate"] - accurate["rate"])
        assert original["judges"] == 3 and original["n"] == 40


def test_the_accurate_judge_keeps_the_ordering_and_the_noisy_one_changes_a_conclusion(judged_run: str) -> None:
    stats = run_stats(get_runtime().store, judged_run)
    found = stats["judges"]
    orderings = {o["judge"]: o for o in found["orderings"]}
    assert orderings[ACCURATE]["kendall_tau"] == pytest.approx(1.0) and orderings[ACCURATE]["flipped_pairs"] == []
    assert found["judges"]["original"] == "sim/judge (original)"
    # Under the noisy judge, held battles read as breaches: cells 0 and 1 are no longer apart.
    assert (
        f"agent 1 is worse than agent 0 under judge sim/judge (original) and {ACCURATE} but not under judge {NOISY}."
        in found["changed_conclusions"]
    )
    assert all(NOISY in sentence.split("but not under judge")[1] for sentence in found["changed_conclusions"])
    spreads = {cell["label"]: cell["spread"] for cell in found["cells"]}
    assert spreads["agent 0"] > 0.5  # 5% under the accurate judges, most of the cell under the noisy one


def test_the_run_page_says_which_conclusion_the_judge_changes_and_charts_the_rates(judged_run: str) -> None:
    at = open_page("ui/scale_tests.py", run=judged_run)
    said = [node for node in at.main.get_by_key("scale_judges")]
    warnings = [node.value for node in said if getattr(node, "type", "") == "alert" or type(node).__name__ == "Warning"]
    expected = (
        f"agent 1 is worse than agent 0 under judge sim/judge (original) and {ACCURATE} but not under judge {NOISY}."
    )
    assert inert_markdown(expected) in warnings
    texts = " ".join(node.value for node in said if getattr(node, "type", "") == "markdown")
    assert "Kendall's tau 1.00" in texts and "no pair of cells swaps places" in texts
    assert any("under each judge of the run" in c.value for c in at.caption)


def test_a_flipped_pair_is_named_and_tau_measures_the_agreement() -> None:
    rows = [
        {
            "cell_key": key,
            "judge_id": judge,
            "judge_model": model,
            "rate": rate,
            "ci_low": rate - 0.05,
            "ci_high": rate + 0.05,
        }
        for judge, model, rates in (("original", "j", (0.1, 0.5, 0.9)), ("r1", "k", (0.5, 0.1, 0.9)))
        for key, rate in zip(("a", "b", "c"), rates, strict=True)
    ]
    found = judge_sensitivity.sensitivity(rows, {"a": "A", "b": "B", "c": "C"})
    assert found is not None
    (ordering,) = found.orderings
    assert ordering.flipped == (("B", "A"),)
    assert ordering.tau == pytest.approx(1 / 3)  # 2 concordant pairs, 1 discordant, of 3
    assert "B is worse than A under judge j (original) but not under judge k." in found.changed
    assert "A is worse than B under judge k but not under judge j (original)." in found.changed
    assert judge_sensitivity.sensitivity(rows[:3], {}) is None  # one judge: nothing to compare
    assert charts.rates_by_judge(rows, {"a": "A", "b": "B", "c": "C"}, found.judges).to_dict()
