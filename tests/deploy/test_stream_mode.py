"""Workers on other machines: records through a Redis Stream to one ingester."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs import submit
from sparring.livestate import Mirror
from tests.conftest import reset_all
from tests.helpers import WorkerProcess, rows, scalar, wait_for_worker, wait_until


class Ingester:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log = open(log_path, "a")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jobs.ingest"], env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)
        self.log.close()


def test_stream_workers_never_open_the_file_and_a_killed_ingester_loses_nothing(
    redis_url: str, tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = tmp_path / "remote-machine"
    remote.mkdir()
    worker_env = {
        "SPARRING_RECORD_SINK": "stream",
        "SPARRING_DATA_DIR": str(remote),
        "SPARRING_HEARTBEAT_PERIOD_S": "1",
    }
    ingester_env = {"SPARRING_DATA_DIR": str(isolated)}
    monkeypatch.setenv("SPARRING_HEARTBEAT_PERIOD_S", "1")
    reset_all()
    ingester = Ingester(ingester_env, tmp_path / "ingest.log")
    workers = [WorkerProcess(threads=4, env=worker_env), WorkerProcess(threads=4, env=worker_env)]
    try:
        for worker in workers:
            wait_for_worker(worker)
        battle = {"agent_model": "sim/agent?concede=0&latency_ms=60", "max_messages": 12}
        # Half submitted straight into the file (the workers hydrate them from the ingester)...
        direct = [submit.submit_battle(battle) for _ in range(10)]
        # ...half through the stream, as a remote app would.
        monkeypatch.setenv("SPARRING_RECORD_SINK", "stream")
        reset_all()
        streamed = [submit.submit_battle(battle) for _ in range(10)]
        monkeypatch.delenv("SPARRING_RECORD_SINK")
        reset_all()
        ids = direct + streamed

        wait_until(lambda: (scalar("SELECT count(*) FROM messages") or 0) >= 40, 120, message="ingested messages")
        ingester.kill()  # mid-run: some entries delivered and not acknowledged
        killed_with = scalar("SELECT count(*) FROM messages")
        time.sleep(2)
        ingester.stop()
        ingester = Ingester(ingester_env, tmp_path / "ingest.log")

        def all_finished() -> bool:
            found = rows(
                "SELECT count(*) FROM battles WHERE status = 'finished' AND list_contains(?, battle_id)", [ids]
            )
            return found[0][0] == len(ids)

        wait_until(all_finished, 180, interval=0.5, message="every battle finished in the database")
        mirror = Mirror(redis_url, os.environ["SPARRING_NAMESPACE"])
        wait_until(lambda: mirror.client.xlen(mirror.stream) == 0, 60, message="the stream to drain")
    finally:
        for worker in workers:
            worker.stop()
        ingester.stop()

    assert killed_with < 20 * 12  # the kill really happened mid-run
    assert list(remote.iterdir()) == []  # the workers never created (or opened) a database
    for battle_id in ids:
        seqs = [s for (s,) in rows("SELECT seq FROM messages WHERE battle_id = ? ORDER BY seq", [battle_id])]
        assert seqs == list(range(1, 13)), battle_id
        stored_calls = {c for (c,) in rows("SELECT call_id FROM llm_calls WHERE battle_id = ?", [battle_id])}
        sent_calls = {c.decode() for c in mirror.client.hkeys(mirror.battle_key(battle_id, "c"))}
        assert stored_calls == sent_calls and len(sent_calls) >= 18  # every record, exactly once
        assert scalar("SELECT count(*) FROM verdicts WHERE battle_id = ?", [battle_id]) == 6
    assert scalar("SELECT count(*) FROM messages") == 20 * 12
    health = subprocess.run(
        [sys.executable, "-m", "sparring", "health", "--json"], capture_output=True, text=True, timeout=60
    )
    assert '"ingest"' in health.stdout and '"waiting": 0' in health.stdout
