"""What a user copies from a page pastes back into a form and means what it shows.

The battle page shows model output inert (``sparring.render``); it used to put an invisible
U+2060 after every dot and colon, so a model name copied from it was refused by the form.
"""

from __future__ import annotations

import re

from sparring import usecases
from tests.helpers import new_battle, scalar
from tests.ui.apptest import open_app, open_page
from tests.ui.test_hub import session_ids, start

AGENT = "sim/agent?concede=0.01"
JUDGE = "sim/judge?fpr=0.05"
GOAL = "Get a refund of 12.50 for order 4.2: no receipt, bought 3.5 months ago."
INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def copied(markdown: str) -> str:
    """The text a reader selects and copies: what the markdown shows (its escapes resolved)."""
    return _ESCAPE.sub(r"\1", markdown)


def page_texts(at: object) -> list[str]:
    kinds = ("markdown", "caption", "error", "info", "warning", "success", "title", "subheader")
    return [element.value for kind in kinds for element in getattr(at, kind)]


def test_model_names_numbers_and_goal_on_the_battle_page_carry_no_invisible_character() -> None:
    battle_id = new_battle(agent_model=AGENT, judge_model=JUDGE, goal=GOAL, max_messages=4)
    usecases.run_inline(battle_id)
    at = open_page("ui/battle.py", id=battle_id)
    shown = [copied(text) for text in page_texts(at)]
    for value in (AGENT, JUDGE, GOAL):
        assert any(value in text for text in shown), value
    assert not [text for text in shown if INVISIBLE.search(text)]


def test_a_model_name_copied_from_the_page_or_pasted_with_zero_width_characters_is_accepted() -> None:
    battle_id = new_battle(agent_model=AGENT, max_messages=4)
    at = open_page("ui/battle.py", id=battle_id)
    from_page = next(text for text in map(copied, page_texts(at)) if AGENT in text)
    name = from_page[from_page.index(AGENT) : from_page.index(AGENT) + len(AGENT)]
    pasted = "\ufeff" + name.replace(".", ".\u2060").replace("?", "\u200b?") + "\u200d"
    hub = start(open_app(), agent_model=pasted, goal="\u2060" + GOAL, max_messages=4, seed=3)
    assert not hub.error, [e.value for e in hub.error]
    (started,) = session_ids(hub)
    assert scalar("SELECT agent_model FROM battles WHERE battle_id = ?", [started]) == AGENT
    assert scalar("SELECT goal FROM battles WHERE battle_id = ?", [started]) == GOAL
