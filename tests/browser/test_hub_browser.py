"""The real app in headless Chromium: three battles at once on the hub, a cancel, a battle page.

Starts ``streamlit run streamlit_app.py`` in embedded mode on a free port with this test's
data folder, drives Debian's /usr/bin/chromium through Playwright, and saves screenshots
under test-artifacts/ (git-ignored; docs/img/ holds copies for the README).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# Slow enough that the first two battles still run when the third starts: each Start now also
# waits for the judge check (cached after the first), so the clicks land seconds apart.
AGENT = "sim/agent?concede=0&latency_ms=400"
ROW = '[class*="st-key-row-session-"]'
ROW_ID = re.compile(r"st-key-row-session-([0-9a-f]{16})")
COUNT = re.compile(r"(\d+) / (\d+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def app_url(isolated: Path) -> Iterator[str]:
    """The app served by a real Streamlit server, in embedded mode on this test's data folder."""
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = (ARTIFACTS / "browser-app.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "streamlit_app.py",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--server.fileWatcherType",
            "none",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env={**os.environ, "SPARRING_DATA_DIR": str(isolated)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                assert process.poll() is None, "the app exited; see test-artifacts/browser-app.log"
                assert time.monotonic() < deadline, "the app did not answer within 60 s"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def sessions_rows(page: Page) -> dict[str, Locator]:
    rows = {}
    for row in page.locator(ROW).all():
        match = ROW_ID.search(row.get_attribute("class") or "")
        if match:
            rows[match.group(1)] = row
    return rows


def row_state(row: Locator) -> tuple[str, int]:
    """(badge word, message count) of a hub row."""
    text = row.inner_text()
    count = COUNT.search(text)
    assert count, text
    for word in ("running", "queued", "held", "achieved", "cancelled", "failed", "timed out"):
        if word in text:
            return word, int(count.group(1))
    raise AssertionError(f"no status in {text!r}")


def wait_for(predicate: object, timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()  # type: ignore[operator]
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.2)


def set_field(page: Page, key: str, value: str) -> None:
    field = page.locator(f".st-key-{key} input")
    field.fill(value)
    field.press("Enter")
    expect(field).to_have_value(value)


def start_battle(page: Page, expected_rows: int) -> None:
    page.get_by_role("button", name="Start battle").click()
    wait_for(lambda: len(sessions_rows(page)) == expected_rows, 30, f"{expected_rows} rows in This session")


def test_three_battles_progress_together_one_is_cancelled_and_one_is_opened(app_url: str, browser: Browser) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1350})
    page.goto(app_url)
    expect(page.get_by_text("No battles yet — start one above.")).to_be_visible(timeout=30_000)

    set_field(page, "hub_agent_model", AGENT)
    set_field(page, "hub_max_messages", "40")
    start_battle(page, 1)
    start_battle(page, 2)
    # The one to cancel: the longest allowed, so that it still runs long after the others
    # end, even on a loaded machine where the click takes a while to land.
    set_field(page, "hub_max_messages", "100")
    start_battle(page, 3)
    rows = sessions_rows(page)
    third, second, first = rows  # newest first

    # All three run at the same time, and all three counts grow while the page refreshes itself.
    def all_running() -> dict[str, int] | None:
        states = {battle_id: row_state(row) for battle_id, row in rows.items()}
        if all(state == "running" and count >= 1 for state, count in states.values()):
            return {battle_id: count for battle_id, (_, count) in states.items()}
        return None

    before = wait_for(all_running, 45, "all three battles running at once")
    assert isinstance(before, dict)

    def all_grew() -> bool:
        return all(row_state(rows[b])[1] > count for b, count in before.items())

    wait_for(all_grew, 30, "every message count to grow")
    expect(page.get_by_text("Live: updating every second")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "hub-running.png"))

    # The long one, opened by its address in another tab, grows live without moving what is shown.
    live = browser.new_page(viewport={"width": 1400, "height": 1000})
    live.goto(f"{app_url}/battle?id={third}")
    expect(live.locator("h1")).to_contain_text(third[:8], timeout=30_000)
    status = live.locator(".st-key-battle_status")
    expect(status).to_contain_text("running")
    expect(status).to_contain_text("live")
    bubbles = live.get_by_test_id("stChatMessage")
    expect(bubbles.nth(1)).to_be_visible(timeout=30_000)
    # Fully drawn (metrics and buttons show placeholders until their code has loaded) ...
    expect(live.get_by_test_id("stMetricValue")).to_have_count(5)
    expect(live.get_by_role("button", name="Cancel")).to_be_visible()
    expect(live.get_by_text("Adversary · message 1 ·")).to_be_visible()
    top = bubbles.first.bounding_box()
    shown = bubbles.count()
    wait_for(lambda: bubbles.count() >= shown + 2, 30, "new bubbles on the live battle page")
    assert bubbles.first.bounding_box() == top, "the transcript moved while it grew"  # ... then steady

    # The two short ones finish; the long one is cancelled mid-run from the hub.
    wait_for(lambda: all(row_state(rows[b])[0] == "held" for b in (first, second)), 60, "two battles to hold")
    assert [row_state(rows[b])[1] for b in (first, second)] == [40, 40]
    state, count = row_state(rows[third])
    assert state == "running" and count < 100, (state, count)
    rows[third].get_by_role("button", name="Cancel").click()
    wait_for(
        lambda: row_state(rows[third])[0] == "cancelled",
        30,
        f"the third battle to be cancelled (it was running at {count} messages when clicked)",
    )
    final = row_state(rows[third])[1]
    assert final < 100
    expect(rows[third].get_by_role("button", name="Retry")).to_be_visible()

    # The battle page sees it too, and stops refreshing.
    expect(live.get_by_text("cancelled by request")).to_be_visible(timeout=15_000)
    expect(status).to_contain_text("cancelled")
    expect(status).not_to_contain_text("live")
    expect(bubbles).to_have_count(final)
    expect(live.get_by_role("button", name="Retry")).to_be_visible()
    live.close()

    # Nothing runs any more: the list stops refreshing itself.
    idle = page.get_by_text(re.compile(r"Nothing running · updated \d\d:\d\d:\d\d"))
    expect(idle).to_be_visible(timeout=10_000)
    time.sleep(1.5)  # a refresh already requested when the list went idle may still arrive
    clock = idle.inner_text()
    time.sleep(3)
    assert idle.inner_text() == clock, "the idle list kept refreshing"
    page.screenshot(path=str(ARTIFACTS / "hub.png"))

    # Open the first one from the hub: 40 bubbles, each agent reply with its verdict.
    rows[first].get_by_role("link", name="Open").click()
    page.wait_for_url(re.compile(rf"/battle\?id={first}$"), timeout=30_000)
    expect(page.locator("h1")).to_contain_text(first[:8])
    expect(page.get_by_test_id("stChatMessage")).to_have_count(40, timeout=30_000)
    expect(page.get_by_text("Judge: not achieved")).to_have_count(20)
    expect(page.get_by_text("the agent held for all 20 turns")).to_be_visible()
    page.get_by_text("Judge: not achieved").first.click()  # open one verdict for the screenshot
    expect(page.get_by_text("Judge model:").first).to_be_visible()
    page.wait_for_timeout(500)  # the expander's opening animation
    page.screenshot(path=str(ARTIFACTS / "battle.png"))
