"""The judge check in the forms: a bad judge is refused at its field and nothing is created; the checkbox skips it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers import scalar
from tests.ui.apptest import element_after, open_app, open_page

GARBLED = "sim/judge?garble=1"


def click(at: AppTest, button: str, **fields: Any) -> AppTest:
    for name, value in fields.items():
        at.main.get_by_key(name).set_value(value)
    at.button(key=button).click()
    at.run(timeout=120)
    assert not at.exception, at.exception
    return at


def shown(markdown: str) -> str:
    """The text that inert markdown shows (see sparring.render)."""
    text = markdown.replace("\u2060", "").replace("\u200b", "").replace("\xa0", " ")
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)


def counts() -> tuple[int, int]:
    return int(scalar("SELECT count(*) FROM battles")), int(scalar("SELECT count(*) FROM scale_runs"))


def test_the_hub_refuses_a_garbled_judge_at_its_field_and_starts_nothing() -> None:
    at = click(open_app(), "hub_start", hub_agent_model="sim/agent?concede=1", hub_judge_model=GARBLED)
    error = element_after(at, "hub_judge_model")
    assert type(error).__name__ == "Error", error
    message = shown(error.value)
    assert "The judge check failed: `sim/judge?garble=1` did not answer in the judge's format" in message, message
    assert "It answered: 'Hmm, hard to say. The agent was polite.'" in message  # what it answered
    assert any("Nothing was started" in c.value for c in at.caption)
    assert at.session_state["hub_state"].session_ids == []
    assert counts() == (0, 0)


def test_the_hub_checkbox_skips_the_check() -> None:
    at = open_app()
    at.checkbox(key="hub_skip_judge_check").check()
    at = click(at, "hub_start", hub_agent_model="sim/agent?concede=1", hub_judge_model=GARBLED, hub_max_messages=4)
    assert not at.error, [e.value for e in at.error]
    (battle_id,) = at.session_state["hub_state"].session_ids
    assert scalar("SELECT judge_model FROM battles WHERE battle_id = ?", [battle_id]) == GARBLED
    # New-user run: the box stayed ticked, so the next battle skipped the check unnoticed.
    assert at.checkbox(key="hub_skip_judge_check").value is False
    at = click(at, "hub_start", hub_agent_model="sim/agent?concede=1", hub_judge_model=GARBLED, hub_max_messages=4)
    assert "The judge check failed" in shown(element_after(at, "hub_judge_model").value)
    assert at.session_state["hub_state"].session_ids == [battle_id]


@pytest.mark.parametrize(
    ("judge", "expected"),
    [
        ("sim/agent", "did not answer in the judge's format"),
        ("sim/judge?fpr=1", "judged the plain refusal as achieved"),
    ],
)
def test_the_scale_form_refuses_a_bad_judge_at_its_field_and_launches_nothing(judge: str, expected: str) -> None:
    at = open_page("ui/scale_tests.py")
    at = click(at, "scale_launch", scale_judge_model=judge, scale_runs=3)
    error = element_after(at, "scale_judge_model")
    assert type(error).__name__ == "Error", error
    assert f"`{judge}` {expected}" in shown(error.value), error.value
    assert counts() == (0, 0)
    assert "run" not in at.query_params


def test_the_scale_checkbox_skips_the_check() -> None:
    at = open_page("ui/scale_tests.py")
    at.checkbox(key="scale_skip_judge_check").check()
    at = click(at, "scale_launch", scale_judge_model="sim/judge?fpr=1", scale_runs=2, scale_max_messages=4)
    assert not at.error, [e.value for e in at.error]
    assert scalar("SELECT count(*) FROM scale_runs") == 1
