"""Sign-in, roles, a spend limit and the audit trail, in Chromium against a real OIDC provider.

The test starts ``oidc-provider-mock`` (a real OpenID Connect provider, from the package index)
on a free port, writes Streamlit's ``[auth]`` secrets into a temporary home folder, and serves
the app with a roles file naming a viewer, a launcher and an admin. Then: signed out, every
page shows only the sign-in; the viewer sees the hub but Start is refused by the use case (and
a forged launch straight through the use case is refused too); the launcher launches, and the
next launch passes the spend limit and is refused with the numbers; the admin queries the SQL
box and reads the audit trail; every action is in the audit trail under the right identity;
signing out ends access.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from oidc_provider_mock import User, run_server_in_thread
from playwright.sync_api import Browser, Page, expect

from sparring import spend, usecases
from sparring.access import AccessRefused, Actor
from sparring.validation import BattleInput
from tests.browser.test_hub_browser import ARTIFACTS, ROOT, browser, free_port, wait_for
from tests.helpers import rows, scalar

pytestmark = pytest.mark.browser
__all__ = ["browser"]  # the fixture, shared with the hub's test

VIEWER, LAUNCHER, ADMIN = "viewer@example.com", "launcher@example.com", "admin@example.com"
ROLES = f"""
default_role = "none"
[people]
"{VIEWER}" = "viewer"
"{LAUNCHER}" = "launcher"
[groups]
"sparring-admins" = "admin"
"""


def default_battle_bound() -> float:
    """What the hub's default battle may cost at most (the spend limit is set just above it)."""
    bound = spend.battle_bound(BattleInput().model_dump())
    assert bound is not None and bound > 0
    return bound


@pytest.fixture
def provider() -> Iterator[str]:
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # the provider serves plain HTTP on loopback
    users = [
        User(sub=VIEWER, claims={"email": VIEWER}),
        User(sub=LAUNCHER, claims={"email": LAUNCHER}),
        User(sub="ana", claims={"email": ADMIN, "groups": ["sparring-admins"]}),  # admin by group
    ]
    with run_server_in_thread(user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def signin_app(isolated: Path, tmp_path: Path, provider: str) -> Iterator[str]:
    port = free_port()
    home = tmp_path / "home"
    (home / ".streamlit").mkdir(parents=True)
    (home / ".streamlit" / "secrets.toml").write_text(
        f"""
[auth]
redirect_uri = "http://127.0.0.1:{port}/oauth2callback"
cookie_secret = "{secrets.token_hex(16)}"
client_id = "sparring-test"
client_secret = "{secrets.token_hex(8)}"
server_metadata_url = "{provider}/.well-known/openid-configuration"
client_kwargs = {{ scope = "openid email profile" }}
"""
    )
    roles = tmp_path / "roles.toml"
    roles.write_text(ROLES)
    limit = default_battle_bound() * 1.05  # one battle fits; a second not once the first spent (~25% of it)
    env = {
        **os.environ,
        "HOME": str(home),
        "SPARRING_DATA_DIR": str(isolated),
        "SPARRING_ROLES_FILE": str(roles),
        "SPARRING_PERSON_DAILY_USD": f"{limit:.10f}",
    }
    ARTIFACTS.mkdir(exist_ok=True)
    log = (ARTIFACTS / "browser-signin-app.log").open("w")
    command = [sys.executable, "-m", "sparring", "serve", "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                assert process.poll() is None, "the app exited; see test-artifacts/browser-signin-app.log"
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


def only_sign_in(page: Page) -> None:
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Sign in to see and launch battles.")).to_be_visible()
    expect(page.get_by_role("button", name="Start battle")).to_have_count(0)
    expect(page.get_by_role("link", name="Health")).to_have_count(0)  # no navigation either


def shows(page: Page, text: str, timeout: float = 30) -> None:
    """``text`` appears on the page (e-mail addresses are drawn with word joiners, so never a link)."""
    wait_for(lambda: text in page.locator("main").inner_text().replace("\u2060", ""), timeout, repr(text))


def sign_in(browser: Browser, url: str, who: str) -> Page:
    page = browser.new_context(viewport={"width": 1400, "height": 1200}).new_page()
    page.goto(url)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name=who, exact=True).click()  # the provider's one-click user
    expect(page.get_by_text("Signed in as")).to_be_visible(timeout=30_000)
    # The hub fully drawn (its form's defaults in place) before anything is clicked.
    expect(page.get_by_role("button", name="Start battle")).to_be_visible(timeout=30_000)
    expect(page.locator(".st-key-hub_agent_model input")).not_to_have_value("")
    return page


def test_sign_in_roles_spend_limit_and_audit(signin_app: str, browser: Browser) -> None:
    # Signed out: every page shows only the sign-in.
    stranger = browser.new_page()
    for path in ("", "/battle", "/scale_tests", "/judge", "/health", "/data"):
        stranger.goto(signin_app + path)
        only_sign_in(stranger)
    stranger.screenshot(path=str(ARTIFACTS / "signin-signed-out.png"))

    # A viewer sees the hub, but Start is refused by the use case, naming the role it needs.
    viewer = sign_in(browser, signin_app, VIEWER)
    shows(viewer, f"Signed in as {VIEWER} · viewer")
    viewer.get_by_role("button", name="Start battle").click()
    shows(viewer, f"Launching a battle needs the launcher role; {VIEWER} is a viewer.")
    with pytest.raises(AccessRefused):  # forged: straight to the use case, as the viewer
        usecases.launch_battle({}, require_worker=False, actor=Actor(VIEWER, "viewer"))
    assert scalar("SELECT count(*) FROM battles") == 0

    # A launcher launches; once that battle spent, the next launch passes the limit and is refused.
    launcher = sign_in(browser, signin_app, LAUNCHER)
    expect(launcher.get_by_text("Spend limit: You have")).to_be_visible()
    # An agent that never concedes runs to the cap, so the battle spends most of its bound (one that
    # conceded at once would spend too little for the limit to bite, and the test would depend on the seed).
    agent = launcher.locator(".st-key-hub_agent_model input")
    agent.fill("sim/agent?concede=0")
    agent.press("Enter")
    launcher.get_by_role("button", name="Start battle").click()
    expect(launcher.get_by_text("started.")).to_be_visible(timeout=60_000)
    wait_for(
        lambda: scalar("SELECT count(*) FROM battles WHERE launched_by = ? AND status = 'finished'", [LAUNCHER]),
        90,
        "the launcher's battle to finish",
    )
    expect(launcher.locator(".st-key-hub_agent_model input")).not_to_have_value("", timeout=30_000)
    launcher.get_by_role("button", name="Start battle").click()
    refusal = launcher.get_by_text("This battle could cost up to $")
    expect(refusal).to_be_visible(timeout=60_000)
    expect(refusal).to_contain_text("left today (spent $")
    launcher.screenshot(path=str(ARTIFACTS / "signin-spend-limit.png"))
    assert scalar("SELECT count(*) FROM battles") == 1

    # An admin (by the provider's groups claim) uses the SQL box and reads the audit trail.
    admin = sign_in(browser, signin_app, "ana")
    shows(admin, f"Signed in as {ADMIN} · admin")
    admin.goto(signin_app + "/data")
    admin.get_by_role("tab", name="SQL").click()
    box = admin.locator(".st-key-data_sql textarea")
    box.fill("SELECT launched_by FROM battles")
    box.press("Control+Enter")
    admin.get_by_role("button", name="Run query").click()
    expect(admin.get_by_role("tabpanel", name="SQL").get_by_text("1 row")).to_be_visible(timeout=30_000)
    admin.get_by_role("tab", name="Audit trail").click()
    audit = admin.get_by_role("tabpanel", name="Audit trail").get_by_test_id("stDataFrame")
    expect(audit).to_be_visible(timeout=30_000)
    admin.screenshot(path=str(ARTIFACTS / "signin-audit.png"))

    # Every action, under the right identity.
    trail = rows("SELECT actor, role, action, outcome FROM audit ORDER BY occurred_at, audit_id")
    assert (VIEWER, "viewer", "sign_in", "ok") in trail
    assert (VIEWER, "viewer", "launch_battle", "refused: needs launcher") in trail
    assert trail.count((VIEWER, "viewer", "launch_battle", "refused: needs launcher")) == 2  # the page's and forged
    assert (LAUNCHER, "launcher", "sign_in", "ok") in trail
    assert (LAUNCHER, "launcher", "launch_battle", "ok") in trail
    assert (LAUNCHER, "launcher", "launch_battle", "refused: spend limit") in trail
    assert (ADMIN, "admin", "sign_in", "ok") in trail
    assert (ADMIN, "admin", "sql_query", "ok") in trail
    assert scalar("SELECT detail FROM audit WHERE action = 'sql_query'") == "SELECT launched_by FROM battles"

    # Signing out ends access: the sign-in again, also after a reload.
    admin.goto(signin_app)
    admin.get_by_role("button", name="Sign out").click()
    admin.get_by_role("button", name="End session").click()  # the provider's own sign-out, then back
    only_sign_in(admin)
    admin.goto(signin_app + "/data")
    only_sign_in(admin)
    assert (ADMIN, "admin", "sign_out", "ok") in rows("SELECT actor, role, action, outcome FROM audit")
