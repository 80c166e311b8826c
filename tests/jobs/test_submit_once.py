"""One form, one launch: submits that carry the same token create one battle (or run).

Against the real coordinators (Redis in queue mode, the SQLite file in embedded mode), the
real DuckDB store and the real queue; racing submits come from threads and from processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from jobs import runs, submit
from jobs.queue import get_queue
from sparring.runtime import get_runtime
from tests.helpers import scalar, wait_until

BATTLE = {"agent_model": "sim/agent?concede=0", "max_messages": 4}
SCALE = {"runs": 3, "agents": [{"model": "sim/agent?concede=0"}], "max_messages": 4}
RACERS = 4


@pytest.fixture(params=["embedded", "queue"])
def mode(request: pytest.FixtureRequest) -> str:
    if request.param == "queue":
        request.getfixturevalue("redis_url")
    return str(request.param)


def race(launch: Callable[[], str], recorded: Callable[[str], object], racers: int = RACERS) -> list[str]:
    """``launch`` run by ``racers`` threads released at the same instant; their results.

    Each result must already be recorded when it is returned (a page shows it at once).
    """
    barrier = threading.Barrier(racers)
    results: list[str | BaseException] = [RuntimeError("did not finish")] * racers

    def one(index: int) -> None:
        barrier.wait()
        try:
            launched = launch()
            results[index] = launched if recorded(launched) else AssertionError(f"{launched} not recorded yet")
        except BaseException as error:  # reported by the assertion below
            results[index] = error

    threads = [threading.Thread(target=one, args=(index,)) for index in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    failures = [result for result in results if isinstance(result, BaseException)]
    assert not failures, failures
    return [str(result) for result in results]


def pending_jobs() -> int:
    return len(get_queue().pending_ids())


def test_racing_submits_of_one_form_start_one_battle(mode: str) -> None:
    token = submit.new_submit_token()
    ids = race(lambda: submit.submit_battle(BATTLE, require_worker=False, token=token), get_runtime().store.get_battle)
    assert len(set(ids)) == 1, ids
    assert scalar("SELECT count(*) FROM battles") == 1
    assert scalar("SELECT battle_id FROM battles") == ids[0]
    assert pending_jobs() == 1


def test_a_fresh_token_after_a_submit_starts_a_new_battle(mode: str) -> None:
    first_token, next_token = submit.new_submit_token(), submit.new_submit_token()
    first = submit.submit_battle(BATTLE, require_worker=False, token=first_token)
    again = submit.submit_battle(BATTLE, require_worker=False, token=first_token)
    second = submit.submit_battle(BATTLE, require_worker=False, token=next_token)
    assert again == first and second != first
    assert scalar("SELECT count(*) FROM battles") == 2
    untokened = {submit.submit_battle(BATTLE, require_worker=False) for _ in range(2)}
    assert len(untokened) == 2  # without a token (the CLI), every submit is a new battle
    assert scalar("SELECT count(*) FROM battles") == 4


def test_racing_submits_of_one_scale_form_launch_one_run(mode: str) -> None:
    token = submit.new_submit_token()
    ids = race(lambda: runs.submit_run(SCALE, require_worker=False, token=token), get_runtime().store.get_run)
    assert len(set(ids)) == 1, ids
    assert scalar("SELECT count(*) FROM scale_runs") == 1
    again = runs.submit_run(SCALE, require_worker=False, token=token)
    fresh = runs.submit_run(SCALE, require_worker=False, token=submit.new_submit_token())
    assert again == ids[0] and fresh != ids[0]
    assert scalar("SELECT count(*) FROM scale_runs") == 2


def test_a_refused_submit_leaves_its_token_usable(redis_url: str) -> None:
    """No worker: nothing is claimed, so "Run it here instead" with the same form starts the battle."""
    token = submit.new_submit_token()
    with pytest.raises(submit.NoWorkerError):
        submit.submit_battle(BATTLE, token=token)
    assert scalar("SELECT count(*) FROM battles") == 0
    battle_id = submit.submit_battle(BATTLE, require_worker=False, token=token)
    assert scalar("SELECT battle_id FROM battles") == battle_id


def test_a_token_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError, match="not a submit token"):
        submit.submit_battle(BATTLE, require_worker=False, token="x y")
    assert scalar("SELECT count(*) FROM battles") == 0


# Each process waits for the go file, so that both submit at the same instant (imports are slow).
SUBMITTER = """
import sys, time
from pathlib import Path
from jobs import dispatch, submit
dispatch.wire()  # an app process wires the queue into the use cases at its entry point
go, ready, token = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
ready.touch()
while not go.exists():
    time.sleep(0.001)
battle = {"agent_model": "sim/agent?concede=0", "max_messages": 4}
print(submit.submit_battle(battle, require_worker=False, token=token))
"""


def test_two_app_processes_submitting_one_form_start_one_battle(mode: str, tmp_path: Path) -> None:
    token = submit.new_submit_token()
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SUBMITTER, str(go), str(tmp_path / f"ready-{index}"), token],
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    try:
        wait_until(lambda: all((tmp_path / f"ready-{i}").exists() for i in range(2)), 60, message="both ready")
        time.sleep(0.05)
        go.touch()
        outputs = [process.communicate(timeout=60) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert all(process.returncode == 0 for process in processes), outputs
    ids = {out.strip() for out, _ in outputs}
    assert len(ids) == 1, outputs
    assert scalar("SELECT count(*) FROM battles") == 1
    assert pending_jobs() == 1
