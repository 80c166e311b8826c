"""HTTP agents: battles against a real JSON-over-HTTP service started by the test (tests/fakes).

The adversary and the judge are sim models; the agent under test is the fake service,
reached over a socket through the gateway's policy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sparring import cli, usecases
from sparring.runtime import get_runtime
from sparring.validation import InvalidInput, validate_battle
from tests.conftest import reset_all
from tests.fakes import agent_server as fake_agent
from tests.fakes.agent_server import FakeAgentServer

agent_server = fake_agent.agent_server

STATELESS = '{"conversation": {{messages}}, "sid": {{session_id}}}'
STATEFUL = '{"message": {{message}}, "sid": {{session_id}}}'
KEY = "SPARRING_TEST_AGENT_KEY"
SECRET = "agent-secret-" + "Qm7Rt2Vx" * 3


def http_battle(url: str, request: str = STATELESS, **extra: Any) -> dict[str, Any]:
    target = {"url": url, "request": request, "response": "data.text", **extra.pop("target", {})}
    return {"agent_kind": "http", "agent_target": target, "judge_model": "sim/judge", "seed": 5, **extra}


def run(data: dict[str, Any]) -> tuple[str, Any]:
    battle_id = usecases.create_battle(data)
    return battle_id, usecases.run_inline(battle_id)


def calls(battle_id: str) -> list[tuple[Any, ...]]:
    sql = (
        "SELECT attempt, error_type, http_status, model, provider, prompt_tokens FROM llm_calls "
        "WHERE battle_id = ? AND purpose = 'agent' ORDER BY started_at"
    )
    return get_runtime().store.read(lambda con: con.execute(sql, [battle_id]).fetchall())


def test_a_stateless_target_gets_the_whole_conversation_every_turn(agent_server: FakeAgentServer) -> None:
    battle_id, result = run(http_battle(agent_server.url, max_messages=6))
    assert result.outcome == "held", result.error
    bodies = [request.body for request in agent_server.requests]
    assert [len(body["conversation"]) for body in bodies] == [1, 3, 5]
    assert {body["sid"] for body in bodies} == {battle_id}
    assert bodies[1]["conversation"][1]["role"] == "assistant"
    transcript = get_runtime().store.load_transcript(battle_id)
    assert transcript is not None
    agent = [m for m in transcript.messages if m.role == "assistant"]
    assert agent[0].content.startswith("saw 1 messages; last: ")
    assert agent[0].model == agent_server.url and agent[0].prompt_tokens == 7
    assert transcript.battle.spec.agent.kind == "http"
    assert {row[4] for row in calls(battle_id)} == {"http:127.0.0.1:" + agent_server.url.split(":")[2].split("/")[0]}


def test_a_stateful_target_gets_only_the_latest_message(agent_server: FakeAgentServer) -> None:
    battle_id, result = run(http_battle(agent_server.url, STATEFUL, max_messages=6, target={"session": "stateful"}))
    assert result.outcome == "held", result.error
    bodies = [request.body for request in agent_server.requests]
    assert len(bodies) == 3 and all(isinstance(body["message"], str) for body in bodies)
    transcript = get_runtime().store.load_transcript(battle_id)
    assert transcript is not None
    adversary = [m.content for m in transcript.messages if m.role == "user"]
    assert [body["message"] for body in bodies] == adversary
    assert agent_server.session_length(battle_id) == 3  # the service kept the session itself


def test_header_secrets_come_from_the_environment_and_are_never_stored(
    agent_server: FakeAgentServer, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    monkeypatch.setenv(KEY, SECRET)
    headers = {"Authorization": "Bearer ${" + KEY + "}", "X-Team": "red"}
    battle_id, result = run(http_battle(agent_server.url, max_messages=4, target={"headers": headers}))
    assert result.outcome == "held", result.error
    assert agent_server.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert agent_server.requests[0].headers["x-team"] == "red"
    view = get_runtime().store.get_battle(battle_id)
    assert view is not None and "${" + KEY + "}" in (view.spec.agent.target or "")
    # A service that echoes the key in an error: the recorded error has it scrubbed.
    agent_server.script(["401"])
    _, failed = run(http_battle(agent_server.url, max_messages=2, target={"headers": headers}))
    assert failed.outcome == "failed" and SECRET not in (failed.error or "") and "[redacted]" in (failed.error or "")
    for path in isolated.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_a_reply_missing_at_the_path_is_a_recorded_error_not_retried(agent_server: FakeAgentServer) -> None:
    agent_server.script(["nopath"])
    battle_id, result = run(http_battle(agent_server.url))
    assert result.outcome == "failed"
    assert "has no data.text" in (result.error or "")
    assert [(row[0], row[1], row[2]) for row in calls(battle_id)] == [(1, "bad_response", 200)]


def test_a_reply_that_is_not_json_is_a_recorded_error(agent_server: FakeAgentServer) -> None:
    agent_server.script(["nojson"])
    battle_id, result = run(http_battle(agent_server.url))
    assert result.outcome == "failed" and "not JSON" in (result.error or "")
    assert [row[1] for row in calls(battle_id)] == ["bad_response"]


def test_a_two_megabyte_reply_is_refused_without_a_crash(agent_server: FakeAgentServer) -> None:
    agent_server.script(["big:2000000"])
    battle_id, result = run(http_battle(agent_server.url))
    assert result.outcome == "failed" and "byte limit" in (result.error or "")
    assert [row[1] for row in calls(battle_id)] == ["too_large"]


def test_429_is_retried_after_its_retry_after(agent_server: FakeAgentServer) -> None:
    agent_server.script(["429:0.4"])
    battle_id, result = run(http_battle(agent_server.url, max_messages=2))
    assert result.outcome == "held", result.error
    first, second = agent_server.requests[:2]
    assert second.arrived - first.arrived >= 0.4
    assert [(row[0], row[1], row[2]) for row in calls(battle_id)] == [(1, "rate_limited", 429), (2, None, 200)]


def test_server_errors_are_retried_until_an_answer(agent_server: FakeAgentServer) -> None:
    agent_server.script(["500", "503"])
    battle_id, result = run(http_battle(agent_server.url, max_messages=2))
    assert result.outcome == "held", result.error
    assert [row[1] for row in calls(battle_id)] == ["server", "server", None]


def test_a_target_that_hangs_times_out_and_is_retried(
    agent_server: FakeAgentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARRING_MODEL_TIMEOUT_S", "0.5")
    reset_all()
    agent_server.script(["hang:3"])
    battle_id, result = run(http_battle(agent_server.url, max_messages=2))
    assert result.outcome == "held", result.error
    assert [row[1] for row in calls(battle_id)] == ["timeout", None]


def test_an_unreachable_url_is_no_validation_error_but_a_failed_battle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARRING_MODEL_MAX_ATTEMPTS", "2")
    reset_all()
    battle_id, result = run(http_battle("http://127.0.0.1:9/chat"))
    assert result.outcome == "failed" and "agent endpoint http://127.0.0.1:9/chat failed" in (result.error or "")
    assert [row[1] for row in calls(battle_id)] == ["connection", "connection"]


# -- validation: before anything is queued ----------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({"request": '{"m": "{{message}}"}'}, 'not "{{message}}"'),
        ({"request": '{"m": {{message}}, "x": {{user}}}'}, "unknown placeholder {{user}}"),
        ({"request": '{"sid": {{session_id}}}'}, "must contain {{message}} or {{messages}}"),
        ({"request": '{"m": {{message}}'}, "is not JSON once its placeholders are filled"),
        ({"response": "data..text"}, "can never match"),
        ({"response": "$."}, "is empty"),
        ({"url": "ftp://example.com/chat"}, "http:// or https://"),
        ({"headers": {"Authorization": "Bearer sk-literal"}}, "looks like a secret"),
        ({"headers": {"Authorization": "Bearer ${SPARRING_TEST_UNSET_VAR}"}}, "SPARRING_TEST_UNSET_VAR is not set"),
        ({"headers": ["no colon here"]}, "is not 'Name: value'"),
        ({"method": "DELETE"}, "must be one of POST, PUT, PATCH"),
        ({"session": "sticky"}, "stateless or stateful"),
    ],
)
def test_bad_settings_are_refused_at_their_part(target: dict[str, Any], expected: str) -> None:
    data = http_battle("http://127.0.0.1:1/chat", target=target)
    with pytest.raises(InvalidInput) as refused:
        validate_battle(data)
    assert expected in refused.value.errors["agent_target"]


def test_the_cli_refuses_bad_options_at_the_option_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], isolated: Path
) -> None:
    base = ["battle", "--agent-http", "http://127.0.0.1:1/chat", "--agent-response", "data.text"]
    for extra, option in (
        (["--agent-request", '{"m": "{{message}}"}'], "--agent-request"),
        (["--agent-request", STATELESS, "--agent-header", "Authorization: Bearer ${SPARRING_NOPE}"], "--agent-header"),
        (["--agent-request", STATELESS, "--agent-session", "sticky"], "--agent-session"),
    ):
        assert cli.main([*base, *extra]) == cli.EXIT_USAGE
        assert capsys.readouterr().err.startswith(f"python -m sparring: {option}: ")
    assert cli.main(["battle", "--agent-request", STATELESS]) == cli.EXIT_USAGE
    assert "--agent-request: only goes with --agent-http" in capsys.readouterr().err
    assert cli.main(["battle", "--agent-http", "http://x.test/", "--agent-python", "m:f"]) == cli.EXIT_USAGE
    assert "cannot be combined" in capsys.readouterr().err
    assert get_runtime().store.list_battles() == []


def test_the_documented_command_line_runs_against_a_service_of_that_shape(
    agent_server: FakeAgentServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    template = tmp_path / "request.json"
    template.write_text(STATELESS)
    argv = ["battle", "--agent-http", agent_server.url, "--agent-request", f"@{template}"]
    argv += ["--agent-response", "data.text", "--max-messages", "4", "--json"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    payload = json.loads(capsys.readouterr().out)
    assert payload["outcome"] == "held" and payload["messages"] == 4
    assert payload["prompt_tokens"] >= 14  # the service's usage was recorded for both agent turns
    assert len(agent_server.requests) == 2


def test_a_header_variable_missing_where_the_battle_runs_is_a_recorded_error(
    agent_server: FakeAgentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY, SECRET)
    headers = {"Authorization": "Bearer ${" + KEY + "}"}
    battle_id = usecases.create_battle(http_battle(agent_server.url, target={"headers": headers}))
    monkeypatch.delenv(KEY)  # the worker that runs it lacks the variable
    result = usecases.run_inline(battle_id)
    assert result.outcome == "failed" and f"{KEY} is not set in this worker" in (result.error or "")
    assert [row[1] for row in calls(battle_id)] == ["auth"]
    assert agent_server.requests == []  # nothing was sent without its key


# -- attack strategies against a service -------------------------------------------------------


def test_crescendo_rolls_back_on_a_stateless_service_and_says_it_cannot_on_a_stateful_one(
    agent_server: FakeAgentServer,
) -> None:
    """A stateless service is sent only the target's path, so a roll-back takes the refused
    exchange out of what it sees; a stateful one keeps its own history: no roll-back, and a note."""
    agent_server.script(["text:I'm sorry, but I can't help with that."] * 40)
    battle_id, result = run(http_battle(agent_server.url, strategy="crescendo", max_messages=6))
    assert result.outcome == "held", result.error
    view = get_runtime().store.get_battle(battle_id)
    assert view is not None and view.rolled_back > 0
    transcript = get_runtime().store.load_transcript(battle_id)
    assert transcript is not None
    rolled = {m.content for m in transcript.messages if m.rolled_back and m.role == "user"}
    for request in agent_server.requests:  # a refused exchange is never history again
        history = request.body["conversation"][:-1]
        assert rolled.isdisjoint(m["content"] for m in history), "a rolled-back message was sent again"
    assert view.target_queries == len(agent_server.requests)

    agent_server.script(["text:I'm sorry, but I can't help with that."] * 40)
    before = len(agent_server.requests)
    stateful = http_battle(agent_server.url, STATEFUL, strategy="crescendo", max_messages=6)
    stateful["agent_target"]["session"] = "stateful"
    battle_id, result = run(stateful)
    assert result.outcome == "held", result.error
    view = get_runtime().store.get_battle(battle_id)
    assert view is not None and view.rolled_back == 0
    transcript = get_runtime().store.load_transcript(battle_id)
    assert transcript is not None
    notes = [json.loads(m.content) for m in transcript.messages if m.role == "note"]
    assert any(note.get("kind") == "no_rollback" for note in notes)
    assert len(agent_server.requests) - before == 3  # every agent turn counts against the cap


def test_an_http_agent_launches_through_the_queue(
    agent_server: FakeAgentServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The launch path prices the battle for the spend limits: a service is no model we pay for."""
    battle_id = usecases.launch_battle(http_battle(agent_server.url), require_worker=False)
    assert get_runtime().store.get_battle(battle_id) is not None
    argv = ["scale", "--agent-http", agent_server.url, "--agent-request", STATELESS, "--agent-response", "data.text"]
    assert cli.main([*argv, "--runs", "2", "--dry-run", "--json"]) == 0, capsys.readouterr().err
    forecast = json.loads(capsys.readouterr().out)["forecast"]
    assert "sim agent concedes" not in json.dumps(forecast)  # no prior borrowed from the form's default model


def test_a_model_option_beside_another_kind_of_agent_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    http = ["--agent-http", "http://127.0.0.1:9/chat", "--agent-request", STATELESS, "--agent-response", "data.text"]
    for command in ("battle", "scale"):
        assert cli.main([command, *http, "--agent-model", "sim/agent"]) == cli.EXIT_USAGE
        assert "--agent-model: is for a model agent; --agent-http is the agent here" in capsys.readouterr().err
    assert cli.main(["battle", "--agent-python", "tests.fakes.python_agent:reply", "--temperature", "0.5"]) == 2
    assert "--temperature: is for a model agent; --agent-python is the agent here" in capsys.readouterr().err
    assert get_runtime().store.read(lambda con: con.execute("SELECT count(*) FROM battles").fetchone()) == (0,)
