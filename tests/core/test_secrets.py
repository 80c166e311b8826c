"""No API key value ever reaches the database, the output or the logs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import duckdb

SECRET = "sk-test-" + "S3cr3tV4lue" * 3


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def all_text(path: Path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        chunks = []
        tables = [row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        for table in tables:
            for row in con.execute(f'SELECT * FROM "{table}"').fetchall():
                chunks.append(repr(row))
        return "\n".join(chunks)
    finally:
        con.close()


def test_api_keys_never_reach_the_store_or_the_logs(isolated: Path) -> None:
    env = {**os.environ, "OPENAI_API_KEY": SECRET, "MY_AGENT_KEY": SECRET, "SPARRING_MODEL_MAX_ATTEMPTS": "2"}
    outputs = []
    for args in (
        ["--agent-model", "sim/agent?concede=0", "--max-messages", "4"],
        # a real provider over HTTP that is not there: the error is recorded, the key is not
        [
            "--agent-model",
            "openai/gpt-4o-mini",
            "--api-base",
            f"http://127.0.0.1:{closed_port()}/v1",
            "--api-key-env",
            "MY_AGENT_KEY",
            "--max-messages",
            "4",
            "--time-limit",
            "30",
        ],
        [
            "--agent-model",
            "openai/gpt-4o-mini",
            "--api-base",
            f"http://127.0.0.1:{closed_port()}/v1",
            "--max-messages",
            "2",
            "--time-limit",
            "30",
        ],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "sparring", "battle", "--json", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout + done.stderr)
    db_path = isolated / "sparring.duckdb"
    text = all_text(db_path)
    assert "failed" in text and "MY_AGENT_KEY" in text  # the key's *name* is kept, its value never
    assert SECRET not in text
    assert SECRET.encode() not in db_path.read_bytes()
    assert all(SECRET not in output for output in outputs)
