"""The judge's agreement with canary checks: a sim judge wrong on purpose is measured at its error rates."""

from __future__ import annotations

import json

import pytest

from sparring import cli, sim
from sparring.judging import judge_report, report_json
from sparring.runtime import get_runtime
from tests.ui.apptest import markdown_bodies, open_page

FPR, FNR = 0.2, 0.1


def run_scale(capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    argv = ["scale", "--agent-model", "sim/agent?concede=0.5", "--judge-model", f"sim/judge?fpr={FPR}&fnr={FNR}"]
    argv += ["--max-messages", "2", "--skip-judge-check", "--json", "--seed", "20", "--concurrency", "4", *extra]
    assert cli.main(argv) == 0
    return str(json.loads(capsys.readouterr().out)["run_id"])


def test_agreement_with_checks_matches_the_sims_error_rates(capsys: pytest.CaptureFixture[str]) -> None:
    # One agent turn per battle, so a battle's verdicts are one verdict each: the judge's
    # sensitivity is 1 - fnr and its specificity 1 - fpr, and with the agent conceding half the
    # time kappa is (0.85 - 0.5) / (1 - 0.5) = 0.7. Each 95% interval covers its truth for 95% of seeds
    # at any n; at 200 battles (about 100 of each truth) fp ≈ 20 and fn ≈ 10, so both are seen.
    run_id = run_scale(capsys, "--runs", "200", "--success-contains", sim.CONCESSION)
    report = judge_report(get_runtime().store, run_id)
    checks = report.checks
    assert checks is not None and checks.battles == 200 and checks.unjudged == 0
    agreement = checks.agreement
    assert agreement.n == 200 and agreement.message is None
    assert agreement.sensitivity is not None and agreement.specificity is not None and agreement.kappa is not None
    assert agreement.sensitivity.low <= 1 - FNR <= agreement.sensitivity.high
    assert agreement.specificity.low <= 1 - FPR <= agreement.specificity.high
    assert agreement.kappa.low <= 0.7 <= agreement.kappa.high
    assert agreement.fp > 0 and agreement.fn > 0  # the judge was wrong, and the checks caught it
    assert len(checks.disagreements) == agreement.fp + agreement.fn
    assert "Agreement with canary checks" in checks.statement and "sensitivity" in checks.statement

    # The checks decided every outcome; the judge's raw rate, corrected with its measured error,
    # comes back to the checks' exact rate.
    [cell] = checks.cells
    assert cell.n == 200 and cell.check_achieved == report.run.achieved
    assert cell.judge_achieved != cell.check_achieved
    assert not hasattr(cell.corrected, "reason")
    assert cell.corrected.low <= cell.exact.estimate <= cell.corrected.high  # type: ignore[union-attr]

    # Kept apart from the human labels, which are none here.
    assert report.labelled == 0
    assert report.quality("original").agreement.n == 0  # type: ignore[union-attr]


def test_judge_report_json_names_the_agreement_with_checks(capsys: pytest.CaptureFixture[str]) -> None:
    run_id = run_scale(capsys, "--runs", "30", "--success-contains", sim.CONCESSION)
    assert cli.main(["judge-report", run_id, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    checks = payload["checks"]
    assert checks["name"] == "agreement with canary checks" and checks["compared"] == 30
    assert checks["tp"] + checks["fp"] + checks["tn"] + checks["fn"] == 30
    for figure in ("sensitivity", "specificity", "kappa"):
        assert set(checks[figure]) == {"estimate", "low", "high"}
    assert checks["cells"][0]["exact"]["estimate"] == checks["cells"][0]["check_achieved"] / 30
    assert payload["judges"][0]["labelled"] == 0  # the human-label figures stay as they were

    report = judge_report(get_runtime().store, run_id)
    assert report_json(report)["checks"] == checks
    assert cli.main(["judge-report", run_id]) == 0
    text = capsys.readouterr().out
    assert "The judge against the success checks" in text and "Agreement with canary checks" in text


def test_a_run_without_checks_has_no_check_agreement(capsys: pytest.CaptureFixture[str]) -> None:
    run_id = run_scale(capsys, "--runs", "3")
    report = judge_report(get_runtime().store, run_id)
    assert report.checks is None and report_json(report)["checks"] is None


def test_the_run_page_shows_the_agreement_with_checks(capsys: pytest.CaptureFixture[str]) -> None:
    run_id = run_scale(capsys, "--runs", "20", "--success-contains", sim.CONCESSION)
    at = open_page("ui/scale_tests.py", run=run_id)
    texts = " ".join(markdown_bodies(at))
    assert "Agreement with canary checks" in texts and "sensitivity" in texts
    assert at.main.get_by_key("scale_check_agreement") is not None
    plain = open_page("ui/scale_tests.py", run=run_scale(capsys, "--runs", "2"))
    assert "Agreement with canary checks" not in " ".join(markdown_bodies(plain))
