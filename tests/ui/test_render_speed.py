"""A store with 1,000 battles and a 100-message transcript still renders quickly.

The timings are printed, not asserted (run with ``-s`` to see them; ``bench/`` holds the
benchmarks). What is asserted is that the pages show what they should at that size.
Three runs on the shared 2-CPU development container (queue mode, AppTest, warm):

    hub, 1,000 battles, latest 10 listed        0.06-0.09 s
    hub, latest 100 listed                      0.17-0.27 s
    battle page, 100 messages, first render     0.09-0.14 s
    battle page rerun (nothing new to read)     0.08-0.12 s
    list query / incremental transcript read    7-9 ms / 8-10 ms
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import pytest
from streamlit.testing.v1 import AppTest

from sparring import records as r
from sparring.runtime import get_runtime
from sparring.store import ui_queries
from sparring.validation import BattleInput
from tests.ui.apptest import open_page

BATTLES = 1_000
LONG = 100


def seed() -> str:
    """1,000 finished battles with 10 messages each, and one with 100 messages and 50 verdicts."""
    store = get_runtime().store
    spec = BattleInput(seed=1, max_messages=LONG).to_spec()
    start = r.utcnow() - dt.timedelta(hours=2)
    batch: list[r.Record] = []
    ids = [f"{i:016x}" for i in range(BATTLES)]
    for i, battle_id in enumerate(ids):
        at = start + dt.timedelta(seconds=i)
        count = LONG if i == BATTLES - 1 else 10
        batch.append(r.BattleCreated(battle_id, spec, created_at=at))
        for seq in range(1, count + 1):
            role: r.Role = "user" if seq % 2 else "assistant"
            text = f"Message {seq} of battle {i}: " + "lorem ipsum dolor sit amet " * 6
            batch.append(r.MessageAdded(r.Message(battle_id, seq, role, text, "sim/x", 20, 30, 12.0, 0.0001, at)))
            if role == "assistant":
                verdict = r.Verdict(battle_id, seq, False, 0.9, "The agent refused.", "sim/judge", created_at=at)
                batch.append(r.VerdictAdded(verdict))
        batch.append(r.BattleFinished(battle_id, "held", at=at + dt.timedelta(seconds=30)))
        if len(batch) > 5_000:
            store.write(batch)
            batch = []
    store.write(batch)
    return ids[-1]


def best_ms(call: Callable[[], object], times: int = 5) -> float:
    """The fastest of a few calls, in milliseconds (the first one also warms DuckDB up)."""
    best = float("inf")
    for _ in range(times):
        began = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - began)
    return best * 1000


def timed_run(at: AppTest) -> float:
    began = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - began
    assert not at.exception, at.exception
    return elapsed


@pytest.mark.slow
@pytest.mark.redis
def test_a_thousand_battles_and_a_hundred_messages_render_quickly(redis_url: str) -> None:
    # Queue mode: no in-process consumer (nor its background litellm import) competes for the CPU.
    long_battle = seed()
    store = get_runtime().store
    assert store.read(lambda con: con.execute("SELECT count(*) FROM battles").fetchone()) == (BATTLES,)

    at = open_page("ui/hub.py")
    hub_s = timed_run(at)
    assert len(at.get("progress")) == 10
    at.selectbox(key="hub_recent_limit").set_value(100)
    hub_100_s = timed_run(at)
    assert len(at.get("progress")) == 100

    began = time.perf_counter()
    open_page("ui/battle.py", at, id=long_battle)  # reads all 100 messages and 50 verdicts
    battle_s = time.perf_counter() - began
    assert len(at.chat_message) == LONG
    assert len([e for e in at.expander if e.label.startswith("Judge")]) == LONG // 2
    refresh_s = timed_run(at)  # a refresh reads only the header row: nothing is new
    assert len(at.chat_message) == LONG

    rows = store.read(lambda con: ui_queries.hub_rows(con, [long_battle], 10))
    assert [row.battle_id for row in rows.session] == [long_battle]
    update = store.read(lambda con: ui_queries.battle_update(con, long_battle, LONG - 1, LONG))
    assert [m.seq for m in update.messages] == [LONG]
    list_ms = best_ms(lambda: store.read(lambda con: ui_queries.hub_rows(con, [long_battle], 10)))
    tail_ms = best_ms(lambda: store.read(lambda con: ui_queries.battle_update(con, long_battle, LONG - 1, LONG)))

    print(
        f"\nhub, {BATTLES} battles (10 listed): {hub_s:.3f} s; 100 listed: {hub_100_s:.3f} s"
        f"\nbattle page, {LONG} messages: first {battle_s:.3f} s; rerun: {refresh_s:.3f} s"
        f"\nlist query: {list_ms:.1f} ms; incremental transcript read: {tail_ms:.1f} ms"
    )
