"""In queue mode the app process never imports litellm (7 s and ~190 MB here), whatever page it shows.

The pages are driven in a fresh interpreter, so that what other tests imported does not count.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import WorkerProcess, wait_for_worker
from tests.ui.apptest import ROOT

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from streamlit.testing.v1 import AppTest
    from sparring import records as r
    from sparring.runtime import get_runtime
    from sparring.usecases import create_battle

    assert get_runtime().settings.mode == "queue"
    stored = create_battle({"max_messages": 4})
    get_runtime().store.write(
        [r.MessageAdded(r.Message(stored, 1, "user", "Hello **there**", "sim/adversary"))]
    )

    at = AppTest.from_file("streamlit_app.py", default_timeout=60)
    at.run()
    at.text_input(key="hub_agent_model").set_value("sim/agent?concede=1")
    at.button(key="hub_start").click()
    at.run()
    (started,) = at.session_state["hub_state"].session_ids
    deadline = time.monotonic() + 60
    while get_runtime().store.get_battle(started).status != "finished":
        assert time.monotonic() < deadline, "the worker did not finish the battle"
        time.sleep(0.2)
        at.run()
    pages = [
        ("ui/battle.py", {"id": started}),
        ("ui/battle.py", {"id": stored}),
        ("ui/battle.py", {}),
        ("ui/scale_tests.py", {}),
        ("ui/health.py", {}),
        ("ui/data.py", {}),
        ("ui/hub.py", {}),
    ]
    for page, query in pages:
        at.query_params.clear()
        at.query_params.update(query)
        at.switch_page(page)
        at.run()
        assert not at.exception, (page, at.exception)
    assert len(at.get("progress")) == 2, "the hub should list both battles"
    assert "litellm" not in sys.modules, sorted(m for m in sys.modules if m.startswith("litellm"))[:5]
    print("rendered every page without litellm")
    """
)


@pytest.mark.redis
def test_queue_mode_pages_never_import_litellm(redis_url: str) -> None:
    worker = WorkerProcess(threads=2)
    try:
        wait_for_worker(worker)
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        worker.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rendered every page without litellm" in result.stdout
