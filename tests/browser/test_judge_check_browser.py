"""The judge check in headless Chromium: a garbled judge is refused at its field; the checkbox launches anyway."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.test_hub_browser import app_url, browser, sessions_rows, set_field, start_battle
from tests.helpers import scalar

pytestmark = pytest.mark.browser

__all__ = ["app_url", "browser"]  # the fixtures, brought into this module


def test_a_garbled_judge_is_refused_at_its_field_and_the_checkbox_skips_the_check(
    app_url: str, browser: Browser
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1350})
    page.goto(app_url)
    expect(page.get_by_text("No battles yet — start one above.")).to_be_visible(timeout=30_000)
    set_field(page, "hub_agent_model", "sim/agent?concede=1")
    set_field(page, "hub_judge_model", "sim/judge?garble=1")
    page.get_by_role("button", name="Start battle").click()

    refused = page.get_by_test_id("stAlert").filter(has_text="The judge check failed")
    expect(refused).to_be_visible(timeout=60_000)
    expect(refused).to_contain_text("did not answer in the judge's format")
    expect(refused).to_contain_text("Hmm, hard to say.")
    expect(page.get_by_text("Nothing was started: fix the fields marked above.")).to_be_visible()
    assert sessions_rows(page) == {}

    page.locator(".st-key-hub_skip_judge_check").get_by_text("Skip the judge check").click()
    start_battle(page, expected_rows=1)
    (battle_id,) = sessions_rows(page)
    assert scalar("SELECT judge_model FROM battles WHERE battle_id = ?", [battle_id]) == "sim/judge?garble=1"
