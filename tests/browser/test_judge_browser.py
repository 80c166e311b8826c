"""The real app in headless Chromium: label battles one after another on Check the judge.

AppTest replays widget values as Python objects, so it missed that the battle selector broke
once its captions changed ("not labelled yet" → "you said …"): the browser sends back the
caption it showed. Here a person labels six battles in a row with "Next unlabelled battle",
changes one label, and the labels the store keeps are checked in ``latest_labels``. The name
typed once must stay for the whole session.

Uses the app server and browser fixtures of ``test_hub_browser.py`` (embedded mode on this
test's data folder, Debian's /usr/bin/chromium).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from sparring import judging
from sparring.runtime import get_runtime
from tests.browser.test_hub_browser import ARTIFACTS, app_url, browser, wait_for  # noqa: F401 - fixtures
from tests.helpers import rows
from tests.judging.builders import Planned, write_run

pytestmark = pytest.mark.browser

NAME = "Alice"
# What the test clicks, by the label's caption on the page, and what the store keeps.
CHOICES = {"Goal achieved": "achieved", "Not achieved": "not_achieved", "Unsure": "unsure"}
PLAN = [Planned(0, True, True)] * 4 + [Planned(0, False, False)] * 4
POSITION = re.compile(r"#(\d+) · battle ([0-9a-f]{8})")


def shown_battle(page: Page, ids: list[str]) -> str:
    """The battle the selector shows (its position in the sample and its short id)."""
    selector = page.get_by_role("combobox", name="Battle", exact=True)
    found = wait_for(lambda: POSITION.search(selector.input_value()), 30, "the battle selector")
    assert isinstance(found, re.Match)
    battle_id = ids[int(found.group(1)) - 1]
    assert battle_id.startswith(found.group(2)), (found.group(0), battle_id)
    return battle_id


def no_error(page: Page) -> None:
    errors = page.get_by_test_id("stException")
    assert errors.count() == 0, errors.first.inner_text()


def save(page: Page, caption: str) -> None:
    page.locator(".st-key-judge_choice").get_by_text(caption, exact=True).click()
    page.get_by_role("button", name="Save label").click()


def test_label_six_battles_in_a_row_and_change_one(app_url: str, browser: Browser) -> None:  # noqa: F811
    store = get_runtime().store
    run_id, _ = write_run(store, PLAN, name="labelling in a row")
    ids = [battle.battle_id for battle in judging.sample_battles(store, run_id)]
    assert len(ids) == len(PLAN)

    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    # A busy two-core machine (CI shares it) once took over 30 s to open the Battle selector.
    page.set_default_timeout(60_000)
    page.goto(app_url)  # the app's root first, so that the navigation is the app's
    expect(page.get_by_role("button", name="Start battle")).to_be_visible(timeout=60_000)
    # The app's toolbar is the viewer's (.streamlit/config.toml): no Deploy button for users.
    expect(page.get_by_test_id("stToolbar")).to_be_attached()
    expect(page.get_by_test_id("stAppDeployButton")).to_have_count(0)
    expect(page.get_by_role("button", name="Deploy")).to_have_count(0)
    page.goto(f"{app_url}/judge?run={run_id}")
    name = page.locator(".st-key-judge_labeller input")
    name.fill(NAME)
    name.press("Enter")
    expect(page.get_by_text("You have labelled 0 of 8 sampled battles.")).to_be_visible(timeout=60_000)

    expected: dict[str, str] = {}
    captions = list(CHOICES)
    for done in range(6):
        battle_id = shown_battle(page, ids)
        assert battle_id not in expected, f"label {done + 1} was offered an already labelled battle"
        caption = captions[done % len(captions)]
        save(page, caption)
        expected[battle_id] = CHOICES[caption]
        expect(page.get_by_text(f"You have labelled {done + 1} of 8 sampled battles.")).to_be_visible(timeout=60_000)
        expect(page.locator(".st-key-judge_reveal")).to_contain_text(f"You said: {caption.lower()}")
        no_error(page)
        page.get_by_role("button", name="Next unlabelled battle").click()
        expect(page.locator(".st-key-judge_reveal")).to_have_count(0, timeout=60_000)
        no_error(page)
        expect(name).to_have_value(NAME)  # the name stays for the next label
        assert shown_battle(page, ids) not in expected
    page.screenshot(path=str(ARTIFACTS / "judge-labelling.png"))

    # Back to the first battle through the selector, and change its label.
    first = next(iter(expected))
    box = page.get_by_role("combobox", name="Battle", exact=True)
    # Seen with Chromium 156: the first click after the last rerun focuses the selector without
    # opening it (aria-expanded stays false); a person clicks again, and so does the test.
    for _ in range(5):
        box.click()
        try:
            expect(box).to_have_attribute("aria-expanded", "true", timeout=3_000)
            break
        except AssertionError:
            continue
    page.get_by_role("option", name=re.compile(rf"#{ids.index(first) + 1} · battle {first[:8]}")).click()
    reveal = page.locator(".st-key-judge_reveal")
    expect(reveal).to_contain_text("You said: goal achieved", timeout=60_000)
    assert shown_battle(page, ids) == first
    save(page, "Not achieved")
    expect(reveal).to_contain_text("You said: not achieved", timeout=60_000)
    expect(page.get_by_text("You have labelled 6 of 8 sampled battles.")).to_be_visible()
    no_error(page)
    expect(name).to_have_value(NAME)
    expected[first] = "not_achieved"

    stored = rows("SELECT battle_id, label, revisions FROM latest_labels WHERE labeller = ?", [NAME])
    assert {battle_id: label for battle_id, label, _ in stored} == expected
    assert {battle_id: revisions for battle_id, _, revisions in stored if revisions > 1} == {first: 2}
