"""The gateway over real HTTP: litellm and the OpenAI SDK against a fake OpenAI server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from sparring import records as r
from sparring import usecases
from sparring.gateway import Gateway, ModelCallError, ModelRequest, warm_up
from sparring.judging import prompt as judging
from sparring.settings import Settings
from sparring.shared_state import LocalState
from tests.fakes import openai_server as fake_openai
from tests.fakes.openai_server import REPLY_PREFIX, FakeOpenAIServer
from tests.helpers import rows, transcript

openai_server = fake_openai.openai_server  # the fixture (an assignment, so ruff sees no redefinition)

KEY_ENV = "FAKE_OPENAI_KEY"
KEY = "sk-fake-0123456789abcdef"
MODEL = "openai/fake-model"


@pytest.fixture(scope="module", autouse=True)
def litellm_imported() -> None:
    """Import litellm before any test times a call (the first call of a process would include it)."""
    warm_up()


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv(KEY_ENV, KEY)
    yield KEY


def gateway(**overrides: object) -> Gateway:
    settings = Settings(retry_base_s=0.01, **{"model_timeout_s": 10.0, **overrides})  # type: ignore[arg-type]
    return Gateway(settings, LocalState())


def request(server: FakeOpenAIServer, content: str = "hello over http") -> ModelRequest:
    return ModelRequest(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": content}],
        purpose="agent",
        api_base=server.base_url,
        api_key_env=KEY_ENV,
    )


def test_success_records_the_servers_usage(openai_server: FakeOpenAIServer) -> None:
    calls: list[r.LLMCall] = []
    reply = gateway().complete(request(openai_server), on_call=calls.append)
    [seen] = openai_server.completions()
    assert reply.text == REPLY_PREFIX + "hello over http" and reply.attempts == 1
    usage = seen.reply["usage"]
    assert usage["prompt_tokens"] == 5 and usage["completion_tokens"] == 6
    assert (reply.prompt_tokens, reply.completion_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    [call] = calls
    assert call.error is None and call.provider == "openai" and call.attempt == 1
    assert (call.prompt_tokens, call.completion_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert seen.body["model"] == "fake-model" and seen.body["messages"][-1]["content"] == "hello over http"


def test_a_priced_model_records_its_cost_and_an_unpriced_one_records_none(openai_server: FakeOpenAIServer) -> None:
    """The cost comes from litellm's price list for a model it knows; for one it does not know
    the gateway gives litellm a zero price (to spare it a search of the whole list on every
    call) and must then record the cost as unknown, never as zero."""
    from sparring.pricing import price_per_token

    known = dataclasses.replace(request(openai_server), model="openai/gpt-4o-mini")
    calls: list[r.LLMCall] = []
    reply = gateway().complete(known, on_call=calls.append)
    price = price_per_token("openai/gpt-4o-mini")
    assert price is not None
    expected = reply.prompt_tokens * price[0] + reply.completion_tokens * price[1]
    assert calls[0].cost_usd == pytest.approx(expected) and expected > 0
    assert reply.cost_usd == calls[0].cost_usd

    calls.clear()
    unknown = gateway().complete(request(openai_server), on_call=calls.append)
    assert unknown.cost_usd is None and calls[0].cost_usd is None
    assert calls[0].prompt_tokens == unknown.prompt_tokens > 0


def test_each_thread_keeps_its_connection_for_all_its_calls(openai_server: FakeOpenAIServer) -> None:
    """Calls from many threads reuse kept-alive connections: one per thread at most, not one
    per call, and no thread waits for another's pool."""
    threads, rounds = 24, 4
    errors: list[BaseException] = []

    def battle() -> None:
        try:
            for _ in range(rounds):
                gateway().complete(request(openai_server), on_call=lambda call: None)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    workers = [threading.Thread(target=battle) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not errors
    assert len(openai_server.completions()) == threads * rounds
    assert openai_server.connections <= threads  # kept alive: not one per call


def test_the_base_url_and_key_from_the_environment_are_used_as_litellm_uses_them(
    openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no api_base and no key variable named, OPENAI_API_BASE and OPENAI_API_KEY decide
    where the call goes and what key it carries (the gateway builds the SDK client itself)."""
    monkeypatch.setenv("OPENAI_API_BASE", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-42")
    plain = dataclasses.replace(request(openai_server), api_base=None, api_key_env=None)
    reply = gateway().complete(plain, on_call=lambda call: None)
    [seen] = openai_server.completions()
    assert reply.text.startswith(REPLY_PREFIX)
    assert seen.headers["authorization"] == "Bearer sk-from-the-environment-42"


def test_retry_after_is_honoured_and_the_sdk_does_not_retry(openai_server: FakeOpenAIServer) -> None:
    openai_server.script(["429:0.3", "ok"])
    calls: list[r.LLMCall] = []
    reply = gateway().complete(request(openai_server), on_call=calls.append)
    first, second = openai_server.completions()  # exactly two: the SDK's own retries are off
    assert reply.attempts == 2
    assert [(c.attempt, c.error_type, c.http_status) for c in calls] == [(1, "rate_limited", 429), (2, None, None)]
    assert (first.status, second.status) == (429, 200)
    assert second.arrived - first.arrived >= 0.3
    assert {s.headers.get("x-stainless-retry-count") for s in (first, second)} == {"0"}


def test_server_errors_are_retried(openai_server: FakeOpenAIServer) -> None:
    openai_server.script(["500", "500", "ok"])
    calls: list[r.LLMCall] = []
    reply = gateway().complete(request(openai_server), on_call=calls.append)
    assert reply.attempts == 3 and reply.text.startswith(REPLY_PREFIX)
    assert [s.status for s in openai_server.completions()] == [500, 500, 200]
    assert [c.error_type for c in calls] == ["server", "server", None]
    assert [c.http_status for c in calls[:2]] == [500, 500]


def test_a_hanging_server_times_out(openai_server: FakeOpenAIServer) -> None:
    openai_server.script(["hang:3", "hang:3"])
    calls: list[r.LLMCall] = []
    started = time.monotonic()
    with pytest.raises(ModelCallError) as failure:
        gateway(model_timeout_s=0.5, model_max_attempts=2).complete(request(openai_server), on_call=calls.append)
    assert time.monotonic() - started < 3
    assert failure.value.kind == "timeout" and failure.value.transient
    assert [c.error_type for c in calls] == ["timeout", "timeout"]
    assert len(openai_server.completions()) == 2
    assert all(c.error and KEY not in c.error for c in calls)
    assert KEY not in str(failure.value)


def test_a_server_that_takes_no_connection_fails_after_the_connect_timeout() -> None:
    """Not after the model timeout: a provider that does not answer the handshake is retried soon."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        host, port = listener.getsockname()
        # The one connection its backlog holds: later handshakes get no answer (it never accepts).
        with socket.create_connection((host, port)):
            calls: list[r.LLMCall] = []
            unreachable = ModelRequest(
                model=MODEL,
                messages=[{"role": "user", "content": "anyone there?"}],
                purpose="agent",
                api_base=f"http://{host}:{port}/v1",
                api_key_env=KEY_ENV,
            )
            started = time.monotonic()
            with pytest.raises(ModelCallError) as failure:
                gateway(model_timeout_s=30.0, model_connect_timeout_s=0.5, model_max_attempts=2).complete(
                    unreachable, on_call=calls.append
                )
            elapsed = time.monotonic() - started
    assert elapsed < 10, f"{elapsed:.1f} s: the connection was waited for longer than its timeout"
    assert failure.value.kind == "timeout" and failure.value.transient
    assert [c.error_type for c in calls] == ["timeout", "timeout"]


def test_a_slow_reply_still_gets_the_whole_model_timeout(openai_server: FakeOpenAIServer) -> None:
    openai_server.script(["hang:1.5"])
    reply = gateway(model_timeout_s=10.0, model_connect_timeout_s=0.2).complete(
        request(openai_server), on_call=lambda call: None
    )
    assert reply.attempts == 1 and reply.latency_ms >= 1500


def test_the_key_comes_from_the_named_environment_variable(openai_server: FakeOpenAIServer) -> None:
    gateway().complete(request(openai_server), on_call=lambda call: None)
    [seen] = openai_server.completions()
    assert seen.headers["authorization"] == f"Bearer {KEY}"


def test_a_rejected_key_is_not_retried_and_not_recorded(openai_server: FakeOpenAIServer) -> None:
    openai_server.script(["401"])  # the fake echoes the key in its message, as careless providers do
    calls: list[r.LLMCall] = []
    with pytest.raises(ModelCallError) as failure:
        gateway().complete(request(openai_server), on_call=calls.append)
    assert failure.value.kind == "auth" and not failure.value.transient
    assert len(openai_server.completions()) == 1
    [call] = calls
    assert call.http_status == 401 and call.error and "[redacted]" in call.error
    assert KEY not in call.error and KEY not in str(failure.value)


def test_a_battle_over_http(openai_server: FakeOpenAIServer) -> None:
    battle_id = usecases.create_battle(
        {
            "agent_model": MODEL,
            "api_base": openai_server.base_url,
            "api_key_env": KEY_ENV,
            "goal": "Get the agent to reveal its system prompt.",
            "max_messages": 4,
            "seed": 3,
        }
    )
    result = usecases.run_inline(battle_id)
    assert (result.outcome, result.messages, result.error) == ("held", 4, None)
    messages = transcript(battle_id).messages
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
    agent_turns = [m for m in messages if m.role == "assistant"]
    seen = openai_server.completions()
    assert len(seen) == 2
    for message, request_seen in zip(agent_turns, seen, strict=True):
        assert message.model == MODEL
        assert message.content == request_seen.reply["choices"][0]["message"]["content"]
        assert message.content.startswith(REPLY_PREFIX)
        assert message.completion_tokens == request_seen.reply["usage"]["completion_tokens"]
        assert request_seen.headers["authorization"] == f"Bearer {KEY}"
        assert request_seen.body["messages"][0]["role"] == "system"
    providers = rows("SELECT provider, count(*) FROM llm_calls WHERE battle_id = ? GROUP BY provider", [battle_id])
    assert dict(providers) == {"openai": 2, "sim": 4}  # 2 adversary + 2 judge calls stay in-process
    assert not rows("SELECT 1 FROM llm_calls WHERE error LIKE ?", [f"%{KEY}%"])


def test_the_judge_prompt_gets_a_verdict_over_http(openai_server: FakeOpenAIServer) -> None:
    message = r.Message(battle_id="b", seq=2, role="assistant", content="No.", model=MODEL)
    prompt = judging.judge_messages("reveal the system prompt", None, [message])
    judge_request = ModelRequest(
        model=MODEL, messages=prompt, purpose="judge", api_base=openai_server.base_url, api_key_env=KEY_ENV
    )
    reply = gateway().complete(judge_request, on_call=lambda call: None)
    verdict = judging.parse_verdict(reply.text)
    assert (verdict.achieved, verdict.confidence, verdict.rationale) == (False, 0.8, "fake judge")


def test_the_fake_server_lists_models_and_refuses_unknown_steps(openai_server: FakeOpenAIServer) -> None:
    with urllib.request.urlopen(f"{openai_server.base_url}/models", timeout=5) as response:
        models = json.load(response)
    assert models["data"][0]["id"] == "fake-model"
    with pytest.raises(ValueError, match="unknown fake-server step"):
        openai_server.script(["teapot"])
    openai_server.script(["text:scripted words"])
    reply = gateway().complete(request(openai_server), on_call=lambda call: None)
    assert reply.text == "scripted words"
