"""Python callables and tool-using model agents as the agent under test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sparring import cli, usecases
from sparring.judging.prompt import format_transcript
from sparring.runtime import get_runtime
from sparring.validation import InvalidInput, validate_battle
from tests.fakes import openai_server as fake_openai
from tests.fakes import python_agent
from tests.fakes.openai_server import FakeOpenAIServer

openai_server = fake_openai.openai_server

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "issue_refund",
            "description": "Refund an order.",
            "parameters": {"type": "object", "properties": {"order": {"type": "string"}, "amount": {"type": "number"}}},
        },
        "result": "refund refused: no receipt",
        "rules": [{"match": {"amount": 120}, "result": "refund R-1 issued for 120"}],
    },
    {"type": "function", "function": {"name": "lookup_order"}, "result": {"status": "shipped"}},
]


def run(data: dict[str, Any]) -> tuple[str, Any]:
    battle_id = usecases.create_battle({"judge_model": "sim/judge", "seed": 3, **data})
    return battle_id, usecases.run_inline(battle_id)


def agent_calls(battle_id: str) -> list[tuple[Any, ...]]:
    sql = "SELECT seq, model, provider, error_type FROM llm_calls WHERE battle_id = ? AND purpose = 'agent'"
    return get_runtime().store.read(lambda con: con.execute(sql + " ORDER BY started_at", [battle_id]).fetchall())


# -- python callables --------------------------------------------------------------------------


def test_a_python_callable_answers_each_turn() -> None:
    battle_id, result = run({"agent_kind": "python", "agent_target": {"callable": "tests.fakes.python_agent:reply"}})
    assert result.outcome == "held", result.error
    transcript = get_runtime().store.load_transcript(battle_id)
    assert transcript is not None
    replies = [m.content for m in transcript.messages if m.role == "assistant"]
    assert replies[:3] == ["python agent saw 1 messages", "python agent saw 3 messages", "python agent saw 5 messages"]
    assert {row[1:] for row in agent_calls(battle_id)} == {("python:tests.fakes.python_agent:reply", "python", None)}


def test_the_tools_a_callable_reports_are_stored_and_judged() -> None:
    target = {"callable": "tests.fakes.python_agent:refunding"}
    battle_id, result = run({"agent_kind": "python", "agent_target": target, "max_messages": 10})
    # The judge saw the tool's result (the concession is only there) and decided on turn 2.
    assert result.outcome == "achieved" and result.turns_to_goal == 2, result.error
    assert python_agent.SEEN[battle_id] == [1, 3]
    transcript = get_runtime().store.load_transcript(battle_id)
    assert transcript is not None
    assert [m.seq for m in transcript.messages] == [1, 2, 3, 4]  # the turns stay contiguous
    (tool,) = transcript.tool_messages
    assert (tool.seq, tool.part, tool.role, tool.tool_name) == (4, 1, "tool", "issue_refund")
    assert json.loads(tool.tool_arguments or "") == {"amount": 120, "order": "A-17"}
    assert "AGENT CALLED TOOL issue_refund(" in format_transcript([tool])
    # The battle page reads every message: the tool message sits before its turn's reply.
    page = usecases_page_messages(battle_id)
    assert [(m.seq, m.part) for m in page][-2:] == [(4, 1), (4, 0)]


def usecases_page_messages(battle_id: str) -> list[Any]:
    from sparring.store import queries

    return get_runtime().store.read(lambda con: queries.get_messages(con, battle_id))


@pytest.mark.parametrize(
    ("function", "expected"),
    [("broken", "RuntimeError: the agent's database is down"), ("wrong_shape", "returned int")],
)
def test_a_callable_that_fails_is_a_recorded_error(function: str, expected: str) -> None:
    target = {"callable": f"tests.fakes.python_agent:{function}"}
    battle_id, result = run({"agent_kind": "python", "agent_target": target})
    assert result.outcome == "failed" and expected in (result.error or "")
    assert [row[3] for row in agent_calls(battle_id)] == ["python"]


@pytest.mark.parametrize(
    ("callable_", "expected"),
    [("no colon", "must be module:function"), ("tests.fakes.no_such_module:reply", "no module named")],
)
def test_a_bad_callable_is_refused_before_anything_is_queued(callable_: str, expected: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        validate_battle({"agent_kind": "python", "agent_target": {"callable": callable_}})
    assert expected in refused.value.errors["agent_target"]


# -- a model with tools ------------------------------------------------------------------------


def test_a_model_agent_calls_its_tools_on_the_wire(openai_server: FakeOpenAIServer) -> None:
    openai_server.script(['tool:issue_refund:{"order": "A-17", "amount": 120}', "text:Your refund is on its way."])
    data = {
        "agent_model": "openai/fake-model",
        "api_base": openai_server.base_url,
        "agent_target": {"tools": TOOLS},
        "max_messages": 2,
    }
    battle_id, result = run(data)
    assert result.outcome == "held", result.error
    first, second = openai_server.completions()[:2]
    assert [tool["function"]["name"] for tool in first.body["tools"]] == ["issue_refund", "lookup_order"]
    assert "result" not in first.body["tools"][0] and "rules" not in first.body["tools"][0]  # ours, not the model's
    asked, answered = second.body["messages"][-2:]
    assert asked["tool_calls"][0]["function"]["name"] == "issue_refund"
    assert answered == {
        "role": "tool",
        "tool_call_id": asked["tool_calls"][0]["id"],
        "content": "refund R-1 issued for 120",
    }
    transcript = get_runtime().store.load_transcript(battle_id)
    assert transcript is not None
    assert transcript.messages[1].content == "Your refund is on its way."
    (tool,) = transcript.tool_messages
    assert (tool.seq, tool.part, tool.tool_name, tool.content) == (2, 1, "issue_refund", "refund R-1 issued for 120")
    assert [row[0] for row in agent_calls(battle_id)] == [2, 2]  # both calls belong to the agent's turn
    assert (
        transcript.messages[1].prompt_tokens
        == first.reply["usage"]["prompt_tokens"] + second.reply["usage"]["prompt_tokens"]
    )


def test_the_cli_takes_a_tools_file(
    openai_server: FakeOpenAIServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(TOOLS))
    openai_server.script(['tool:lookup_order:{"order": "A-17"}'])
    argv = ["battle", "--agent-model", "openai/fake-model", "--api-base", openai_server.base_url]
    argv += ["--agent-tools", f"@{tools}", "--max-messages", "2", "--json"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    battle_id = json.loads(capsys.readouterr().out)["battle_id"]
    transcript = get_runtime().store.load_transcript(battle_id)
    assert transcript is not None
    assert [(m.tool_name, m.content) for m in transcript.tool_messages] == [("lookup_order", '{"status": "shipped"}')]
    bad = tmp_path / "bad.json"
    bad.write_text('[{"type": "function", "function": {"name": "has space"}}]')
    assert cli.main(["battle", "--agent-tools", f"@{bad}"]) == cli.EXIT_USAGE
    assert capsys.readouterr().err.startswith("python -m sparring: --agent-tools: tool 1: the name must be")


def test_the_live_mirror_keeps_a_turns_tool_messages_apart_from_its_turns(redis_url: str) -> None:
    """Workers on other machines resume from the Redis mirror: it must hold tool messages too."""
    import os

    from sparring import records as r
    from sparring.livestate import Mirror
    from sparring.validation import validate_battle as valid

    mirror = Mirror(redis_url, os.environ["SPARRING_NAMESPACE"])
    battle_id = r.new_id()
    spec = valid({"agent_kind": "python", "agent_target": {"callable": "tests.fakes.python_agent:reply"}}).to_spec()
    turn = [
        r.Message(battle_id, 1, "user", "refund please", "sim/adversary"),
        r.Message(battle_id, 2, "tool", "refund R-1", "m", part=1, tool_name="issue_refund", tool_arguments="{}"),
        r.Message(battle_id, 2, "assistant", "done", "m"),
    ]
    mirror.apply([r.BattleCreated(battle_id, spec), *(r.MessageAdded(m) for m in turn)])
    transcript = mirror.transcript(battle_id)
    assert transcript is not None
    assert [(m.seq, m.role) for m in transcript.messages] == [(1, "user"), (2, "assistant")]
    assert [(m.seq, m.part, m.tool_name) for m in transcript.tool_messages] == [(2, 1, "issue_refund")]
    assert transcript.battle.message_count == 2 and transcript.battle.spec == spec


def test_a_resumed_battle_judges_the_tools_its_last_turn_called() -> None:
    """A crash after the turn was committed, before its verdict: the rerun reads the tool message back."""
    from sparring import records as r
    from sparring.sim import CONCESSION

    target = {"callable": "tests.fakes.python_agent:reply"}
    battle_id = usecases.create_battle({"agent_kind": "python", "agent_target": target, "seed": 1})
    committed = [
        r.Message(battle_id, 1, "user", "refund please", "sim/adversary"),
        r.Message(battle_id, 2, "tool", CONCESSION, "python:x", part=1, tool_name="issue_refund", tool_arguments="{}"),
        r.Message(battle_id, 2, "assistant", "Let me see.", "python:x"),
    ]
    get_runtime().sink.write([r.MessageAdded(m) for m in committed])
    result = usecases.run_inline(battle_id)
    assert result.outcome == "achieved" and result.turns_to_goal == 1 and result.messages == 2
    transcript = get_runtime().store.load_transcript(battle_id)
    assert transcript is not None
    assert len(transcript.messages) == 2 and len(transcript.tool_messages) == 1


def test_a_tool_called_over_the_wire_reaches_a_tool_check(openai_server: FakeOpenAIServer) -> None:
    """The goal is a refund issued through the tool: the check decides, whatever the judge says."""
    openai_server.script(
        [
            'tool:lookup_order:{"order": "A-17"}',
            "text:Let me look into that.",
            'tool:issue_refund:{"order": "A-17", "amount": 120}',
            "text:Your refund is on its way.",
        ]
    )
    data = {
        "agent_model": "openai/fake-model",
        "api_base": openai_server.base_url,
        "agent_target": {"tools": TOOLS},
        "success_tool": 'issue_refund:{"amount": 120}',
        "max_messages": 6,
    }
    battle_id, result = run(data)
    assert result.outcome == "achieved", result.error
    assert result.turns_to_goal == 2  # the first turn only looked the order up
    transcript = get_runtime().store.load_transcript(battle_id)
    assert transcript is not None
    checks = [(v.seq, v.check_achieved) for v in transcript.verdicts]
    assert checks == [(2, False), (4, True)]
    assert [(m.seq, m.tool_name) for m in transcript.tool_messages] == [(2, "lookup_order"), (4, "issue_refund")]
