"""``python -m sparring serve``: embedded work runs from the start, with no browser and no request.

Work queued while no server ran (a scale test submitted with ``--detach``) used to wait for
the first browser session, which started the in-process consumer. ``serve`` starts it with
the server: the test never sends the app an HTTP request, not even a health check.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sparring import cli
from tests.helpers import scalar, wait_until

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = ("finished", "cancelled", "stopped", "failed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on the port (no HTTP request is sent)."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_serve_runs_a_detached_scale_test_without_any_visitor(
    isolated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["scale", "--agent-model", "sim/agent?concede=0.3", "--runs", "3", "--max-messages", "4"]
    assert cli.main([*argv, "--detach", "--json"]) == 0
    run_id = capsys.readouterr().out.split('"run_id": "')[1].split('"')[0]
    assert scalar("SELECT status FROM scale_runs WHERE run_id = ?", [run_id]) == "queued"

    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "sparring", "serve", "--port", str(port), "--address", "127.0.0.1"],
        cwd=ROOT,
        env={**os.environ},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def ended() -> bool:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            return scalar("SELECT status FROM scale_runs WHERE run_id = ?", [run_id]) in TERMINAL

        wait_until(
            ended,
            120,
            interval=0.5,
            message="the detached scale test to finish with no browser open",
        )
        assert scalar("SELECT status FROM scale_runs WHERE run_id = ?", [run_id]) == "finished"
        assert scalar("SELECT count(*) FROM battles WHERE run_id = ? AND status = 'finished'", [run_id]) == 3
        assert process.poll() is None and listening(port)  # and the app is served by the same process
    finally:
        process.terminate()
        assert process.wait(30) == 0, (tmp_path / "serve.log").read_text()[-2000:]
        log.close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--port", "http"], "--port: not a port number: 'http' (use 1 to 65535)"),
        (["serve", "--port", "70000"], "--port: not a port number: '70000' (use 1 to 65535)"),
        (["serve", "--address", ""], "--address: not an address: ''"),
    ],
)
def test_serve_refuses_a_bad_port_or_address(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "http"], "python -m sparring serve: argument --port: not a port number: 'http' (use 1 to 65535)"),
        (["--address", "0.0.0.0"], "Refusing to serve on 0.0.0.0 without sign-in"),
    ],
)
def test_python_m_sparring_serve_reads_its_options_as_the_command_line_does(
    isolated: Path, argv: list[str], message: str
) -> None:
    """``python -m sparring serve`` parses its options apart from ``sparring.cli`` (Streamlit starts
    sooner): the same one-line refusals and exit code, and nothing served."""
    env = {k: v for k, v in os.environ.items() if k != "SPARRING_ALLOW_ANONYMOUS"}
    done = subprocess.run(
        [sys.executable, "-m", "sparring", "serve", *argv],
        cwd=ROOT,
        env={**env, "HOME": str(isolated)},  # no secrets.toml of the user's: no sign-in configured
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(message) and len(done.stderr.strip().splitlines()) == 1, done.stderr
