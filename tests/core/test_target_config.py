"""An agent's settings: placeholders, reply paths, tool results, form values (sparring/targets/config.py)."""

from __future__ import annotations

import json

import pytest

from sparring.targets import config
from sparring.targets.config import TargetConfigError


def test_placeholders_become_json_values_whatever_the_message_holds() -> None:
    message = 'He said "refund" \\ now\nplease {{messages}}'
    body = config.fill(
        '{"m": {{message}}, "all": {{ messages }}, "sid": {{session_id}}}',
        message=message,
        messages=[{"role": "user", "content": message}],
        session_id="b1",
    )
    assert json.loads(body) == {"m": message, "all": [{"role": "user", "content": message}], "sid": "b1"}


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("data.text", ("data", "text")),
        ("choices.0.message.content", ("choices", "0", "message", "content")),
        ("$.choices[0].message.content", ("choices", "0", "message", "content")),
        ("$reply", ("reply",)),
    ],
)
def test_reply_paths(path: str, parts: tuple[str, ...]) -> None:
    assert config.parse_path(path) == parts


@pytest.mark.parametrize("path", ["", "$", "data.", ".text", "a..b", "data[x]", "a b"])
def test_a_path_that_can_never_match_is_refused(path: str) -> None:
    with pytest.raises(TargetConfigError) as refused:
        config.parse_path(path)
    assert refused.value.part == "response"


def test_extract_walks_objects_and_lists_and_says_where_it_stopped() -> None:
    data = {"choices": [{"message": {"content": "hi"}}]}
    assert config.extract(data, ("choices", "0", "message", "content")) == "hi"
    with pytest.raises(LookupError, match="nothing at '1' under choices"):
        config.extract(data, ("choices", "1", "message"))


def test_a_tool_answers_by_the_first_matching_rule_else_its_result() -> None:
    (tool,) = config.load_tools(
        [
            {
                "type": "function",
                "function": {"name": "refund"},
                "result": {"ok": False},
                "rules": [{"match": {"amount": 5}, "result": "small refund"}, {"match": {}, "result": "any"}],
            }
        ]
    )
    assert tool.answer({"amount": 5, "order": "A"}) == "small refund"
    assert tool.answer({"amount": 6}) == "any"
    assert tool.schema == {
        "type": "function",
        "function": {"name": "refund", "parameters": {"type": "object", "properties": {}}},
    }


def test_settings_are_stored_canonical_and_read_back_into_the_form() -> None:
    given = {"url": "https://bot.example/chat?x=1", "request": '{"m": {{message}}}', "response": "$.data.text"}
    stored = config.parse_target("http", {**given, "headers": ["X-Team: red"], "method": "post"})
    assert stored is not None
    assert json.loads(stored)["method"] == "POST" and json.loads(stored)["headers"] == {"X-Team": "red"}
    assert config.parse_target("http", stored) == stored  # the same settings, the same text
    values = config.form_values(stored)
    assert values["http_url"] == given["url"] and values["http_headers"] == "X-Team: red"
    assert values["http_response"] == "$.data.text"
    assert config.describe("http", stored) == "https://bot.example/chat"  # no query string in the lists
    assert config.parse_target("model", None) is None


def test_a_kind_needs_its_settings() -> None:
    with pytest.raises(TargetConfigError, match="an http agent needs its settings"):
        config.parse_target("http", None)
    with pytest.raises(TargetConfigError, match="is not a setting of an http agent"):
        config.parse_target("http", {"url": "http://x.test/", "request": "{{messages}}", "response": "a", "x": 1})
