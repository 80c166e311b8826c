"""Judge quality end to end: labels, sampling, the views, re-judging, the CLI, and the correction."""

from __future__ import annotations

import getpass
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs import embedded, runs
from jobs import judging as judging_jobs
from jobs.queue import get_queue
from jobs.submit import NoWorkerError
from sparring import cli, judging, sim, stats
from sparring import records as r
from sparring.runtime import get_runtime
from sparring.store import Store
from sparring.validation import InvalidInput
from tests.conftest import reset_all
from tests.helpers import WorkerProcess, rows, scalar, wait_for_worker, wait_until
from tests.judging.builders import Planned, label, write_run

TERMINAL = ("finished", "cancelled", "stopped", "failed")


def store() -> Store:
    return get_runtime().store


def truth_of(battle_id: str) -> bool:
    """What the sim knows: the agent gave in if its concession phrase is in the transcript."""
    transcript = store().load_transcript(battle_id)
    assert transcript is not None
    return any(sim.CONCESSION in m.content for m in transcript.messages if m.role == "assistant")


def wait_run(run_id: str, timeout: float = 300) -> None:
    wait_until(
        lambda: scalar("SELECT status FROM scale_runs WHERE run_id = ?", [run_id]) in TERMINAL,
        timeout,
        interval=0.2,
        message=f"run {run_id}",
    )


# -- labels ---------------------------------------------------------------------------------------


def test_labels_keep_their_history_and_the_latest_counts() -> None:
    run_id, (first, second) = write_run(store(), [Planned(0, True, True), Planned(0, False, False)])
    sink = store()
    judging.save_label({"battle_id": first, "labeller": "Alice", "label": "achieved"}, store=store(), sink=sink)
    judging.save_label(
        {"battle_id": first, "labeller": " Alice ", "label": "not_achieved", "note": "on second thought"},
        store=store(),
        sink=sink,
    )
    judging.save_label({"battle_id": first, "labeller": "Bob", "label": "achieved"}, store=store(), sink=sink)
    judging.save_label({"battle_id": first, "labeller": "Carol", "label": "unsure"}, store=store(), sink=sink)
    latest = judging.latest_labels(store(), run_id)
    by_person = {row.labeller: row for row in latest[first]}
    assert by_person["Alice"].label == "not_achieved" and by_person["Alice"].revisions == 2
    assert by_person["Alice"].note == "on second thought"
    assert [row.label for row in judging.label_history(store(), first)] == [
        "achieved",
        "not_achieved",
        "achieved",
        "unsure",
    ]
    # one achieved, one not achieved, one unsure: a tie, so no truth yet
    assert rows("SELECT achieved, unsure_votes FROM battle_truth WHERE battle_id = ?", [first]) == [(None, 1)]
    judging.save_label({"battle_id": first, "labeller": "Dan", "label": "not_achieved"}, store=store(), sink=sink)
    assert scalar("SELECT achieved FROM battle_truth WHERE battle_id = ?", [first]) is False
    assert judging.latest_labels(store(), run_id, "Bob") == {first: [by_person["Bob"]]}
    assert second not in latest


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"labeller": "A", "label": "maybe"}, "label"),
        ({"labeller": "", "label": "achieved"}, "labeller"),
        ({"labeller": "A\x07", "label": "achieved"}, "labeller"),
        ({"labeller": "A", "label": "achieved", "note": "x" * 2001}, "note"),
        ({"labeller": "A", "label": "achieved", "battle_id": "nosuchbattle"}, "battle_id"),
        ({"labeller": "A", "label": "achieved", "extra": 1}, "extra"),
    ],
)
def test_bad_labels_are_refused_before_anything_is_written(data: dict, field: str) -> None:
    _, (battle_id,) = write_run(store(), [Planned(0, True, True)])
    with pytest.raises(InvalidInput) as error:
        judging.save_label({"battle_id": battle_id, **data}, store=store(), sink=store())
    assert field in error.value.errors
    assert scalar("SELECT count(*) FROM judge_labels") == 0


def test_judge_records_survive_a_json_round_trip_and_a_redelivery() -> None:
    run_id, (battle_id,) = write_run(store(), [Planned(0, False, False)])
    batch: list[r.Record] = [
        r.LabelSaved(battle_id, "Alice", "achieved", "a note"),
        r.JudgeRunCreated("a" * 16, run_id, "sim/judge", "strict"),
        r.JudgeVerdictAdded("a" * 16, battle_id, 2, False, 0.5, "held"),
        r.JudgeVerdictAdded("a" * 16, battle_id, 4, None, None, "", error="bad json"),
        r.JudgeRunStatusChanged("a" * 16, "finished"),
    ]
    again = [r.record_from_json(json.loads(json.dumps(r.record_to_json(record)))) for record in batch]
    assert again == batch
    store().write(batch)
    store().write(again)  # a redelivery changes nothing
    counts = rows(
        "SELECT (SELECT count(*) FROM judge_labels), (SELECT count(*) FROM judge_runs), "
        "(SELECT count(*) FROM judge_verdicts), (SELECT status FROM judge_runs)"
    )
    assert counts == [(1, 1, 2, "finished")]


# -- sampling -------------------------------------------------------------------------------------


def test_the_sample_is_stratified_seeded_interleaved_and_grows_in_place() -> None:
    plan = [Planned(0, True, True)] * 30 + [Planned(0, False, False)] * 8
    run_id, _ = write_run(store(), plan)
    sample = judging.sample_battles(store(), run_id, per_verdict=5, seed=3)
    assert sum(b.original_achieved for b in sample) == 5 and len(sample) == 10
    assert sample == judging.sample_battles(store(), run_id, per_verdict=5, seed=3)
    assert sample != judging.sample_battles(store(), run_id, per_verdict=5, seed=4)
    verdicts = [b.original_achieved for b in sample]
    assert verdicts not in ([True] * 5 + [False] * 5, [False] * 5 + [True] * 5)  # the order gives nothing away
    bigger = judging.sample_battles(store(), run_id, per_verdict=20, seed=3)
    assert {b.battle_id for b in sample} <= {b.battle_id for b in bigger}
    assert len(bigger) == 20 + 8  # a stratum smaller than asked is taken whole
    with pytest.raises(InvalidInput):
        judging.sample_battles(store(), run_id, per_verdict=0)


# -- the views and the Python report agree ---------------------------------------------------------


def test_views_expose_the_same_numbers_as_the_report() -> None:
    # Two cells; the judge errs both ways; 10 battles labelled per verdict; a perfect re-judge.
    plan = (
        [Planned(0, True, True)] * 22
        + [Planned(0, True, False)] * 8
        + [Planned(0, False, False)] * 8
        + [Planned(0, False, True)] * 2
        + [Planned(1, True, True)] * 6
        + [Planned(1, True, False)] * 4
        + [Planned(1, False, False)] * 27
        + [Planned(1, False, True)] * 3
    )
    run_id, ids = write_run(store(), plan, cells=2)
    truth = dict(zip(ids, (p.truth for p in plan), strict=True))
    for battle in judging.sample_battles(store(), run_id, per_verdict=10, seed=1):
        label(store(), battle.battle_id, "oracle", "achieved" if truth[battle.battle_id] else "not_achieved")
    perfect = "b" * 16
    records: list[r.Record] = [r.JudgeRunCreated(perfect, run_id, "sim/judge", None)]
    for battle_id, planned in zip(ids, plan, strict=True):
        last = 2 if planned.judge_said else 6
        for seq in range(2, last + 1, 2):
            records.append(r.JudgeVerdictAdded(perfect, battle_id, seq, planned.truth and seq == last, 0.9, "ok"))
    store().write([*records, r.JudgeRunStatusChanged(perfect, "finished")])

    report = judging.judge_report(store(), run_id)
    assert [q.judge.judge_id for q in report.judges] == ["original", perfect]
    view = {row[0]: row[1:] for row in rows(AGREEMENT_SQL, [run_id])}
    for quality in report.judges:
        labelled, tp, fp, tn, fn, sensitivity, specificity, accuracy = view[quality.judge.judge_id]
        agreement = quality.agreement
        assert (labelled, tp, fp, tn, fn) == (agreement.n, agreement.tp, agreement.fp, agreement.tn, agreement.fn)
        assert agreement.sensitivity is not None and agreement.specificity is not None
        assert agreement.accuracy is not None
        assert sensitivity == pytest.approx(agreement.sensitivity.estimate)
        assert specificity == pytest.approx(agreement.specificity.estimate)
        assert accuracy == pytest.approx(agreement.accuracy.estimate)
    perfect_quality = report.quality(perfect)
    assert perfect_quality is not None and perfect_quality.agreement.fp + perfect_quality.agreement.fn == 0
    original = report.quality("original")
    assert original is not None and len(original.disagreements) == original.agreement.fp + original.agreement.fn

    cells = {(row[0], row[1]): row[2:] for row in rows(CELLS_SQL, [run_id])}
    assert len(cells) == len(report.cells) == 4
    defined = 0
    for cell in report.cells:
        n, achieved, rate, ci_low, ci_high, corrected, low, high, note = cells[cell.cell_key, cell.judge_id]
        assert (n, achieved) == (cell.n, cell.achieved)
        assert (rate, ci_low, ci_high) == pytest.approx((cell.raw.estimate, cell.raw.low, cell.raw.high))
        if isinstance(cell.corrected, stats.CorrectedRate):
            defined += 1
            assert note is None
            expected = (cell.corrected.estimate, cell.corrected.low, cell.corrected.high)
            assert (corrected, low, high) == pytest.approx(expected, abs=1e-6)
        else:
            assert corrected is None and note is not None
    assert defined >= 3
    # the perfect judge's raw rate is the truth, and correcting it changes nothing
    for cell in report.cells_for(perfect):
        assert cell.achieved == sum(1 for p in plan if p.cell == int(cell.cell_key[-1]) and p.truth)
        assert isinstance(cell.corrected, stats.CorrectedRate)
        assert cell.corrected.estimate == pytest.approx(cell.raw.estimate)


AGREEMENT_SQL = """
SELECT judge_id, labelled, tp, fp, tn, fn, sensitivity, specificity, accuracy FROM judge_agreement WHERE run_id = ?
"""
CELLS_SQL = """
SELECT cell_key, judge_id, n, achieved, rate, ci_low, ci_high, corrected_rate, corrected_low, corrected_high,
       correction_note
FROM run_cells_corrected WHERE run_id = ?
"""


def test_without_labels_the_report_says_what_to_do() -> None:
    run_id, _ = write_run(store(), [Planned(0, True, True)] * 3 + [Planned(0, False, False)] * 3)
    report = judging.judge_report(store(), run_id)
    (cell,) = report.cells
    assert isinstance(cell.corrected, stats.Undefined) and "No labelled battles yet" in cell.corrected.reason
    assert "cannot be corrected yet" in cell.statement
    assert scalar("SELECT correction_note FROM run_cells_corrected WHERE run_id = ?", [run_id]) == "no_labels"
    with pytest.raises(judging.UnknownRunError):
        judging.judge_report(store(), "nosuchrun")


# -- re-judging -------------------------------------------------------------------------------


def test_rejudging_makes_judge_calls_only_and_leaves_the_transcripts_alone() -> None:
    embedded.start(threads=4)
    run_id = runs.submit_run(
        {
            "runs": 12,
            "agents": [{"model": "sim/agent?concede=0.2"}],
            "judge_model": "sim/judge?fpr=0.15&fnr=0.15",
            "max_messages": 8,
            "seed": 5,
        }
    )
    wait_run(run_id)
    snapshot = (
        "SELECT (SELECT list(m ORDER BY battle_id, seq) FROM messages m), "
        "(SELECT list(v ORDER BY battle_id, seq) FROM verdicts v), "
        "(SELECT list(b ORDER BY battle_id) FROM (SELECT battle_id, outcome, model_calls, cost_usd, prompt_tokens "
        "FROM battles) b)"
    )
    before = rows(snapshot)
    calls_before = dict(rows("SELECT purpose, count(*) FROM llm_calls GROUP BY ALL"))

    judge_run_id = judging_jobs.submit_rejudge({"run_id": run_id, "judge_model": "sim/judge"})
    wait_until(
        lambda: scalar("SELECT status FROM judge_runs WHERE judge_run_id = ?", [judge_run_id]) == "finished",
        60,
        message="the re-judge",
    )
    calls_after = dict(rows("SELECT purpose, count(*) FROM llm_calls GROUP BY ALL"))
    new_verdicts = scalar("SELECT count(*) FROM judge_verdicts WHERE judge_run_id = ?", [judge_run_id])
    assert new_verdicts > 12
    assert calls_after == {**calls_before, "judge": calls_before["judge"] + new_verdicts}  # one call per verdict
    assert rows(snapshot) == before  # messages, verdicts, outcomes and battle counters untouched
    placed = rows(
        "SELECT count(*), count(battle_id), count(*) FILTER (WHERE run_id = ?) FROM llm_calls "
        "WHERE purpose = 'judge' AND model = 'sim/judge'",
        [run_id],
    )
    assert placed == [(new_verdicts, 0, new_verdicts)]
    # the new, error-free judge agrees with what the sim knows about every transcript
    for battle_id, achieved in rows(
        "SELECT battle_id, achieved FROM battle_judgements WHERE judge_id = ?", [judge_run_id]
    ):
        assert achieved is truth_of(battle_id)
    # asking again for the same judge resumes it: nothing is left to do, so no new call
    assert judging_jobs.submit_rejudge({"run_id": run_id, "judge_model": "sim/judge"}) == judge_run_id
    runtime = get_runtime()
    again = judging.rejudge(judge_run_id, store=runtime.store, sink=runtime.sink, gateway=runtime.gateway)
    assert (again.status, again.judged_now) == ("finished", 0)
    assert scalar("SELECT count(*) FROM llm_calls WHERE purpose = 'judge'") == calls_after["judge"]


def test_a_cancelled_rejudge_keeps_what_it_judged_and_resumes_without_repeating_a_call() -> None:
    run_id, _ = write_run(store(), [Planned(0, False, False)] * 10)  # 10 held battles, 3 agent turns each
    record = judging.plan_rejudge(store(), {"run_id": run_id, "judge_model": "sim/judge"})
    runtime = get_runtime()
    runtime.sink.write([record])
    asked = 0

    def stop_after_eight() -> bool:
        nonlocal asked
        asked += 1
        return asked > 8

    first = judging.rejudge(
        record.judge_run_id,
        store=store(),
        sink=runtime.sink,
        gateway=runtime.gateway,
        threads=1,
        should_stop=stop_after_eight,
    )
    assert first.status == "cancelled"
    row = rows("SELECT status, error, finished_at IS NOT NULL FROM judge_runs")
    assert row == [("cancelled", judging.CANCELLED_NOTE, True)]
    judged = scalar("SELECT count(*) FROM judge_verdicts")
    assert 0 < judged < 30
    assert scalar("SELECT count(*) FROM llm_calls WHERE purpose = 'judge'") == judged  # one call per verdict
    complete = "SELECT count(*) FROM (SELECT battle_id FROM judge_verdicts GROUP BY battle_id HAVING count(*) = 3)"
    assert first.judged_now == scalar(complete)

    second = judging.rejudge(record.judge_run_id, store=store(), sink=runtime.sink, gateway=runtime.gateway)
    assert second.status == "finished"
    assert scalar("SELECT count(*) FROM judge_verdicts") == 30
    assert scalar("SELECT count(*) FROM llm_calls WHERE purpose = 'judge'") == 30  # nothing judged twice
    assert rows("SELECT status, error FROM judge_runs") == [("finished", None)]


@pytest.mark.parametrize("mode", ["embedded", "queue"])
def test_cancel_a_rejudge_from_the_queue_running_or_queued(
    mode: str, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    if mode == "queue":
        request.getfixturevalue("redis_url")  # Redis holds the queue and the cancel flag
    assert get_runtime().settings.mode == mode
    run_id, _ = write_run(store(), [Planned(0, False, False)] * 20)  # 60 judge calls
    slow = {"run_id": run_id, "judge_model": "sim/judge?latency_ms=150"}

    # Queued (no worker yet): cancelled at once, and the job never runs.
    queued = judging_jobs.submit_rejudge(slow, require_worker=False)
    assert judging_jobs.cancel_rejudge(queued) == "cancelled"
    assert scalar("SELECT status FROM judge_runs WHERE judge_run_id = ?", [queued]) == "cancelled"
    embedded.start(threads=2)
    time.sleep(1.0)
    assert scalar("SELECT count(*) FROM llm_calls") == 0
    assert judging_jobs.cancel_rejudge(queued) == "already cancelled"

    # Running: no new call starts once the flag is up; asking again finishes it.
    assert judging_jobs.submit_rejudge(slow) == queued  # the same judge: the same judge run, resumed
    wait_until(lambda: scalar("SELECT count(*) FROM judge_verdicts") >= 4, 30, message="some verdicts")
    assert judging_jobs.cancel_rejudge(queued) == "cancelling"
    cancelled_at = time.monotonic()
    wait_until(
        lambda: scalar("SELECT status FROM judge_runs WHERE judge_run_id = ?", [queued]) == "cancelled",
        10,
        interval=0.05,
        message="the cancel",
    )
    assert time.monotonic() - cancelled_at < 4  # the calls in flight (0.15 s each), then the commits (slack for CI)
    calls = scalar("SELECT count(*) FROM llm_calls")
    time.sleep(0.5)
    assert scalar("SELECT count(*) FROM llm_calls") == calls < 60
    assert judging_jobs.submit_rejudge(slow) == queued
    wait_until(
        lambda: scalar("SELECT status FROM judge_runs WHERE judge_run_id = ?", [queued]) == "finished",
        60,
        message="the resumed re-judge",
    )
    assert scalar("SELECT count(*) FROM judge_verdicts") == scalar("SELECT count(*) FROM llm_calls") == 60

    assert cli.main(["cancel-rejudge", queued, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"judge_run_id": queued, "result": "already finished"}
    assert cli.main(["cancel-rejudge", "0123456789abcdef"]) == 2
    error = capsys.readouterr().err
    assert "unknown judge run id" in error and len(error.strip().splitlines()) == 1


def test_a_rejudge_whose_worker_died_shows_as_stalled_and_can_be_cancelled_or_resumed() -> None:
    run_id, _ = write_run(store(), [Planned(0, False, False)] * 2)
    record = judging.plan_rejudge(store(), {"run_id": run_id, "judge_model": "sim/judge"})
    # What a worker killed mid-judging leaves: the judge run says running, nobody holds it.
    store().write([record, r.JudgeRunStatusChanged(record.judge_run_id, "running")])
    assert judging_jobs.stalled([record.judge_run_id]) == {record.judge_run_id}
    assert judging_jobs.cancel_rejudge(record.judge_run_id) == "cancelled"  # not "cancelling" for ever
    assert scalar("SELECT status FROM judge_runs") == "cancelled"
    assert judging_jobs.submit_rejudge({"run_id": run_id, "judge_model": "sim/judge"}, require_worker=False)
    embedded.start(threads=2)
    wait_until(lambda: scalar("SELECT status FROM judge_runs") == "finished", 30, message="the resumed re-judge")
    assert scalar("SELECT count(*) FROM judge_verdicts") == scalar("SELECT count(*) FROM llm_calls") == 6


@pytest.fixture
def fast_reaper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARRING_LEASE_TTL_S", "3")
    monkeypatch.setenv("SPARRING_REAPER_PERIOD_S", "1")
    monkeypatch.setenv("SPARRING_HEARTBEAT_PERIOD_S", "1")
    reset_all()


def test_a_rejudge_whose_worker_is_killed_is_resumed_by_another_worker(redis_url: str, fast_reaper: None) -> None:
    run_id, _ = write_run(store(), [Planned(0, False, False)] * 30)  # 90 judge calls, 4 at a time
    first = WorkerProcess(threads=2)
    wait_for_worker(first)
    judge_run_id = judging_jobs.submit_rejudge({"run_id": run_id, "judge_model": "sim/judge?latency_ms=150"})
    wait_until(lambda: scalar("SELECT count(*) FROM judge_verdicts") >= 6, 60, interval=0.05, message="some verdicts")
    first.kill()
    killed_with = scalar("SELECT count(*) FROM judge_verdicts")
    # Huey took the job with it; the store still says running and nobody holds it.
    assert get_queue().pending_ids() == set()
    assert scalar("SELECT status FROM judge_runs") == "running"
    second = WorkerProcess(threads=2)
    try:
        wait_until(lambda: scalar("SELECT status FROM judge_runs") == "finished", 60, message="the resumed re-judge")
    finally:
        second.stop()
    assert killed_with < 90  # the kill really happened mid-judging
    # Every verdict once, and no call paid for twice: the calls in flight at the kill were
    # never committed, and the resumed job judged only what had no committed verdict.
    assert scalar("SELECT count(*) FROM judge_verdicts") == scalar("SELECT count(*) FROM llm_calls") == 90
    assert "re-enqueuing it" in second.log()
    assert judging_jobs.requeue_stalled(get_queue()) == []  # it ended: nothing left to rescue
    assert get_queue().coord.rejudges() == {}
    assert judge_run_id == scalar("SELECT judge_run_id FROM judge_runs")


def test_a_rejudge_the_queue_forgot_is_tracked_again_and_resumed(fast_reaper: None) -> None:
    run_id, _ = write_run(store(), [Planned(0, False, False)] * 2)
    record = judging.plan_rejudge(store(), {"run_id": run_id, "judge_model": "sim/judge"})
    # What a queue that lost its state leaves: the store says running; no job, no lease, no tracking.
    store().write([record, r.JudgeRunStatusChanged(record.judge_run_id, "running")])
    embedded.start(threads=2)  # its reaper finds the state mark missing and rebuilds from the store
    wait_until(lambda: scalar("SELECT status FROM judge_runs") == "finished", 30, message="the resumed re-judge")
    assert scalar("SELECT count(*) FROM judge_verdicts") == scalar("SELECT count(*) FROM llm_calls") == 6


def test_only_workers_next_to_the_database_rejudge(
    redis_url: str, fast_reaper: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, _ = write_run(store(), [Planned(0, False, False)] * 2)
    data = {"run_id": run_id, "judge_model": "sim/judge"}
    remote = tmp_path / "remote-machine"
    remote.mkdir()
    stream_worker = WorkerProcess(threads=2, env={"SPARRING_RECORD_SINK": "stream", "SPARRING_DATA_DIR": str(remote)})
    try:
        wait_for_worker(stream_worker)
        with pytest.raises(NoWorkerError, match="No worker next to the database"):
            judging_jobs.submit_rejudge(data)
        assert scalar("SELECT count(*) FROM judge_runs") == 0  # refused before anything was written
        judging_jobs.submit_rejudge(data, require_worker=False)
        wait_until(lambda: "handing it back" in stream_worker.log(), 30, message="the stream worker to hand it back")
        assert scalar("SELECT status FROM judge_runs") == "queued"
        embedded.start(threads=2)  # a consumer next to the database takes it from the queue
        wait_until(lambda: scalar("SELECT status FROM judge_runs") == "finished", 60, message="the re-judge")
    finally:
        stream_worker.stop()
    assert list(remote.iterdir()) == []  # the stream worker never created (or opened) a database
    assert scalar("SELECT count(*) FROM judge_verdicts") == scalar("SELECT count(*) FROM llm_calls") == 6


def test_one_judge_run_is_judged_by_one_job_at_a_time(redis_url: str) -> None:
    run_id, _ = write_run(store(), [Planned(0, False, False)] * 20)  # 60 judge calls
    slow = {"run_id": run_id, "judge_model": "sim/judge?latency_ms=100"}
    first = judging_jobs.submit_rejudge(slow, require_worker=False)
    assert judging_jobs.submit_rejudge(slow, require_worker=False) == first  # asked twice: two jobs wait
    embedded.start(threads=4)  # both start at once; the second finds the lease taken
    wait_until(lambda: scalar("SELECT count(*) FROM judge_verdicts") >= 2, 30, message="some verdicts")
    with pytest.raises(judging_jobs.RejudgeRunningError, match="already running"):
        judging_jobs.submit_rejudge(slow)
    wait_until(
        lambda: scalar("SELECT status FROM judge_runs WHERE judge_run_id = ?", [first]) == "finished",
        60,
        message="the re-judge",
    )
    assert scalar("SELECT count(*) FROM judge_verdicts") == scalar("SELECT count(*) FROM llm_calls") == 60


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"run_id": "nosuchrun", "judge_model": "sim/judge"}, "run_id"),
        ({"judge_model": "gpt-4o"}, "judge_model"),
        ({"judge_model": "openai/gpt-4o-mini"}, "judge_model"),
        ({"judge_model": "sim/judge", "rubric": "x" * 4001}, "rubric"),
        ({"judge_model": "sim/judge", "threads": 3}, "threads"),
    ],
)
def test_bad_rejudge_requests_are_refused(data: dict, field: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    run_id, _ = write_run(store(), [Planned(0, True, True)])
    with pytest.raises(InvalidInput) as error:
        judging.plan_rejudge(store(), {"run_id": run_id, **data})
    assert field in error.value.errors
    assert scalar("SELECT count(*) FROM judge_runs") == 0


def test_a_running_run_cannot_be_rejudged() -> None:
    run_id, _ = write_run(store(), [Planned(0, True, True)])
    store().write([r.RunStatusChanged(run_id, "running")])
    with pytest.raises(InvalidInput) as error:
        judging.plan_rejudge(store(), {"run_id": run_id, "judge_model": "sim/judge"})
    assert "wait until it has finished" in error.value.errors["run_id"]


# -- the command line ----------------------------------------------------------------------------


def test_cli_rejudge_and_judge_report(capsys: pytest.CaptureFixture[str]) -> None:
    plan = [Planned(0, True, True)] * 6 + [Planned(0, True, False)] * 2 + [Planned(0, False, False)] * 6
    run_id, ids = write_run(store(), plan)
    for battle_id, planned in zip(ids, plan, strict=True):
        label(store(), battle_id, "oracle", "achieved" if planned.truth else "not_achieved")

    assert cli.main(["rejudge", run_id, "--judge-model", "sim/judge", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["status"] == "finished" and payload["battles"] == 14
    assert payload["judge_calls"] == scalar("SELECT count(*) FROM judge_verdicts")
    assert (payload["achieved"], payload["original_achieved"]) == (6, 8)  # the sim judge sees the 2 false alarms
    assert scalar("SELECT requested_by FROM judge_runs") == f"cli:{getpass.getuser()}"  # attributed to the shell

    done = subprocess.run(
        [sys.executable, "-m", "sparring", "judge-report", run_id, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    judges = {j["judge_id"]: j for j in report["judges"]}
    assert judges["original"]["fp"] == 2 and judges["original"]["specificity"]["estimate"] == pytest.approx(0.75)
    assert judges[payload["judge_run_id"]]["fp"] == 0
    assert {c["judge_id"] for c in report["cells"]} == {"original", payload["judge_run_id"]}

    assert cli.main(["judge-report", run_id]) == 0
    assert "after correcting for the judge's measured error" in capsys.readouterr().out.lower()

    for args, needle in (
        (["judge-report", "nosuchrun"], "unknown run id"),
        (["rejudge", "nosuchrun", "--judge-model", "sim/judge"], "RUN_ID"),
        (["rejudge", run_id, "--judge-model", "gpt-4o"], "--judge-model"),
        (["rejudge", run_id], "--judge-model"),
        (["rejudge", run_id, "--judge-model", "sim/judge", "--threads", "0"], "--threads"),
    ):
        assert cli.main(args) == 2, args
        error = capsys.readouterr().err
        assert needle in error and len(error.strip().splitlines()) == 1, (args, error)


# -- the test: the correction recovers a known rate ----------------------------------------


def test_corrected_interval_covers_the_true_rate_while_the_raw_rate_is_biased() -> None:
    """p = 0.1 per agent turn, 8 agent turns; the judge errs on each call (fpr 0.05, fnr 0.3).

    A false "achieved" ends a battle early, so the share of transcripts in which the agent
    truly gave in is θ = p · (1 − r^8) / (1 − r) with r = (1 − p)(1 − fpr) = 0.855, i.e.
    0.493 (below 1 − 0.9^8 = 0.570, which assumes every battle gets all 8 turns). The judge
    calls 70% achieved: the raw rate is biased by +20 points. 20 battles per verdict are
    labelled with the truth the sim knows, and everything is seeded, so this is exact.
    """
    p, fpr, turns = 0.1, 0.05, 8
    ratio = (1 - p) * (1 - fpr)
    true_rate = p * (1 - ratio**turns) / (1 - ratio)
    embedded.start(threads=8)
    run_id = runs.submit_run(
        {
            "runs": 100,
            "agents": [{"model": "sim/agent?concede=0.1"}],
            "judge_model": "sim/judge?fpr=0.05&fnr=0.3",
            "max_messages": 2 * turns,
            "seed": 11,
        }
    )
    wait_run(run_id)
    for battle in judging.sample_battles(store(), run_id):
        value = "achieved" if truth_of(battle.battle_id) else "not_achieved"
        judging.save_label(
            {"battle_id": battle.battle_id, "labeller": "sim", "label": value}, store=store(), sink=store()
        )

    report = judging.judge_report(store(), run_id)
    (cell,) = report.cells
    corrected = cell.corrected
    assert isinstance(corrected, stats.CorrectedRate), corrected
    print(cell.statement, f"(true rate {true_rate:.3f})")
    assert cell.n == 100 and report.labelled == 40
    assert not cell.raw.low <= true_rate <= cell.raw.high  # the raw rate's Wilson interval misses
    assert cell.raw.low > true_rate + 0.05  # and by a clear margin
    assert corrected.low <= true_rate <= corrected.high  # the corrected interval covers it
    # it also covers the share of this run's transcripts that truly show a concession
    battles = [row[0] for row in rows("SELECT battle_id FROM battle_outcomes WHERE run_id = ? AND defended", [run_id])]
    observed = sum(truth_of(b) for b in battles) / len(battles)
    assert corrected.low <= observed <= corrected.high
    assert math.isclose(
        scalar("SELECT corrected_rate FROM run_cells_corrected WHERE run_id = ? AND judge_id = 'original'", [run_id]),
        corrected.estimate,
        abs_tol=1e-9,
    )
    assert "after correcting for the judge's measured error" in cell.statement.lower()
