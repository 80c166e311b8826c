"""The hub's kinds of agent: an HTTP endpoint and a Python callable from the form, saved as profiles."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.fakes import agent_server as fake_agent
from tests.fakes.agent_server import FakeAgentServer
from tests.helpers import rows, scalar
from tests.ui.apptest import open_app

agent_server = fake_agent.agent_server

REQUEST = '{"conversation": {{messages}}, "sid": {{session_id}}}'


def fill_http(at: AppTest, url: str, request: str = REQUEST, headers: str = "") -> AppTest:
    at.radio(key="hub_agent_kind").set_value("http").run()
    at.text_input(key="hub_http_url").set_value(url)
    at.text_area(key="hub_http_request").set_value(request)
    at.text_input(key="hub_http_response").set_value("data.text")
    at.text_area(key="hub_http_headers").set_value(headers)
    return at


def test_an_http_agent_from_the_form_is_battled(agent_server: FakeAgentServer) -> None:
    at = fill_http(open_app(), agent_server.url)
    at.number_input(key="hub_max_messages").set_value(4)
    at.button(key="hub_start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (battle_id,) = at.session_state["hub_state"].session_ids
    kind, target = rows("SELECT agent_kind, agent_target FROM battles WHERE battle_id = ?", [battle_id])[0]
    assert kind == "http"
    assert json.loads(target) == {
        "url": agent_server.url,
        "method": "POST",
        "headers": {},
        "request": REQUEST,
        "response": "data.text",
        "session": "stateless",
    }


@pytest.mark.parametrize(
    ("request_template", "headers", "shown"),
    [
        ('{"m": "{{message}}"}', "", "Request template: is not JSON once its placeholders are filled"),
        (REQUEST, "Authorization: Bearer ${SPARRING_TEST_NOT_SET}", "Headers: Authorization: the environment"),
    ],
)
def test_bad_http_settings_are_shown_at_their_widget_and_nothing_starts(
    request_template: str, headers: str, shown: str
) -> None:
    at = fill_http(open_app(), "http://127.0.0.1:1/chat", request_template, headers)
    at.button(key="hub_start").click().run()
    assert not at.exception
    assert any(e.value.startswith(shown) for e in at.error), [e.value for e in at.error]
    assert scalar("SELECT count(*) FROM battles") == 0


def test_an_http_profile_is_saved_of_its_kind_and_refills_the_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARRING_TEST_BOT_KEY", "a-key-that-must-not-be-stored")
    at = fill_http(open_app(), "http://127.0.0.1:8080/chat", headers="Authorization: Bearer ${SPARRING_TEST_BOT_KEY}")
    at.text_input(key="hub_profile_name").set_value("Support bot HTTP")
    at.button(key="hub_save_profile").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    ((kind, target),) = rows("SELECT kind, target FROM agents")
    assert kind == "http" and "${SPARRING_TEST_BOT_KEY}" in target and "a-key-that" not in target
    at.selectbox(key="hub_profile").set_value("Acme support (sim, firm)").run()
    assert at.radio(key="hub_agent_kind").value == "model"
    at.selectbox(key="hub_profile").set_value("Support bot HTTP").run()
    assert at.radio(key="hub_agent_kind").value == "http"
    assert at.text_input(key="hub_http_url").value == "http://127.0.0.1:8080/chat"
    assert at.text_area(key="hub_http_headers").value == "Authorization: Bearer ${SPARRING_TEST_BOT_KEY}"


def test_a_python_agent_from_the_form() -> None:
    at = open_app()
    at.radio(key="hub_agent_kind").set_value("python").run()
    at.text_input(key="hub_python_callable").set_value("tests.fakes.python_agent:reply")
    at.number_input(key="hub_max_messages").set_value(2)
    at.button(key="hub_start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert rows("SELECT agent_kind, agent_target FROM battles") == [
        ("python", '{"callable":"tests.fakes.python_agent:reply"}')
    ]


def test_the_scale_form_makes_a_matrix_of_an_http_profile_and_a_model(agent_server: FakeAgentServer) -> None:
    from sparring import usecases
    from tests.helpers import wait_until
    from tests.ui.apptest import open_page

    settings = {"url": agent_server.url, "request": REQUEST, "response": "data.text"}
    usecases.save_agent({"name": "Support bot", "kind": "http", "target": settings})
    at = open_page("ui/scale_tests.py")
    assert "Support bot · HTTP" in at.multiselect(key="scale_profiles").options
    at.multiselect(key="scale_profiles").set_value(["Support bot"]).run()
    assert {m.label: m.value for m in at.metric}["Cells"] == "2"  # the profile and the custom model agent
    for name, value in {"runs": 1, "max_messages": 2}.items():
        at.main.get_by_key(f"scale_{name}").set_value(value)
    at.button(key="scale_launch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    run_id = scalar("SELECT run_id FROM scale_runs")
    wait_until(lambda: scalar("SELECT count(*) FROM battles WHERE run_id = ?", [run_id]) == 2, 60)
    kinds = rows("SELECT agent_kind, agent_profile, agent_model FROM battles WHERE run_id = ? ORDER BY 1", [run_id])
    assert kinds == [("http", "Support bot", agent_server.url), ("model", None, "sim/agent?concede=0.1")]


def test_the_battle_page_shows_the_tools_a_turn_called_inert() -> None:
    from sparring import records as r
    from sparring import usecases
    from sparring.render import inert_markdown
    from sparring.runtime import get_runtime
    from tests.ui.apptest import open_page

    target = {"callable": "tests.fakes.python_agent:reply"}
    battle_id = usecases.create_battle({"agent_kind": "python", "agent_target": target, "max_messages": 2})
    hostile = "<img src=x onerror=alert(1)> **bold** [link](javascript:alert(1))"
    arguments = '{"note": "<script>alert(1)</script>"}'
    get_runtime().sink.write(
        [
            r.MessageAdded(r.Message(battle_id, 1, "user", "refund please", "sim/adversary")),
            r.MessageAdded(
                r.Message(
                    battle_id,
                    2,
                    "tool",
                    hostile,
                    "python:x",
                    part=1,
                    tool_name="issue_refund",
                    tool_arguments=arguments,
                )
            ),
            r.MessageAdded(r.Message(battle_id, 2, "assistant", "Done.", "python:x")),
            r.BattleFinished(battle_id, "held"),  # finished: no worker picks it up while the page is read
        ]
    )
    at = open_page("ui/battle.py", id=battle_id)
    assert not at.exception
    bodies = [m.value for m in at.markdown]
    assert "Result: " + inert_markdown(hostile) in bodies
    assert [c.value for c in at.code] == [arguments]  # shown as code: text, never markup
    captions = [c.value for c in at.caption]
    tool_at = next(i for i, c in enumerate(captions) if c.startswith("Agent called a tool · message 2"))
    reply_at = next(i for i, c in enumerate(captions) if c.startswith("Agent · message 2"))
    assert tool_at < reply_at  # in its turn, before the reply
