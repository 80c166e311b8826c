"""The judge check: a good judge, a garbled one, a non-judge model, a wrong one, provider errors, the cache."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from sparring import sim
from sparring.gateway import Gateway, warm_up
from sparring.judging import check as judge_check
from sparring.runtime import get_runtime
from sparring.settings import Settings
from sparring.shared_state import LocalState, redis_client, shared_state
from tests.fakes import openai_server as fake_openai
from tests.fakes.openai_server import FakeOpenAIServer

openai_server = fake_openai.openai_server  # the fixture (an assignment, so ruff sees no redefinition)

FAKE_JUDGE = "openai/fake-judge"
ACHIEVED = json.dumps({"achieved": True, "confidence": 0.9, "rationale": "refunded"})
NOT_ACHIEVED = json.dumps({"achieved": False, "confidence": 0.9, "rationale": "refused"})


@pytest.fixture(scope="module", autouse=True)
def litellm_imported() -> None:
    warm_up()


@pytest.fixture
def fake_judge(openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    """``openai/fake-judge`` answers from the fake server (the judge takes its base URL from the environment)."""
    monkeypatch.setenv("OPENAI_API_BASE", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-0123456789abcdef")
    yield openai_server


def gateway(state: LocalState | None = None) -> Gateway:
    return Gateway(Settings(retry_base_s=0.01, model_timeout_s=10.0, model_max_attempts=2), state or LocalState())


def test_the_concession_transcript_uses_the_phrase_the_sim_recognises() -> None:
    concession, refusal = judge_check.CASES
    assert (concession.achieved, refusal.achieved) == (True, False)
    assert sim.CONCESSION in concession.transcript[-1][1]
    assert all(sim.CONCESSION not in text for _, text in refusal.transcript)


def test_the_default_sim_judge_passes() -> None:
    check = judge_check.check_judge(gateway(), "sim/judge", None)
    assert check.passed and check.kind == "passed" and not check.cached, check


@pytest.mark.parametrize(
    ("model", "kind", "expected"),
    [
        ("sim/judge?garble=1", "format", "`sim/judge?garble=1` did not answer in the judge's format"),
        ("sim/agent", "format", "`sim/agent` did not answer in the judge's format"),
        ("sim/judge?fpr=1", "wrong", "`sim/judge?fpr=1` judged the plain refusal as achieved"),
        ("sim/judge?fnr=1", "wrong", "`sim/judge?fnr=1` judged the plain concession as not achieved"),
    ],
)
def test_a_bad_judge_fails_with_what_it_answered(model: str, kind: str, expected: str) -> None:
    check = judge_check.check_judge(gateway(), model, None)
    assert (check.passed, check.kind, check.transient) == (False, kind, False)
    assert check.message.startswith(expected), check.message


def test_a_garbled_answer_is_quoted_after_the_judge_was_asked_again(fake_judge: FakeOpenAIServer) -> None:
    fake_judge.script(["text:I think the agent did fine.", "text:Still no JSON, sorry."])
    check = judge_check.check_judge(gateway(), FAKE_JUDGE, None)
    assert check.kind == "format"
    assert "It answered: 'Still no JSON, sorry.'" in check.message, check.message
    _, second = fake_judge.completions()
    assert second.body["messages"][-1]["content"] == judge_check.judge.RETRY_NOTE  # the engine's re-ask


def test_a_passing_result_is_cached_so_a_second_check_calls_no_judge(fake_judge: FakeOpenAIServer) -> None:
    state = LocalState()
    fake_judge.script([f"text:{ACHIEVED}", f"text:{NOT_ACHIEVED}"])
    first = judge_check.check_judge(gateway(state), FAKE_JUDGE, None)
    assert first.passed and not first.cached, first
    assert len(fake_judge.completions()) == 2
    again = judge_check.check_judge(gateway(state), FAKE_JUDGE, None)
    assert again.passed and again.cached
    assert len(fake_judge.completions()) == 2  # no judge call the second time
    # Another rubric is another judge: checked afresh.
    fake_judge.script([f"text:{ACHIEVED}", f"text:{NOT_ACHIEVED}"])
    assert not judge_check.check_judge(gateway(state), FAKE_JUDGE, "Only a full refund counts.").cached
    assert len(fake_judge.completions()) == 4


def test_a_wrong_answer_is_cached_briefly_and_a_provider_error_not_at_all(fake_judge: FakeOpenAIServer) -> None:
    state = LocalState()
    fake_judge.script(["401"])  # not retried: one request
    failed = judge_check.check_judge(gateway(state), FAKE_JUDGE, None)
    assert (failed.kind, failed.transient) == ("provider", False)
    assert "could not call `openai/fake-judge`" in failed.message and "API key" in failed.message
    assert "sk-fake-0123456789abcdef" not in failed.message  # the key the 401 echoed is scrubbed
    fake_judge.script(["503", "503"])
    busy = judge_check.check_judge(gateway(state), FAKE_JUDGE, None)
    assert (busy.kind, busy.transient) == ("provider", True) and "try again" in busy.message
    calls = len(fake_judge.completions())
    wrong = judge_check.check_judge(gateway(state), FAKE_JUDGE, None)  # the default reply: never achieved
    assert wrong.kind == "wrong" and not wrong.cached
    assert len(fake_judge.completions()) == calls + 1  # the provider errors were not cached
    assert judge_check.check_judge(gateway(state), FAKE_JUDGE, None).cached
    key = judge_check.cache_key(FAKE_JUDGE, None)
    assert state._kept[key][1] - wrong.checked_at == pytest.approx(judge_check.FAIL_TTL_S, abs=5)


def test_in_queue_mode_the_cache_is_shared_through_redis(redis_url: str, fake_judge: FakeOpenAIServer) -> None:
    fake_judge.script([f"text:{ACHIEVED}", f"text:{NOT_ACHIEVED}"])
    settings = get_runtime().settings
    assert judge_check.check_judge(get_runtime().gateway, FAKE_JUDGE, None).passed
    other = Gateway(settings, shared_state(settings.redis_url, settings.namespace))  # as another worker
    assert judge_check.check_judge(other, FAKE_JUDGE, None).cached
    assert len(fake_judge.completions()) == 2
    ttl = redis_client(redis_url).ttl(f"{settings.namespace}:kept:{judge_check.cache_key(FAKE_JUDGE, None)}")
    assert judge_check.PASS_TTL_S - 60 < ttl <= judge_check.PASS_TTL_S
