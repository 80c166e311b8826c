"""The DuckDB store: migrations, idempotent writes, group commit across processes."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from sparring import records as r
from sparring.store import Store
from sparring.store.schema import MIGRATIONS, SCHEMA_VERSION

SPEC = r.BattleSpec(
    agent=r.AgentSpec("sim/agent", "be helpful"),
    adversary=r.AdversarySpec("sim/adversary", "get a refund"),
    judge=r.JudgeSpec("sim/judge"),
)


def test_migrations_are_recorded_and_idempotent(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    assert store.migrate() == SCHEMA_VERSION
    assert store.migrate() == SCHEMA_VERSION
    applied = store.read(lambda con: con.execute("SELECT version, name FROM schema_migrations").fetchall())
    assert applied[0] == (1, "m001_initial")
    assert len(applied) == len(MIGRATIONS)  # numbers are assigned per branch: 10 may land before 7


def test_rewriting_records_changes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    store.migrate()
    call = r.LLMCall("b1", 1, "adversary", "sim/adversary", "sim", 1, r.utcnow(), 3.0, 10, 5, 0.5)
    batch = [
        r.BattleCreated("b1", SPEC),
        r.BattleStarted("b1"),
        r.MessageAdded(r.Message("b1", 1, "user", "hello", "sim/adversary")),
        r.CallRecorded(call),
    ]
    store.write(batch)
    store.write(batch)  # a redelivery
    store.write([*batch, *batch])  # duplicates inside one batch too
    view = store.get_battle("b1")
    assert view is not None
    assert view.message_count == 1
    assert (view.prompt_tokens, view.completion_tokens, view.cost_usd, view.model_calls) == (10, 5, 0.5, 1)
    assert view.attempts == 1
    counts = store.read(
        lambda con: con.execute(
            "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM llm_calls), "
            "(SELECT count(*) FROM battle_events)"
        ).fetchone()
    )
    assert counts == (1, 1, 1)


def test_a_large_batch_keeps_every_value_and_type(tmp_path: Path) -> None:
    # Large batches reach DuckDB as arrays whose column types it infers from a sample: a
    # float column whose first thousands of values are whole numbers must stay float.
    store = Store(tmp_path / "s.duckdb")
    store.migrate()
    n = 3000
    batch: list[r.Record] = [r.BattleCreated("b1", SPEC), r.BattleStarted("b1")]
    for seq in range(1, n + 1):
        last = seq == n
        batch.append(r.MessageAdded(r.Message("b1", seq, "user", f"m{seq} é", "sim/agent", 1, 2, 1.5 if last else 0)))
        batch.append(
            r.CallRecorded(
                r.LLMCall("b1", seq, "agent", "sim/agent", "sim", 1, r.utcnow(), 0, 1, 2, 0.25 if last else None)
            )
        )
        batch.append(r.VerdictAdded(r.Verdict("b1", seq, None if seq == 1 else last, 0.5, "why", "sim/judge")))
    store.write(batch)
    store.write(batch)  # the safe path (ON CONFLICT) for a large batch too

    def read(sql: str) -> list[tuple[object, ...]]:
        return store.read(lambda con: con.execute(sql).fetchall())

    assert read(f"SELECT latency_ms, content FROM messages WHERE seq = {n}") == [(1.5, f"m{n} é")]
    assert read("SELECT count(*), sum(latency_ms) FROM messages") == [(n, 1.5)]
    assert read("SELECT count(cost_usd), sum(cost_usd) FROM llm_calls") == [(1, 0.25)]
    assert read("SELECT achieved, count(*) FROM verdicts GROUP BY ALL ORDER BY ALL") == [
        (False, n - 2),
        (True, 1),
        (None, 1),
    ]
    view = store.get_battle("b1")
    assert view is not None and (view.message_count, view.prompt_tokens, view.model_calls) == (n, n, n)


def test_first_finish_wins_until_requeued(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    store.migrate()
    store.write([r.BattleCreated("b1", SPEC), r.BattleStarted("b1")])
    store.write([r.BattleFinished("b1", "cancelled")])
    store.write([r.BattleFinished("b1", "held"), r.BattleStarted("b1")])
    view = store.get_battle("b1")
    assert view is not None and (view.status, view.outcome) == ("finished", "cancelled")
    store.write([r.BattleRequeued("b1", "retry")])
    view = store.get_battle("b1")
    assert view is not None and (view.status, view.outcome) == ("queued", None)


def test_records_survive_a_json_round_trip() -> None:
    records: list[r.Record] = [
        r.BattleCreated("b1", SPEC, run_id="run1", cell_key="k", cell_index=0, replicate=3),
        r.MessageAdded(r.Message("b1", 1, "user", "hi", "sim/adversary", 1, 2, 3.0, 0.1)),
        r.VerdictAdded(r.Verdict("b1", 2, None, None, "", "sim/judge", error="bad json")),
        r.CallRecorded(r.LLMCall("b1", 2, "judge", "sim/judge", "sim", 2, r.utcnow(), 1.0)),
        r.BattleFinished("b1", "achieved", turns_to_goal=1),
        r.RunCreated("run1", "n", {"cells": [{"a": 1}]}, 10, 20),
        r.ReportSaved("run1", "text", {"rate": 0.5}, "sim/writer"),
    ]
    for record in records:
        assert r.record_from_json(r.record_to_json(record)) == record


def _writer(path: str, worker: int, battles: int, messages: int) -> None:
    store = Store(Path(path))
    for b in range(battles):
        battle_id = f"w{worker}-b{b}"
        store.write([r.BattleCreated(battle_id, SPEC)])
        for seq in range(1, messages + 1):
            message = r.Message(battle_id, seq, "user" if seq % 2 else "assistant", f"m{seq}", "sim/agent")
            store.write([r.MessageAdded(message)])
            if seq % 5 == 0:  # rewrite an old row now and then: must stay one row
                store.write([r.MessageAdded(r.Message(battle_id, seq - 2, "user", "dup", "sim/agent"))])


def _reader(path: str, seconds: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = Store(Path(path))
    reads = errors = 0
    last = 0
    ended = time.monotonic() + seconds
    while time.monotonic() < ended:
        try:
            count = store.read(lambda con: con.execute("SELECT count(*) FROM messages").fetchone()[0])
            assert count >= last  # committed rows never disappear
            last = count
            reads += 1
        except Exception:
            errors += 1
        time.sleep(0.01)
    out.put((reads, errors))


def test_two_writer_processes_and_a_reader_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.duckdb"
    Store(path).migrate()
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    battles, messages = 4, 30
    writers = [ctx.Process(target=_writer, args=(str(path), w, battles, messages)) for w in range(2)]
    reader = ctx.Process(target=_reader, args=(str(path), 4.0, results))
    reader.start()
    for process in writers:
        process.start()
    for process in writers:
        process.join(120)
        assert process.exitcode == 0
    reader.join(60)
    assert reader.exitcode == 0
    reads, errors = results.get(timeout=5)
    assert errors == 0 and reads >= 3  # the reader got in while two processes kept writing

    con = duckdb.connect(str(path), read_only=True)
    try:
        total, distinct = con.execute("SELECT count(*), count(DISTINCT (battle_id, seq)) FROM messages").fetchone()
        per_battle = con.execute("SELECT battle_id, message_count FROM battles ORDER BY battle_id").fetchall()
    finally:
        con.close()
    assert total == distinct == 2 * battles * messages
    assert per_battle == sorted((f"w{w}-b{b}", messages) for w in range(2) for b in range(battles))


def test_writes_wait_for_a_notebook_holding_the_file(tmp_path: Path) -> None:
    path = tmp_path / "held.duckdb"
    store = Store(path)
    store.migrate()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}, read_only=True); "
            "print('held', flush=True); time.sleep(1.5); c.close()",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    store.write([r.BattleCreated("late", SPEC)])
    waited = time.monotonic() - started
    holder.wait(10)
    assert waited > 0.5  # it waited for the lock rather than failing
    assert store.get_battle("late") is not None


def test_a_write_that_cannot_reach_the_file_fails_loudly_and_the_next_one_works(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    path.mkdir()  # a folder where the file should be: attaching fails, and not for a lock
    store = Store(path)
    started = time.monotonic()
    try:
        store.submit([r.BattleCreated("b1", SPEC)]).result(timeout=30)
    except duckdb.Error as error:
        failure: BaseException | None = error
    else:
        failure = None
    assert failure is not None, "the writer must hear that its records were not written"
    assert time.monotonic() - started < 30
    path.rmdir()
    store.migrate()
    store.write([r.BattleCreated("b1", SPEC)])  # the committer thread survived the failure
    assert store.get_battle("b1") is not None


def test_closing_the_committer_commits_what_waits_and_stops_its_thread(tmp_path: Path) -> None:
    from sparring.store.recorder import GroupCommitter

    store = Store(tmp_path / "s.duckdb")
    store.migrate()
    committer = GroupCommitter(store.path, session_idle_s=5.0)  # the thread is mid-session when asked to stop
    futures = [committer.submit([r.BattleCreated(f"b{i}", SPEC)]) for i in range(20)]
    thread = committer._thread
    started = time.monotonic()
    committer.close(timeout=10)
    assert time.monotonic() - started < 5, "close() waited for its join timeout: the stop marker was lost"
    assert not thread.is_alive()
    assert all(f.done() and f.exception() is None for f in futures)
    committer.write([r.BattleCreated("after", SPEC)])  # a later write starts a new thread
    assert store.read(lambda con: con.execute("SELECT count(*) FROM battles").fetchone()[0]) == 21
    committer.close()
