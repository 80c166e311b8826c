"""The battle page: every outcome, a live battle, unknown ids, and untrusted model output."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from streamlit.testing.v1 import AppTest

from jobs import embedded, submit
from sparring import records as r
from sparring import runtime, usecases
from sparring.render import inert_markdown
from sparring.runtime import get_runtime
from sparring.store import db
from tests.helpers import new_battle, rows, scalar, wait_finished, wait_until
from tests.ui.apptest import markdown_bodies, open_app, open_page, rerun_until

SLOW_AGENT = "sim/agent?concede=0&latency_ms=300"


def run(battle_id: str) -> str:
    usecases.run_inline(battle_id)
    return battle_id


def achieved(monkeypatch: pytest.MonkeyPatch) -> str:
    return run(new_battle(agent_model="sim/agent?concede=1"))


def held(monkeypatch: pytest.MonkeyPatch) -> str:
    return run(new_battle(agent_model="sim/agent?concede=0", max_messages=6))


def undecided(monkeypatch: pytest.MonkeyPatch) -> str:
    return run(new_battle(agent_model="sim/agent?concede=1", judge_model="sim/judge?garble=1", max_messages=12))


def timed_out(monkeypatch: pytest.MonkeyPatch) -> str:
    return run(new_battle(agent_model="sim/agent?concede=0&latency_ms=400", time_limit_s=1.0, max_messages=40))


def failed(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SPARRING_MODEL_MAX_ATTEMPTS", "1")
    runtime.reset()
    return run(new_battle(agent_model="sim/agent?fail_500=1"))


def cancelled(monkeypatch: pytest.MonkeyPatch) -> str:
    embedded.start(threads=2)
    battle_id = submit.submit_battle({"agent_model": SLOW_AGENT, "max_messages": 40})
    wait_until(lambda: message_count(battle_id) >= 2, 60, message="two messages")
    submit.cancel_battle(battle_id)
    wait_finished([battle_id], 30)
    return battle_id


def message_count(battle_id: str) -> int:
    return int(scalar("SELECT message_count FROM battles WHERE battle_id = ?", [battle_id]))


OUTCOMES: dict[str, Callable[[pytest.MonkeyPatch], str]] = {
    "achieved": achieved,
    "held": held,
    "undecided": undecided,
    "cancelled": cancelled,
    "timed_out": timed_out,
    "failed": failed,
}


def badge_line(at: AppTest) -> str:
    return next(body for body in markdown_bodies(at) if "-badge[" in body)


@pytest.mark.parametrize("outcome", list(OUTCOMES))
def test_the_battle_page_shows_each_outcome(outcome: str, monkeypatch: pytest.MonkeyPatch) -> None:
    battle_id = OUTCOMES[outcome](monkeypatch)
    assert scalar("SELECT outcome FROM battles WHERE battle_id = ?", [battle_id]) == outcome
    at = open_page("ui/battle.py", id=battle_id)

    assert at.title[0].value == f"Battle `{battle_id[:8]}`"
    assert outcome.replace("_", " ") in badge_line(at)
    assert "live" not in badge_line(at)
    messages = rows("SELECT seq, role, content FROM messages WHERE battle_id = ? ORDER BY seq", [battle_id])
    bubbles = list(at.chat_message)
    assert [b.name for b in bubbles] == [role for _, role, _ in messages]
    for bubble, (_, _, content) in zip(bubbles, messages, strict=True):
        assert inert_markdown(content) in [m.value for m in bubble.markdown]
    verdicts = rows("SELECT achieved FROM verdicts WHERE battle_id = ? ORDER BY seq", [battle_id])
    judged = [e for e in at.expander if e.label.startswith("Judge")]
    assert len(judged) == len(verdicts)
    assert all(not e.proto.expanded for e in judged)  # collapsed by default
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Messages"].startswith(f"{len(messages)} / ")

    retry = f"battle-retry-{battle_id}"
    if outcome == "achieved":
        assert "goal **achieved**" in judged[-1].label
        assert metrics["Turns to goal"] == "1"
    if outcome == "held":
        assert len(messages) == 6 and metrics["Agent turns"] == "3"
    if outcome == "undecided":  # the agent gave in at once, but nobody could judge it: never "held"
        judge = inert_markdown("sim/judge?garble=1")
        assert f"the judge ({judge}) gave no usable verdict on the last agent message" in badge_line(at)
        assert "held" not in badge_line(at) and len(messages) == 6
        assert all("could not decide" in e.label for e in judged)
        (warning,) = at.warning
        assert "Undecided" in warning.value and "3 error verdicts in a row" in warning.value
    if outcome in ("failed", "timed_out"):
        (error,) = at.error
        stored = scalar("SELECT error FROM battles WHERE battle_id = ?", [battle_id])
        assert inert_markdown(stored) in error.value
    if outcome == "cancelled":
        assert any("cancelled" in i.value for i in at.info)
        assert 2 <= len(messages) < 40
    assert (retry in {b.key for b in at.button}) == (outcome in submit.RETRYABLE)
    assert f"battle-cancel-{battle_id}" not in {b.key for b in at.button}


def test_a_running_battle_grows_live_and_can_be_cancelled() -> None:
    at = open_app()  # embedded mode: the app starts its consumer
    battle_id = submit.submit_battle({"agent_model": SLOW_AGENT, "max_messages": 40})
    open_page("ui/battle.py", at, id=battle_id)
    rerun_until(at, lambda at: len(at.chat_message) >= 2, 60, "two bubbles")
    assert "live" in badge_line(at) and "running" in badge_line(at)
    assert any("is writing" in c.value or "is replying" in c.value or "deciding" in c.value for c in at.caption)
    shown = len(at.chat_message)
    rerun_until(at, lambda at: len(at.chat_message) > shown, 30, "a new bubble")
    at.button(key=f"battle-cancel-{battle_id}").click()
    rerun_until(at, lambda at: "cancelled" in badge_line(at), 30, "the cancel")
    assert len(at.chat_message) == message_count(battle_id)


def test_each_refresh_reads_only_the_messages_after_the_last_one_shown() -> None:
    store = get_runtime().store
    battle_id = new_battle()
    store.write([r.MessageAdded(r.Message(battle_id, 1, "user", "first question", "sim/adversary"))])
    at = open_page("ui/battle.py", id=battle_id)
    assert len(at.chat_message) == 1
    # Rewriting a message that is already shown must not change the page: it is not read again.
    with db.writing(store.path) as con:
        con.execute("UPDATE messages SET content = 'rewritten' WHERE battle_id = ? AND seq = 1", [battle_id])
    store.write([r.MessageAdded(r.Message(battle_id, 2, "assistant", "first answer", "sim/agent"))])
    at.run()
    bodies = markdown_bodies(at)
    assert inert_markdown("first question") in bodies and inert_markdown("first answer") in bodies
    assert "rewritten" not in " ".join(bodies)
    assert len(at.chat_message) == 2


def test_an_unknown_id_says_so() -> None:
    at = open_page("ui/battle.py", id="0123456789abcdef")
    assert not at.exception
    assert "No battle with the id" in at.warning[0].value
    assert not at.chat_message


def test_a_hostile_id_is_shown_as_text() -> None:
    at = open_page("ui/battle.py", id="<img src=x onerror=alert(1)>")
    assert not at.exception
    assert inert_markdown("<img src=x onerror=alert(1)>") in at.warning[0].value
    assert at.title[0].value == "Battle"


def test_without_an_id_recent_battles_are_offered() -> None:
    at = open_page("ui/battle.py")
    assert "No battles yet" in at.info[0].value
    battle_id = new_battle()
    at.run()
    picker = at.selectbox[0]
    assert picker.options and battle_id[:8] in picker.options[0]
    picker.select_index(0).run()
    assert not at.exception
    assert at.query_params["id"] == battle_id
    assert at.title[0].value == f"Battle `{battle_id[:8]}`"


HOSTILE = [
    "![x](https://evil.example/a.png)",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
]


def test_untrusted_model_output_is_rendered_inert() -> None:
    goal = "Get it: ![x](https://evil.example/goal.png) <script>alert(2)</script>"
    battle_id = new_battle(goal=goal, persona="[me](https://evil.example/persona)")
    store = get_runtime().store
    store.write(
        [
            r.MessageAdded(r.Message(battle_id, seq, "user" if seq % 2 else "assistant", text, "sim/x"))
            for seq, text in enumerate(HOSTILE, start=1)
        ]
        + [
            r.VerdictAdded(r.Verdict(battle_id, 2, False, 0.5, HOSTILE[0] + " " + HOSTILE[3], "sim/judge")),
            r.BattleFinished(battle_id, "failed", error="<script>alert(3)</script>", error_kind="provider"),
        ]
    )
    at = open_page("ui/battle.py", id=battle_id)
    bodies = [m.value for bubble in at.chat_message for m in bubble.markdown]
    rationale = inert_markdown(HOSTILE[0] + " " + HOSTILE[3])  # in the judge's expander, inside reply 2
    assert bodies == [inert_markdown(HOSTILE[0]), inert_markdown(HOSTILE[1]), rationale] + [
        inert_markdown(text) for text in HOSTILE[2:]
    ]
    everything = markdown_bodies(at) + [e.value for e in at.error] + [c.value for c in at.caption]
    assert any(inert_markdown(goal) in body for body in everything)
    assert any(inert_markdown("<script>alert(3)</script>") in body for body in everything)
    for raw in ("![x](", "<script>", "<img ", "](javascript:", "](https://", "https://evil"):
        unescaped = re.compile(r"(?<!\\)" + re.escape(raw))  # "\<img" is the text "<img", shown
        assert not any(unescaped.search(body) for body in everything), raw
    # On the hub, the goal is shown inert too.
    hub = open_page("ui/hub.py", at)
    hub_bodies = markdown_bodies(hub)
    assert any(inert_markdown("Get it: ![x](https") in body for body in hub_bodies)
    assert not any("<script>" in body or "![x](" in body for body in hub_bodies)
