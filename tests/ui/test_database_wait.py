"""A read-only connection held open on the database file (a notebook): pages say writes wait.

A real DuckDB file, held by a real second process, while the app's in-process consumer runs
a real (sim) battle: the battle stands still, and its page says why and since when.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from jobs import submit
from jobs.health import writes_waiting_since
from sparring.runtime import get_runtime
from sparring.store import db
from tests.helpers import scalar, wait_until
from tests.ui.apptest import open_app, open_page

# A notebook's bare connect, retried by hand: it fails now and then while a battle commits.
HOLDER = """
import sys, time, duckdb
while True:
    try:
        con = duckdb.connect(sys.argv[1], read_only=True)
        break
    except duckdb.IOException:
        time.sleep(0.01)
print("held", flush=True)
sys.stdin.read()
"""


@contextmanager
def notebook_holding_the_file() -> Iterator[None]:
    """Another process with a bare read-only DuckDB connection open until the block ends."""
    path = str(get_runtime().settings.db_path)
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the attach may itself wait for a commit to end
        assert line.strip() == "held", line
        yield
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(30)


def notices(at) -> list[str]:  # type: ignore[no-untyped-def]
    return [w.value for w in at.warning if "Writes are waiting for the database file" in w.value]


def test_a_held_file_is_named_on_the_battle_page_and_the_battle_resumes_when_it_is_free() -> None:
    at = open_app()  # embedded mode: the app runs battles in this process
    battle_id = submit.submit_battle(
        {"agent_model": "sim/agent?concede=0&latency_ms=400", "max_messages": 30, "seed": 3}, require_worker=False
    )
    wait_until(lambda: (scalar("SELECT message_count FROM battles WHERE battle_id = ?", [battle_id]) or 0) >= 2, 60)
    before = time.time()
    with notebook_holding_the_file():
        since = wait_until(db.writes_waiting_since, 30, message="the writer to find the file locked")
        assert before - 1 <= since <= time.time()
        assert writes_waiting_since() == since  # what pages read
        stuck_at = scalar("SELECT message_count FROM battles WHERE battle_id = ?", [battle_id])
        at = open_page("ui/battle.py", at, id=battle_id)
        (notice,) = notices(at)
        assert time.strftime("%H:%M:%S", time.gmtime(since)) in notice and "UTC" in notice
        assert "sparring.data.connect()" in notice
        assert len(notices(open_page("ui/hub.py", at))) == 1  # the hub says it too
        at = open_page("ui/battle.py", at, id=battle_id)
        assert stuck_at < 30  # the battle did stand still
    wait_until(lambda: db.writes_waiting_since() is None, 30, message="the writer to get the file back")
    wait_until(lambda: scalar("SELECT status FROM battles WHERE battle_id = ?", [battle_id]) == "finished", 120)
    assert scalar("SELECT message_count FROM battles WHERE battle_id = ?", [battle_id]) == 30  # nothing lost
    at = open_page("ui/battle.py", at, id=battle_id)
    assert notices(at) == []
