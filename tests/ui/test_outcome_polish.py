"""What the hub and the battle page say about outcomes and time: the legend, a retried battle's
elapsed time, the judge's turn said once. Battles are written straight to the store with the
times they would have, so that no test waits for real minutes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from streamlit.testing.v1 import AppTest

from sparring import records as r
from sparring.runtime import get_runtime
from sparring.store import ui_queries
from tests.judging.builders import SPEC
from tests.ui.apptest import open_app, open_page
from ui import common

T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def write(*records: r.Record) -> None:
    get_runtime().store.write(list(records))


def retried(battle_id: str, *, second_attempt_ends: bool = True) -> list[r.Record]:
    """Ran 10 s, cancelled, sat cancelled for almost 5 minutes, retried, then ran 5 s more."""
    records: list[r.Record] = [
        r.BattleCreated(battle_id, SPEC, created_at=T0),
        r.BattleStarted(battle_id, at=at(1)),
        r.BattleFinished(battle_id, "cancelled", error="cancelled by request", at=at(11)),
        r.BattleRequeued(battle_id, "retry requested", at=at(300)),
        r.BattleStarted(battle_id, at=at(310)),
    ]
    if second_attempt_ends:
        records.append(r.BattleFinished(battle_id, "held", at=at(315)))
    return records


def metric(at_: AppTest, label: str) -> str:
    return next(str(m.value) for m in at_.metric if m.label == label)


def row_texts(at_: AppTest, battle_id: str) -> list[str]:
    row = at_.main.get_by_key(f"row-recent-{battle_id}")
    return [node.value for node in row if getattr(node, "type", "") == "markdown"]


def test_the_hub_legend_explains_every_outcome_a_badge_can_show() -> None:
    for outcome in r.OUTCOMES:
        battle_id = r.new_id()
        write(
            r.BattleCreated(battle_id, SPEC),
            r.BattleStarted(battle_id),
            r.BattleFinished(battle_id, outcome, turns_to_goal=1 if outcome == "achieved" else None),
        )
    at_ = open_app()
    legend = next(c.value for c in at_.caption if "**held**" in c.value)
    shown = {common.BADGES[outcome][0] for outcome in r.OUTCOMES}
    assert {"cancelled", "timed out"} <= shown
    for label in shown:
        assert f"**{label}**:" in legend, (label, legend)


def test_a_retried_battle_counts_the_time_it_ran_not_the_time_it_sat_cancelled() -> None:
    battle_id = r.new_id()
    write(*retried(battle_id))
    # 10 s in the first attempt and 5 s in the retry; not the 314 s from the first start to the end.
    battle = open_page("ui/battle.py", id=battle_id)
    assert metric(battle, "Elapsed") == "15 s"
    hub = open_app()
    assert "15 s" in row_texts(hub, battle_id), row_texts(hub, battle_id)
    seconds = get_runtime().store.read(lambda con: ui_queries.elapsed_seconds(con, [battle_id]))
    assert seconds == {battle_id: 15.0}


def test_a_retry_still_running_adds_its_time_so_far_and_a_requeued_one_waits_from_its_requeue() -> None:
    running, waiting = r.new_id(), r.new_id()
    write(*retried(running, second_attempt_ends=False))
    write(*retried(waiting)[:4])  # cancelled, then requeued at 300 s: not picked up yet
    store = get_runtime().store
    seconds = store.read(lambda con: ui_queries.elapsed_seconds(con, [running, waiting], at(400)))
    assert seconds == {running: 10.0 + 90.0, waiting: 100.0}


def test_a_battle_without_events_waits_from_its_creation() -> None:
    queued, unstarted = r.new_id(), r.new_id()
    write(r.BattleCreated(queued, SPEC, created_at=T0))
    # Finished without any start event (written by hand): no measure, so the page counts from creation.
    write(r.BattleCreated(unstarted, SPEC, created_at=T0), r.BattleFinished(unstarted, "failed", at=at(3)))
    seconds = get_runtime().store.read(lambda con: ui_queries.elapsed_seconds(con, [queued, unstarted], at(42)))
    assert seconds == {queued: 42.0}


def test_the_judges_turn_is_said_once_where_its_verdict_will_be() -> None:
    battle_id = r.new_id()
    messages: list[Any] = [
        r.MessageAdded(r.Message(battle_id, 1, "user", "Please refund me", "sim/adversary")),
        r.MessageAdded(r.Message(battle_id, 2, "assistant", "I can't do that.", "sim/agent")),
    ]
    write(r.BattleCreated(battle_id, SPEC), r.BattleStarted(battle_id), *messages)  # the verdict is pending
    battle = open_page("ui/battle.py", id=battle_id)
    deciding = [c.value for c in battle.caption if "The judge is deciding" in c.value]
    assert len(deciding) == 1, deciding
    # Once the verdict is in, the page says whose turn it is instead.
    write(r.VerdictAdded(r.Verdict(battle_id, 2, False, 0.9, "held firm", "sim/judge")))
    battle.run()
    assert not battle.exception, battle.exception
    assert not [c.value for c in battle.caption if "The judge is deciding" in c.value]
    assert any("The adversary is writing" in c.value for c in battle.caption)
