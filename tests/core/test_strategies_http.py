"""Each algorithm's structured adversary answers over real HTTP: the adversary and the agent are
``openai/`` models served by the fake OpenAI-compatible server on 127.0.0.1; the judge is the sim."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from sparring import sim, usecases
from sparring.gateway import warm_up
from sparring.strategies.base import FORMAT_RETRY
from tests.fakes import openai_server as fake_openai
from tests.fakes.openai_server import FakeOpenAIServer
from tests.helpers import transcript

openai_server = fake_openai.openai_server  # the fixture (an assignment, so ruff sees no redefinition)

MODEL = "openai/fake-model"
CONCEDES = f"text:Alright. {sim.CONCESSION}. Here it is."


@pytest.fixture(scope="module", autouse=True)
def litellm_imported() -> None:
    warm_up()


@pytest.fixture(autouse=True)
def served(openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    """Every openai/ model, the adversary's too, is answered by the fake server."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-adversary")
    monkeypatch.setenv("OPENAI_API_BASE", openai_server.base_url)
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    yield openai_server


def battle(strategy: str, params: str = "", max_messages: int = 2) -> str:
    return usecases.create_battle(
        {
            "agent_model": MODEL,
            "adversary_model": MODEL,
            "strategy": strategy,
            "adversary_params": params,
            "max_messages": max_messages,
            "seed": 1,
        }
    )


def said(content: dict[str, object]) -> str:
    return "text:" + json.dumps(content)


def test_crescendo_rolls_back_over_http(served: FakeOpenAIServer) -> None:
    question = {
        "generated_question": "How do refunds work?",
        "last_response_summary": "",
        "rationale_behind_jailbreak": "x",
    }
    served.script([said(question), "text:I can't help with that.", said(question | {"generated_question": "And now?"})])
    served.script([CONCEDES])
    battle_id = battle("crescendo", "max_backtracks=1")
    result = usecases.run_inline(battle_id)
    view = transcript(battle_id)
    assert result.outcome == "achieved" and view.battle.rolled_back == 1 and view.battle.target_queries == 2
    agent_requests = [q for q in served.completions() if q.body["messages"][0]["content"].startswith("You are the")]
    second = agent_requests[-1].body["messages"]
    assert [m["content"] for m in second[1:]] == ["And now?"]  # the refused exchange is gone from the target's view


def test_goat_sends_only_the_reply_over_http(served: FakeOpenAIServer) -> None:
    turn = {"observation": "o", "thought": "t", "strategy": "hypothetical", "reply": "Hypothetically, how?"}
    served.script([said(turn), CONCEDES])
    battle_id = battle("goat")
    assert usecases.run_inline(battle_id).outcome == "achieved"
    to_agent = served.completions()[-1].body["messages"]
    assert to_agent[-1]["content"] == "Hypothetically, how?"
    assert not any("thought" in m["content"] for m in to_agent)
    note = json.loads(transcript(battle_id).messages[0].content)
    assert note == {"kind": "goat", "observation": "o", "thought": "t", "strategy": "hypothetical"}


def test_pair_and_tap_over_http(served: FakeOpenAIServer) -> None:
    attempt = {"improvement": "", "prompt": "Please help me with my request."}
    served.script([said(attempt), "ok"])
    pair = battle("pair", "pair_streams=1,pair_depth=1")
    assert usecases.run_inline(pair).outcome == "held"
    assert transcript(pair).battle.conversations == 1

    served.script([said(attempt), said({"on_topic": True}), "ok", said(attempt), said({"on_topic": False})])
    tap = battle("tap", "tap_width=2,tap_branching=1,tap_depth=1")
    assert usecases.run_inline(tap).outcome == "held"
    view = transcript(tap).battle
    assert (view.conversations, view.target_queries) == (2, 1)


def test_an_unparseable_adversary_answer_is_asked_once_more_then_fails_the_battle(served: FakeOpenAIServer) -> None:
    served.script(["text:Sure! Here is my next move: ask nicely.", "text:{not json"])
    battle_id = battle("goat")
    result = usecases.run_inline(battle_id)
    view = transcript(battle_id)
    assert result.outcome == "failed" and view.battle.error_kind == "adversary"
    assert "asked twice" in (result.error or "") and "not a JSON object" in (result.error or "")
    assert view.messages == ()  # nothing guessed, nothing sent to the target
    _, second = served.completions()
    assert second.body["messages"][-2]["content"] == "Sure! Here is my next move: ask nicely."
    assert second.body["messages"][-1]["content"] == FORMAT_RETRY

    served.script(["text:no json at all", said({"observation": "o", "thought": "t", "strategy": "dual_response"})])
    wrong_shape = battle("goat")
    result = usecases.run_inline(wrong_shape)
    assert result.outcome == "failed" and "reply: Field required" in (result.error or "")
