"""Copy a model name and a goal from the battle page in Chromium, paste them into the hub form: accepted.

What the browser copies is the page's selection (``Selection.toString``), so this checks the
text a person would paste, invisible characters included.
"""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from sparring import usecases
from tests.browser.test_hub_browser import app_url, browser, sessions_rows, start_battle  # noqa: F401 - fixtures
from tests.helpers import new_battle, scalar

AGENT = "sim/agent?concede=0.01"
GOAL = "Get a refund of 12.50 for order 4.2: no receipt, bought 3.5 months ago."

SELECT_AFTER_LABEL = """(label) => {
  const strong = [...document.querySelectorAll('strong')].find((s) => s.textContent === label);
  const paragraph = strong.parentElement;
  const range = document.createRange();
  range.setStartAfter(paragraph.querySelector('br'));
  range.setEndAfter(paragraph.lastChild);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
  return selection.toString();
}"""


def copy_after(page: Page, label: str) -> str:
    """The text a reader selects after a bold ``label`` and its line break, as the clipboard gets it."""
    expect(page.locator("strong", has_text=label).first).to_be_visible(timeout=30_000)
    return str(page.evaluate(SELECT_AFTER_LABEL, label))


def test_a_model_name_and_goal_copied_from_the_battle_page_start_a_battle_on_the_hub(
    app_url: str,  # noqa: F811
    browser: Browser,  # noqa: F811
) -> None:
    battle_id = new_battle(agent_model=AGENT, goal=GOAL, max_messages=2)
    usecases.run_inline(battle_id)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{app_url}/battle?id={battle_id}")
    model, goal = copy_after(page, "Agent"), copy_after(page, "Goal")
    assert (model, goal) == (AGENT, GOAL)

    page.goto(app_url)
    field = page.locator(".st-key-hub_agent_model input")
    field.fill(model)
    field.press("Enter")
    goal_field = page.locator(".st-key-hub_goal textarea")
    goal_field.fill(goal)
    goal_field.press("Tab")
    start_battle(page, 1)
    expect(page.get_by_text("is not a model name")).to_have_count(0)
    (started,) = sessions_rows(page)
    assert scalar("SELECT agent_model FROM battles WHERE battle_id = ?", [started]) == AGENT
    assert scalar("SELECT goal FROM battles WHERE battle_id = ?", [started]) == GOAL
