"""Containers cannot be built here (no Docker engine): check them by construction.

The compose file parses; the app, the workers and the Procfile name the very commands
that the README documents and that these tests run.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]


def dockerfile_cmd() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(r"^CMD (\[.*\])\s*$", text, re.M)
    assert match, "the Dockerfile has an exec-form CMD"
    return list(json.loads(match.group(1)))


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_compose_file_parses_and_runs_redis_the_app_and_two_workers() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "app", "worker-1", "worker-2"}
    for name in ("app", "worker-1", "worker-2"):
        service = services[name]
        assert service["environment"]["REDIS_URL"].endswith("@redis:6379/0")  # with its password
        assert "sparring-data:/data" in service["volumes"]  # one shared data volume
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
            assert service["environment"][key].startswith("${")  # passed through, never written here
    assert services["app"]["command"] == dockerfile_cmd()
    assert (
        services["worker-1"]["command"]
        == services["worker-2"]["command"]
        == ["python", "-m", "jobs.worker", "--workers", "4"]
    )


def test_procfile_and_readme_name_the_same_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    app = " ".join(dockerfile_cmd())
    worker = " ".join(compose()["services"]["worker-1"]["command"])
    assert procfile()["worker"] == worker
    assert procfile()["web"] == app.replace("--port 8501", "--port ${PORT:-8501}")
    assert worker in readme and "python -m jobs.ingest" in readme and "docker compose up" in readme
    assert "python -m sparring serve" in readme


def test_dockerfile_is_multi_stage_non_root_offline_and_healthy() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    assert re.search(r"^USER sparring\s*$", text, re.M)
    assert "LITELLM_LOCAL_MODEL_COST_MAP=True" in text
    assert "HEALTHCHECK" in text and "/_stcore/health" in text
    assert "requirements-test" not in text.replace(".dockerignore", "")
    final_stage = text.split("\nFROM ")[-1]
    assert "pip install" not in final_stage and "apt-get" not in final_stage  # no build tools in the image
    assert "requirements-test.txt" in (ROOT / ".dockerignore").read_text()


def free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_the_image_command_serves_the_app(isolated: Path) -> None:
    port = free_port()
    command = [sys.executable if part == "python" else part for part in dockerfile_cmd()]
    command[command.index("--port") + 1] = str(port)
    command[command.index("--address") + 1] = "127.0.0.1"
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_until(healthy, 60, interval=0.3, message="the app's health endpoint")
    finally:
        process.terminate()
        process.wait(15)


def test_the_worker_command_runs_a_worker(redis_url: str) -> None:
    from tests.helpers import live_worker_pids

    command = [sys.executable if part == "python" else part for part in compose()["services"]["worker-1"]["command"]]
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until(lambda: process.pid in live_worker_pids(), 40, message="the worker's heartbeat")
        check = compose()["services"]["worker-1"]["healthcheck"]["test"][1:]  # the container's own health check
        check = [sys.executable if part == "python" else part for part in check]
        healthy = subprocess.run(check, cwd=ROOT, env={**os.environ}, capture_output=True, timeout=60)
        assert healthy.returncode == 0
    finally:
        process.terminate()
        process.wait(20)
    time.sleep(0.1)


def dockerignored(relative: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern that matches the path (or a parent) decides."""
    import fnmatch

    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatch(c, pattern) or fnmatch.fnmatch(c, pattern.removeprefix("**/")) for c in candidates):
            ignored = not negate
    return ignored


def test_everything_the_dockerfile_copies_reaches_the_build_context() -> None:
    text = (ROOT / "Dockerfile").read_text()
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = []
    for line in re.findall(r"^COPY (?!--from)(.*)$", text, re.M):
        words = [w for w in line.split() if not w.startswith("--")]
        sources += words[:-1]
    assert sources, "the Dockerfile copies the application"
    for source in sources:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which is not in the repository"
        assert not dockerignored(source, patterns), f".dockerignore leaves {source} out of the build context"
    assert not dockerignored("streamlit_app.py", patterns)
    assert dockerignored("data/sparring.duckdb", patterns) and dockerignored("tests/conftest.py", patterns)
