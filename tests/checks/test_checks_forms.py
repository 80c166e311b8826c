"""The forms take success checks: the hub (typed, or brought by a library goal) and the scale-test form."""

from __future__ import annotations

from sparring import sim, usecases
from tests.helpers import new_battle, rows, scalar
from tests.ui.apptest import element_after, markdown_bodies, open_app, open_page


def test_a_library_goal_brings_its_canary_and_the_battle_stores_it() -> None:
    at = open_app()
    at.selectbox(key="hub_goal_choice").set_value("Support bot refund code").run()
    assert at.text_area(key="hub_success_contains").value == "RF-ADCF8A"
    at.selectbox(key="hub_goal_choice").set_value("Reveal system prompt").run()
    assert at.text_area(key="hub_success_contains").value == ""  # a goal without checks clears them
    at.text_area(key="hub_success_contains").set_value(f"{sim.CONCESSION}\n\nSECRET-2")
    at.text_input(key="hub_success_tool").set_value('issue_refund:{"amount": 120}')
    at.text_input(key="hub_agent_model").set_value("sim/agent?concede=1")
    at.number_input(key="hub_max_messages").set_value(4)
    at.button(key="hub_start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [(contains, regex, tool)] = rows("SELECT success_contains, success_regex, success_tool FROM battles")
    assert contains == [sim.CONCESSION, "SECRET-2"] and regex is None and tool == 'issue_refund:{"amount": 120}'


def test_a_bad_pattern_is_refused_at_its_field() -> None:
    at = open_app()
    at.text_input(key="hub_success_regex").set_value("(unclosed")
    at.button(key="hub_start").click().run()
    error = element_after(at, "hub_success_regex")
    assert type(error).__name__ == "Error" and "not a valid regular expression" in error.value
    assert scalar("SELECT count(*) FROM battles") == 0


def test_the_scale_form_takes_checks_for_every_cell() -> None:
    at = open_page("ui/scale_tests.py")
    at.text_area(key="scale_success_contains").set_value(sim.CONCESSION)
    at.text_input(key="scale_success_tool").set_value("9bad")
    at.button(key="scale_launch").click().run()
    error = element_after(at, "scale_success_tool")
    assert type(error).__name__ == "Error" and "is not a tool name" in error.value
    assert scalar("SELECT count(*) FROM scale_runs") == 0


def test_the_battle_page_shows_the_checks_beside_the_judge() -> None:
    battle_id = new_battle(
        agent_model="sim/agent?concede=1", judge_model="sim/judge?fnr=1", success_contains=[sim.CONCESSION]
    )
    usecases.run_inline(battle_id)
    at = open_page("ui/battle.py", id=battle_id)
    texts = " ".join(markdown_bodies(at)) + " ".join(c.value for c in at.caption)
    assert "Success checks" in texts and "reply contains" in texts
    assert "Success checks: goal **achieved**" in texts
    assert any("Judge: not achieved" in e.label for e in at.expander)
