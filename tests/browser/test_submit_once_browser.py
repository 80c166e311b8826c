"""The real app in headless Chromium: a second click launches nothing new, and a reload keeps what was launched.

A second click counts when it lands while the first one's submit is still under way: the
test holds the database file open read-only (as a notebook would), so the first submit
waits to commit and the second click is queued behind it, as the one click that once
started two battles was. Uses the app server and browser fixtures of ``test_hub_browser.py``
(embedded mode on this test's data folder, Debian's /usr/bin/chromium).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pytest
from playwright.sync_api import Browser, Locator, expect

from sparring.settings import get_settings
from tests.browser.test_hub_browser import (  # noqa: F401 - fixtures
    app_url,
    browser,
    sessions_rows,
    set_field,
    wait_for,
)
from tests.helpers import scalar

pytestmark = pytest.mark.browser

AGENT = "sim/agent?concede=0&latency_ms=100"
STARTED = re.compile(r"[?&]started=([0-9a-f-]+)$")


@contextmanager
def writes_held() -> Iterator[None]:
    """The app's writes wait while this read-only connection is open (DuckDB's file lock)."""
    con = duckdb.connect(str(get_settings().db_path), read_only=True)
    try:
        yield
    finally:
        con.close()


def click_twice_while_the_first_waits(button: Locator) -> None:
    with writes_held():
        button.click()
        time.sleep(1.5)  # the first click's submit is waiting for the file
        button.click()
        time.sleep(1.5)


def settled_count(sql: str, expected: int) -> int:
    """The count once it reached ``expected`` and a late second submit had time to land."""
    wait_for(lambda: scalar(sql) >= expected, 30, f"{expected} rows for {sql}")
    time.sleep(2)
    return int(scalar(sql))


def test_a_second_click_on_start_battle_starts_no_second_battle_and_a_reload_keeps_yours(
    app_url: str,  # noqa: F811
    browser: Browser,  # noqa: F811
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(app_url)
    expect(page.get_by_text("No battles yet — start one above.")).to_be_visible(timeout=30_000)
    set_field(page, "hub_agent_model", AGENT)
    set_field(page, "hub_max_messages", "6")
    start = page.get_by_role("button", name="Start battle")
    click_twice_while_the_first_waits(start)
    # The first Start waits for the judge check and the embedded worker's first job: give it time on a busy machine.
    wait_for(lambda: len(sessions_rows(page)) >= 1, 90, "a row in Your battles")
    assert settled_count("SELECT count(*) FROM battles", 1) == 1, "the second click started a second battle"
    for clicks in (2, 3):  # a click on the form drawn anew is a new battle
        start.click()
        wait_for(lambda n=clicks: len(sessions_rows(page)) >= n, 60, f"{clicks} rows in Your battles")
        assert settled_count("SELECT count(*) FROM battles", clicks) == clicks
    yours = set(sessions_rows(page))
    assert len(yours) == 3
    expect(page.get_by_text("Your battles")).to_be_visible()

    # The URL lists them, so a reload (a new session) still shows them as yours.
    wait_for(lambda: STARTED.search(page.url), 15, "the battles in the URL")
    found = STARTED.search(page.url)
    assert found and set(found.group(1).split("-")) == yours, page.url
    page.reload()
    expect(page.get_by_text("Your battles")).to_be_visible(timeout=30_000)
    wait_for(lambda: set(sessions_rows(page)) == yours, 30, "the same three battles after the reload")

    # The next battle joins them, and the URL keeps all four.
    start.click()
    wait_for(lambda: len(sessions_rows(page)) == 4, 60, "4 rows in Your battles")
    wait_for(lambda: (m := STARTED.search(page.url)) and len(m.group(1).split("-")) == 4, 15, "4 ids in the URL")


def test_a_second_click_launches_no_second_scale_test_and_its_link_survives_a_reload(
    app_url: str,  # noqa: F811
    browser: Browser,  # noqa: F811
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url)  # the root first (see test_scale_browser.py)
    expect(page.get_by_role("button", name="Start battle")).to_be_visible(timeout=30_000)
    page.goto(f"{app_url}/scale_tests")
    expect(page.get_by_role("button", name="Launch scale test")).to_be_visible(timeout=30_000)
    set_field(page, "scale_runs", "3")
    set_field(page, "scale_max_messages", "4")
    expect(page.locator(".st-key-scale_plan")).to_contain_text("1 cell × 3 runs", timeout=30_000)

    click_twice_while_the_first_waits(page.get_by_role("button", name="Launch scale test"))
    page.wait_for_url(re.compile(r"/scale_tests\?run=[0-9a-f]{16}$"), timeout=30_000)
    run_id = page.url.rsplit("=", 1)[1]
    assert settled_count("SELECT count(*) FROM scale_runs", 1) == 1, "the second click launched a second scale test"
    assert scalar("SELECT run_id FROM scale_runs") == run_id
    expect(page.locator(".st-key-scale_run_status")).to_be_visible(timeout=30_000)

    page.reload()
    expect(page.locator(".st-key-scale_run_status")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("heading", name=re.compile(run_id[:8]))).to_be_visible()
    assert page.url.endswith(f"/scale_tests?run={run_id}")
