"""5. Cold start and memory.

- ``make run`` (with the venv already present) to the first successful HTTP response, and
  to the hub rendering in headless Chromium;
- a worker's start to its first battle picked up (the battle is already waiting);
- a worker's peak RSS while it runs 50 battles at once.

``python -m bench.coldstart --breakdown`` instead serves the app once under py-spy (the
samples of the thread that holds the GIL, from the start to the hub's button on screen) and
prints where that time went: imports by package, Streamlit's component discovery, our page
code, the store, the server. Nothing is appended to bench/results.csv.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
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


# A second floor: a page with a form of the hub's kinds of widgets (select boxes, radio, text
# inputs and areas, number inputs, checkbox, markdown) and no code of ours. The browser loads
# each kind's part of Streamlit's front end when it first shows one, and renders the form:
# the hub cannot be faster than this page.
FORM_PAGE = """import streamlit as st

st.set_page_config(page_title="Form", layout="wide")
st.navigation(
    [st.Page(lambda: None, title="Hub", default=True), st.Page(lambda: None, title="B", url_path="b")], position="top"
)
st.title("Sparring")
st.caption("Launch a battle")
st.selectbox("Agent", ["Custom agent", "a", "b"])
st.radio("Kind", ["Model", "HTTP endpoint", "Python callable"], horizontal=True)
st.text_input("Agent model", "sim/agent")
st.text_area("System prompt", "You are helpful")
st.number_input("Temperature", 0.0, 2.0, 0.7)
st.selectbox("Goal", ["a", "Write my own"])
st.text_area("Goal text", "x")
st.text_input("Adversary model", "sim/adversary")
st.text_input("Judge model", "sim/judge")
st.number_input("Max messages", 1, 100, 10)
st.selectbox("Strategy", ["s1", "s2"])
st.checkbox("Advanced")
st.markdown("**Recent battles** :material/stadium:")
st.button("Start battle")
"""


def app_start() -> tuple[float, float]:
    """Seconds from ``make run`` to the first HTTP answer and to the hub on screen."""
    return _start_and_render(lambda port: ["make", "--no-print-directory", "run", f"PORT={port}"])


def bare_start(source: str = BARE_PAGE) -> tuple[float, float]:
    """The same two figures for ``BARE_PAGE`` (or ``source``): what Streamlit and the browser take alone."""
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "bare.py"
        page.write_text(source)
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


def _start_and_render(
    command: Any, on_screen: Callable[[subprocess.Popen[bytes]], None] | None = None
) -> tuple[float, float]:
    """Start ``command(port)``; seconds to the first HTTP answer and to the Start button.

    The browser is started first, as a user's already is: its own start is not counted.
    ``on_screen(process)`` is called as soon as the button is on screen (the breakdown stops
    its profiler there).
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
            if on_screen:
                on_screen(process)
        finally:
            browser.close()
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            process.wait(20)
        del env
    return http, hub


# --- The breakdown: where the hub's cold start goes -------------------------------------

PY_SPY = ROOT / ".venv" / "bin" / "py-spy"
SAMPLE_RATE = 200  # per second, of the thread that holds the GIL
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::\d+)?\)$")
OURS = ("sparring", "jobs", "ui", "streamlit_app")


def module_of(path: str) -> str:
    """A dotted module name for a source file (``pandas.core.api``, ``sparring.store.reads``)."""
    if "site-packages/" in path:
        rel = path.split("site-packages/", 1)[1]
    elif path.startswith(str(ROOT) + "/"):
        rel = path[len(str(ROOT)) + 1 :]
    elif "/lib/python3" in path:
        rel = path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    else:
        rel = path
    rel = rel.removesuffix(".py").removesuffix("/__init__")
    return rel.replace("/", ".")


def is_ours(module: str) -> bool:
    return module.split(".")[0] in OURS


def classify(thread: str, frames: list[tuple[str, str]]) -> tuple[str, str | None]:
    """The cost a sample belongs to, and the module of ours it imports, if it imports one.

    ``frames`` run from the thread's root to the function on the CPU, as (function, file).
    A ``<module>`` frame called by importlib is an import; the script and the pages are run by
    Streamlit, not imported, so their ``<module>`` frames are page code.
    """
    files = [file for _, file in frames]
    imported = [
        module_of(file)
        for i, (func, file) in enumerate(frames)
        if func == "<module>" and i and frames[i - 1][0] == "_call_with_frames_removed"
    ]
    own = [m for m in imported if is_ours(m)]
    innermost_own = own[-1] if own else None
    if thread.startswith("litellm") or any("/litellm/" in f for f in files):
        return "litellm import (the warm-up thread)", innermost_own
    if any("streamlit/components/v2/" in f for f in files):
        return "Streamlit component discovery (installed packages' metadata)", innermost_own
    others = [m for m in imported if not is_ours(m)]
    if others:
        return f"import {others[0].split('.')[0]}", innermost_own
    if own:
        return "import our modules (their own module-level code)", innermost_own
    if any("/sparring/store/" in f for f in files):
        return "store (open, migrate, read)", None
    if any(f.startswith(str(ROOT / "ui")) or f.endswith("streamlit_app.py") for f in files):
        return "our page code (streamlit_app.py, ui/)", None
    if any(f.endswith("/mimetypes.py") for f in files):
        return "mimetypes database (Streamlit's file server)", None
    if thread.startswith("ScriptRunner"):
        return "Streamlit script runner (other)", None
    if thread == "MainThread" or thread == "":
        return "Streamlit server: start, HTTP, websocket (main thread, other)", None
    return f"other: thread {thread}", None


def read_profile(path: Path) -> list[tuple[str, list[tuple[str, str]], int]]:
    """py-spy's raw output: (thread name, frames from the root, samples) per distinct stack."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        head, *rest = stack.split(";")
        thread = re.sub(r"^thread \(\d+\):? ?", "", head)
        thread = re.sub(r"[-_]?\d+(_\d+)?$", "", thread)  # ThreadPoolExecutor-1_0 -> ThreadPoolExecutor
        frames = []
        for frame in rest:
            match = FRAME.match(frame)
            frames.append((match["func"], match["file"]) if match else (frame, ""))
        stacks.append((thread, frames, int(count)))
    return stacks


def breakdown() -> dict[str, Any]:
    """Serve the app once under py-spy up to the hub's button on screen; print where the time went."""
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "profile.txt"

        def command(port: int) -> list[str]:
            profiler = [str(PY_SPY), "record", "-r", str(SAMPLE_RATE), "--nonblocking", "--gil", "--threads"]
            profiler += ["--full-filenames", "-f", "raw", "-o", str(output), "--"]
            app = [str(ROOT / ".venv" / "bin" / "python"), "-m", "sparring", "serve", "--port", str(port)]
            return [*profiler, *app, "--address", "127.0.0.1"]

        def stop_profiler(process: subprocess.Popen[bytes]) -> None:
            process.send_signal(signal.SIGINT)  # py-spy only: it writes its samples and exits
            process.wait(60)

        http, hub = _start_and_render(command, on_screen=stop_profiler)
        stacks = read_profile(output)

    costs: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    own_modules: collections.Counter[str] = collections.Counter()
    for thread, frames, count in stacks:
        cost, module = classify(thread, frames)
        costs[cost] += count
        threads[thread or "MainThread"] += count
        if module:
            own_modules[module] += count
    held = sum(costs.values()) / SAMPLE_RATE

    def seconds(samples: int) -> str:
        return f"{samples / SAMPLE_RATE:6.2f} s"

    print(
        f"\nCold start of `python -m sparring serve` under py-spy ({SAMPLE_RATE} samples/s of the thread "
        f"holding the GIL),\nfrom the start to the hub's button on screen: first HTTP answer {http:.2f} s, "
        f"hub on screen {hub:.2f} s\n(the profiler slows the process down: compare the parts, not the totals)."
    )
    print(f"\nPython held the GIL for {held:.2f} s of the {hub:.2f} s; where:")
    for cost, count in costs.most_common():
        print(f"  {seconds(count)}  {100 * count / max(1, sum(costs.values())):3.0f}%  {cost}")
    print("\nBy thread:")
    for thread, count in threads.most_common():
        print(f"  {seconds(count)}  {thread}")
    print("\nOur modules at import (the innermost of ours on the stack, with what they import):")
    for module, count in own_modules.most_common(12):
        print(f"  {seconds(count)}  {module}")
    litellm = costs["litellm import (the warm-up thread)"]
    if litellm:
        print(f"\nlitellm was being imported before the hub was on screen: {litellm / SAMPLE_RATE:.2f} s of the GIL.")
    return {"http": http, "hub": hub, "held": held, "costs": dict(costs)}


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


def starts(rounds: int = 3) -> dict[str, list[tuple[float, float]]]:
    """``rounds`` cold starts of the hub, the bare page and the form page, interleaved (hub,
    bare, form, hub, ...), so that what else runs on the machine weighs on all alike."""
    found: dict[str, list[tuple[float, float]]] = {"hub": [], "bare": [], "form": []}
    for _ in range(rounds):
        found["hub"].append(app_start())
        found["bare"].append(bare_start())
        found["form"].append(bare_start(FORM_PAGE))
    return found


def start_rows(name: str, rounds: int = 3) -> list[dict[str, Any]]:
    found = starts(rounds)
    http = median([h for h, _ in found["hub"]])
    hub, bare, form = (median([shown for _, shown in found[page]]) for page in ("hub", "bare", "form"))
    ratio = hub / bare
    each = ", ".join(
        f"{h:.2f}/{b:.2f}/{f:.2f}"
        for (_, h), (_, b), (_, f) in zip(found["hub"], found["bare"], found["form"], strict=True)
    )
    return [
        record(name, "make run to first HTTP response", http, "s", "≤ 5", http <= 5, notes=f"median of {rounds}"),
        record(name, "make run to the hub rendered", hub, "s", "≤ 5", hub <= 5, notes=f"median of {rounds}"),
        record(name, "bare Streamlit page to rendered (the floor)", bare, "s", notes=f"median of {rounds}; no target"),
        record(
            name,
            "hub rendered / bare page rendered",
            ratio,
            "×",
            "≤ 1.3",
            ratio <= 1.3,
            notes=f"medians of {rounds} each, interleaved in one run; hub/bare/form s: {each}",
        ),
        record(
            name,
            "form page (the hub's kinds of widgets, no code) / bare page",
            form / bare,
            "×",
            notes=f"medians of {rounds}, same run; what the browser alone adds for such a form; no target",
        ),
    ]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="python -m bench.coldstart", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--breakdown", action="store_true", help="profile one cold start of the hub and print where the time goes"
    )
    parser.add_argument(
        "--starts-only", action="store_true", help="only the hub and bare-page starts and their ratio (no worker)"
    )
    args = parser.parse_args(argv or [])  # `make bench` calls main() with none
    if args.breakdown:
        breakdown()
        return []
    name = "cold start and memory"
    rows = start_rows(name)
    if not args.starts_only:
        picked = worker_start()
        rss = worker_rss()
        rows += [
            record(name, "worker start to first battle picked up", picked, "s", "≤ 15", picked <= 15),
            record(name, "worker peak RSS, 50 battles at once", rss, "MB", "≤ 400", rss <= 400),
        ]
    table("5. Cold start and memory", rows)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
