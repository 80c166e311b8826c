"""The real app in headless Chromium: launch a small scale test from the form, watch its progress
reach 100%, then read its report, table and charts.

Uses the app server and browser fixtures of ``test_hub_browser.py`` (embedded mode on this
test's data folder, Debian's /usr/bin/chromium) and saves ``test-artifacts/scale-report.png``
(``docs/img/scale.png`` is a copy for the README).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.test_hub_browser import ARTIFACTS, app_url, browser, wait_for  # noqa: F401 - fixtures
from tests.helpers import rows

pytestmark = pytest.mark.browser

# The two sample profiles (a firm and a lenient support bot) against an adversary that takes
# 0.3 s a message, so that the progress is visible: 2 cells × 8 runs of 6 messages.
PROFILES = ("Acme support (sim, firm)", "Acme support (sim, lenient)")
ADVERSARY = "sim/adversary?latency_ms=300"
PROGRESS = re.compile(r"(\d+) of (\d+) battles finished")


def set_field(page: Page, key: str, value: str, kind: str = "input") -> None:
    field = page.locator(f".st-key-{key} {kind}")
    field.fill(value)
    field.press("Control+Enter" if kind == "textarea" else "Enter")
    expect(field).to_have_value(value)


def progress(page: Page) -> tuple[int, int] | None:
    found = PROGRESS.search(page.get_by_test_id("stProgress").first.inner_text())
    return (int(found.group(1)), int(found.group(2))) if found else None


def test_launch_a_scale_test_watch_it_finish_and_read_the_report(app_url: str, browser: Browser) -> None:  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    # The hub first: a fresh server's first request must be the app's root, or Streamlit runs the
    # page file alone in its legacy pages/ mode (no navigation, no in-process consumer).
    page.goto(app_url)
    expect(page.get_by_role("button", name="Start battle")).to_be_visible(timeout=30_000)
    page.goto(f"{app_url}/scale_tests")
    expect(page.get_by_role("button", name="Launch scale test")).to_be_visible(timeout=30_000)

    set_field(page, "scale_name", "Support bot: firm vs lenient")
    set_field(page, "scale_runs", "8")
    plan = page.locator(".st-key-scale_plan")
    expect(plan).to_contain_text("1 cell × 8 runs")
    # Each step waits for the server's plan to show it, so that no click races the rerun of the
    # one before (on a loaded machine a selection could otherwise be lost to a later click).
    for chosen, profile in enumerate(PROFILES, start=1):
        page.locator(".st-key-scale_profiles input").click()
        page.get_by_role("option", name=f"{profile} (sample)").click()
        page.keyboard.press("Escape")
        expect(page.locator(".st-key-scale_profiles")).to_contain_text(profile)
        expect(plan).to_contain_text(f"{chosen + 1} agents × 1 goal", timeout=30_000)  # + the custom model
    page.locator(".st-key-scale_remove_0 button").click()  # no custom model: just the two profiles
    expect(page.locator(".st-key-scale_agent_model_0")).to_have_count(0)
    set_field(page, "scale_adversary_model", ADVERSARY)
    set_field(page, "scale_max_messages", "6")
    set_field(page, "scale_seed", "42")
    expect(plan).to_contain_text("2 agents × 1 goal × 1 strategy", timeout=30_000)
    expect(plan).to_contain_text("16")
    expect(plan).to_contain_text("Simulated")
    page.get_by_role("button", name="Launch scale test").click()

    # The page opens the new run, and its progress bar fills while the page refreshes itself.
    page.wait_for_url(re.compile(r"/scale_tests\?run=[0-9a-f]{16}$"), timeout=30_000)
    run_id = page.url.rsplit("=", 1)[1]
    expect(page.get_by_test_id("stProgress").first).to_contain_text("battles finished", timeout=30_000)
    first = progress(page)
    assert first is not None and first[1] == 16 and first[0] < 16, first
    expect(page.locator(".st-key-scale_run_status")).to_contain_text("live")
    seen = {first[0]}

    def done() -> bool:
        now = progress(page)
        if now:
            seen.add(now[0])
        return now == (16, 16)

    wait_for(done, 45, "the progress to reach 16 of 16")
    assert len(seen) >= 2, seen  # it moved while we watched
    expect(page.get_by_test_id("stProgress").first).to_contain_text("(100%)")
    assert rows("SELECT count(*) FROM battles WHERE run_id = ? AND status = 'finished'", [run_id]) == [(16,)]

    # Finished: the live refresh stops and the results appear: report, table, five charts.
    status = page.locator(".st-key-scale_run_status")
    expect(status).to_contain_text("finished", timeout=30_000)
    expect(status).not_to_contain_text("live")
    report = page.locator(".st-key-scale_report")
    expect(report).to_contain_text("of 8 defended battles", timeout=30_000)
    expect(report).to_contain_text(PROFILES[0])
    citation = report.get_by_role("link", name=re.compile(r"^battle [0-9a-f]{8}$")).first
    expect(citation).to_have_attribute("href", re.compile(r"battle\?id=[0-9a-f]{16}$"))
    expect(page.locator(".st-key-scale_cells [data-testid='stDataFrame']")).to_be_visible()
    # The per-cell table fits a normal window (1400 px): no horizontal scrolling (issue 17).
    scroller = page.locator(".st-key-scale_cells .dvn-scroller").first
    expect(scroller).to_be_visible()
    overflow = scroller.evaluate("node => node.scrollWidth - node.clientWidth")
    assert overflow <= 1, f"the per-cell table scrolls sideways by {overflow} px"
    charts = page.get_by_test_id("stVegaLiteChart")
    expect(charts).to_have_count(5, timeout=30_000)
    for index in range(5):
        expect(charts.nth(index).locator("canvas, svg").first).to_be_visible(timeout=30_000)
    expect(page.get_by_role("button", name="Battles (CSV)")).to_be_visible()
    # The app scrolls inside its main area, so a full-page shot needs a window as tall as the page.
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": int(height)})
    page.wait_for_timeout(1000)  # the charts re-laid out for the new size
    page.screenshot(path=str(ARTIFACTS / "scale-report.png"))

    # A cited battle opens on the Battle page.
    href = citation.get_attribute("href")
    assert href
    battle = browser.new_page(viewport={"width": 1200, "height": 800})
    battle.goto(f"{app_url}/{href.lstrip('./')}")
    expect(battle.locator("h1")).to_contain_text(href.rsplit("=", 1)[1][:8], timeout=30_000)
    battle.close()
