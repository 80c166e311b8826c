"""The forms launch once per drawn form, and what was launched survives a reload.

A second click on a form before it is drawn again (a double click: Streamlit runs the
second click's callback with what the button was drawn with) must not start a second
battle or run; the next click on the redrawn form must. A reload is a new session opened
on the same URL.
"""

from __future__ import annotations

from typing import Any

from streamlit.testing.v1 import AppTest

from sparring import records as r
from tests.helpers import scalar
from tests.ui.apptest import APP, open_app, open_page

BATTLE = {"agent_model": "sim/agent?concede=0&latency_ms=200", "max_messages": 4}


def hub_state(at: AppTest) -> Any:
    return at.session_state["hub_state"]


def click(at: AppTest, key: str, **fields: Any) -> AppTest:
    for name, value in fields.items():
        at.main.get_by_key(name).set_value(value)
    at.button(key=key).click()
    at.run()
    assert not at.exception, at.exception
    return at


def redraw_with_token(at: AppTest, state_key: str, token: str) -> None:
    """The form as it was drawn before the first click landed: the same token on its button."""
    at.session_state[state_key].form_token = token
    at.run()


def test_a_second_click_on_the_same_drawn_hub_form_starts_no_second_battle() -> None:
    at = open_app()
    drawn = hub_state(at).form_token
    click(at, "hub_start", **{f"hub_{name}": value for name, value in BATTLE.items()})
    (first,) = hub_state(at).session_ids
    assert hub_state(at).form_token != drawn  # the form is drawn anew with a fresh token

    redraw_with_token(at, "hub_state", drawn)
    click(at, "hub_start")
    assert scalar("SELECT count(*) FROM battles") == 1
    assert hub_state(at).session_ids == [first]  # listed once

    click(at, "hub_start")  # a real second click, on the form drawn after the first battle
    assert scalar("SELECT count(*) FROM battles") == 2
    assert len(hub_state(at).session_ids) == 2


def test_a_second_click_on_the_same_drawn_scale_form_launches_no_second_run() -> None:
    at = open_page("ui/scale_tests.py")
    drawn = at.session_state["scale_state"].form_token
    click(at, "scale_launch", scale_runs=2, scale_max_messages=4)
    run_id = at.query_params["run"]
    assert scalar("SELECT count(*) FROM scale_runs") == 1

    at = open_page("ui/scale_tests.py", at)  # back to the form, drawn with the first token
    redraw_with_token(at, "scale_state", drawn)
    click(at, "scale_launch")
    assert scalar("SELECT count(*) FROM scale_runs") == 1
    assert at.query_params["run"] == run_id  # the page opens the run the first click launched

    at = open_page("ui/scale_tests.py", at)
    click(at, "scale_launch")
    assert scalar("SELECT count(*) FROM scale_runs") == 2


def test_the_hub_keeps_the_battles_started_here_in_its_url_so_a_reload_lists_them() -> None:
    at = open_app()
    click(at, "hub_start", **{f"hub_{name}": value for name, value in BATTLE.items()})
    click(at, "hub_start")
    newest, oldest = hub_state(at).session_ids
    assert at.query_params["started"] == f"{newest}-{oldest}"

    reloaded = AppTest.from_file(APP, default_timeout=60)
    stranger = r.new_id()  # an id that is no battle is left out; so is anything that is no id
    reloaded.query_params["started"] = f"{newest}-{oldest}-{stranger}-<b>x</b>-{newest}"
    reloaded.run()
    assert not reloaded.exception, reloaded.exception
    assert hub_state(reloaded).session_ids == [newest, oldest, stranger]
    assert reloaded.main.get_by_key(f"row-session-{newest}")
    assert reloaded.main.get_by_key(f"row-session-{oldest}")
    assert any("Your battles" in m.value for m in reloaded.markdown)

    fresh = AppTest.from_file(APP, default_timeout=60)  # another browser (no list in its URL)
    fresh.run()
    assert hub_state(fresh).session_ids == []
    assert not any("Your battles" in m.value for m in fresh.markdown)


def test_a_launched_scale_test_is_in_the_url_and_a_reload_opens_it() -> None:
    at = open_page("ui/scale_tests.py")
    click(at, "scale_launch", scale_runs=2, scale_max_messages=4)
    run_id = at.query_params["run"]
    assert r.is_id(run_id)
    reloaded = open_page("ui/scale_tests.py", AppTest.from_file(APP, default_timeout=60), run=run_id)
    assert reloaded.main.get_by_key("scale_run_status")
    assert any(run_id[:8] in t.value for t in reloaded.subheader)
