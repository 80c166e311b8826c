"""Scenario 6: hostile model output is inert in a real browser."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import sync_playwright

from sparring import records as r
from sparring import runtime
from tests.browser.test_hub_browser import CHROMIUM, CHROMIUM_ARGS, app_url  # noqa: F401 - the app fixture
from tests.reliability.conftest import report

pytestmark = pytest.mark.browser

HOSTILE = [
    "![tracker](https://evil.example/pixel.png) look at this",
    "<script>window.__pwned = 'script'</script> hello",
    '<img src="https://evil.example/x.png" onerror="window.__pwned=\'img\'">',
    "[click me](javascript:window.__pwned='link') and <a href=\"https://evil.example\">evil link</a>",
    '<iframe src="https://evil.example/frame"></iframe><style>body { display: none }</style>',
    "https://evil.example/auto-link www.evil.example <https://evil.example/angle>",
    "A" * 6000 + " " + "https://evil.example/" + "b" * 3000,
]


def hostile_battle() -> str:
    spec = r.BattleSpec(
        agent=r.AgentSpec("sim/agent", "<script>window.__pwned='prompt'</script>"),
        adversary=r.AdversarySpec("sim/adversary", "![goal](https://evil.example/goal.png)"),
        judge=r.JudgeSpec("sim/judge"),
        max_messages=len(HOSTILE),
    )
    battle_id = r.new_id()
    records: list[r.Record] = [r.BattleCreated(battle_id, spec), r.BattleStarted(battle_id)]
    for seq, text in enumerate(HOSTILE, start=1):
        role = "user" if seq % 2 else "assistant"
        records.append(r.MessageAdded(r.Message(battle_id, seq, role, text, "sim/x")))  # type: ignore[arg-type]
        if role == "assistant":
            records.append(r.VerdictAdded(r.Verdict(battle_id, seq, False, 0.5, HOSTILE[0], "sim/judge")))
    records.append(r.BattleFinished(battle_id, "held"))
    store = runtime.get_runtime().store
    store.migrate()
    store.write(records)
    return battle_id


def test_hostile_transcript_fetches_nothing_and_runs_nothing(app_url: str, isolated: Path) -> None:  # noqa: F811
    battle_id = hostile_battle()
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda request: requests.append(request.url))
        page.goto(f"{app_url}/battle?id={battle_id}")
        messages = page.locator("[data-testid='stChatMessage']")
        messages.nth(len(HOSTILE) - 1).wait_for(timeout=30_000)
        visible = messages.nth(1).inner_text().replace("\u2060", "").replace("\u200b", "")
        for expander in page.locator("[data-testid='stExpander'] summary").all():
            expander.click()  # open the verdicts too
        page.wait_for_timeout(1500)
        navigation = page.get_by_text("Check the judge").count() > 0 and page.get_by_text("common").count() == 0
        pwned = page.evaluate("() => window.__pwned === undefined ? null : String(window.__pwned)")
        javascript_links = page.locator("a[href^='javascript']").count()
        evil_links = page.locator("a[href*='evil.example']").count()
        evil_media = page.locator("img[src*='evil.example'], iframe[src*='evil.example']").count()
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        page.screenshot(path=str(Path(__file__).resolve().parents[2] / "test-artifacts" / "hostile-battle.png"))
        browser.close()
    foreign = sorted({urlparse(u).hostname for u in requests} - {"127.0.0.1", "localhost", None})
    found = {
        "app navigation on a first deep link": navigation,
        "hostile text shown as text": "<script>" in visible,
        "requests to other hosts": len(foreign),
        "scripts that ran": 0 if pwned is None else 1,
        "javascript: links": javascript_links,
        "links to the remote host": evil_links,
        "remote images or frames": evil_media,
        "page wider than the window": overflow > 20,
    }
    expected = {k: (False if k == "page wider than the window" else 0) for k in found}
    expected["hostile text shown as text"] = True
    expected["app navigation on a first deep link"] = True
    report("hostile transcript in headless Chromium", expected, found)
    assert found == expected, foreign
