"""5. Cold start and memory.

- ``make run`` (with the venv already present) to the first successful HTTP response, and
  to the hub rendering in headless Chromium;
- a worker's start to its first battle picked up (the battle is already waiting);
- a worker's peak RSS while it runs 50 battles at once.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import ROOT, Worker, environment, median, record, scalar, table, wait_for_workers, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The floor under the hub's figure: a Streamlit page with nothing but the button the
# benchmark waits for, served the way ``make run`` serves the app.
BARE_PAGE = 'import streamlit as st\n\nst.button("Start battle")\n'


def app_start() -> tuple[float, float]:
    """Seconds from ``make run`` to the first HTTP answer and to the hub on screen."""
    return _start_and_render(lambda port: ["make", "--no-print-directory", "run", f"PORT={port}"])


def bare_start() -> tuple[float, float]:
    """The same two figures for ``BARE_PAGE``: what Streamlit and the browser take alone."""
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "bare.py"
        page.write_text(BARE_PAGE)
        return _start_and_render(
            lambda port: [
                str(ROOT / ".venv" / "bin" / "streamlit"),
                "run",
                str(page),
                "--server.port",
                str(port),
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
            ]
        )


def _start_and_render(command: Any) -> tuple[float, float]:
    """Start ``command(port)``; seconds to the first HTTP answer and to the Start button.

    The browser is started first, as a user's already is: its own start is not counted.
    """
    from playwright.sync_api import sync_playwright

    port = free_port()
    with environment() as env, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        env_vars = {**os.environ, "PORT": str(port)}
        env_vars.pop("REDIS_URL", None)  # the quick start: embedded mode
        started = time.monotonic()
        process = subprocess.Popen(
            command(port),
            cwd=ROOT,
            env=env_vars,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:

            def answers() -> bool:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1):
                        return True
                except OSError:
                    return False

            wait_until(answers, 120, interval=0.02)
            http = time.monotonic() - started
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_role("button", name="Start battle").wait_for(timeout=60_000)
            hub = time.monotonic() - started
        finally:
            browser.close()
            os.killpg(process.pid, 15)
            process.wait(20)
        del env
    return http, hub


def worker_start() -> float:
    with environment(SPARRING_HEARTBEAT_PERIOD_S="1") as env:
        from jobs import submit

        battle_id = submit.submit_battle({"agent_model": "sim/agent?concede=1"}, require_worker=False)
        started = time.time()
        worker = Worker(4, env)
        try:
            wait_until(lambda: scalar("SELECT started_at FROM battles WHERE battle_id = ?", [battle_id]), 60)
            picked = scalar("SELECT epoch_ms(started_at) / 1000.0 FROM battles WHERE battle_id = ?", [battle_id])
        finally:
            worker.stop()
    return float(picked) - started


def worker_rss(concurrent: int = 50) -> float:
    with environment(SPARRING_HEARTBEAT_PERIOD_S="1", SPARRING_PROVIDER_CONCURRENCY="256"):
        from jobs import runs

        worker = Worker(concurrent)
        peak = 0.0
        try:
            wait_for_workers(1)
            run_id = runs.submit_run(
                {
                    "runs": concurrent * 2,
                    "max_messages": 10,
                    "agents": [{"model": "sim/agent?concede=0&latency_ms=300"}],
                    "adversary_model": "sim/adversary?latency_ms=300",
                    "judge_model": "sim/judge?latency_ms=300",
                }
            )
            while (
                scalar("SELECT count(*) FROM battles WHERE run_id = ? AND status = 'finished'", [run_id])
                < concurrent * 2
            ):
                peak = max(peak, worker.rss_mb())
                time.sleep(0.2)
        finally:
            worker.stop()
    return peak


def main() -> list[dict[str, Any]]:
    starts = [app_start() for _ in range(3)]  # the median of three cold starts
    http = median([h for h, _ in starts])
    hub = median([h for _, h in starts])
    bare = median([h for _, h in (bare_start() for _ in range(3))])
    picked = worker_start()
    rss = worker_rss()
    name = "cold start and memory"
    rows = [
        record(name, "make run to first HTTP response", http, "s", "≤ 5", http <= 5, notes="median of 3"),
        record(name, "make run to the hub rendered", hub, "s", "≤ 5", hub <= 5, notes="median of 3"),
        record(name, "bare Streamlit page to rendered (the floor)", bare, "s", notes="median of 3; no target"),
        record(name, "worker start to first battle picked up", picked, "s", "≤ 15", picked <= 15),
        record(name, "worker peak RSS, 50 battles at once", rss, "MB", "≤ 400", rss <= 400),
    ]
    table("5. Cold start and memory", rows)
    return rows


if __name__ == "__main__":
    main()
