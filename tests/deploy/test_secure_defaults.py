"""Secure defaults: the app listens on loopback unless sign-in is on, and Redis demands a password.

``make run`` and ``python -m sparring serve`` listen on 127.0.0.1 only (checked on the running
server's sockets); any other address without sign-in refuses to start, with one line naming
the setting; compose's Redis demands a password, which every process gets through REDIS_URL
(checked on ``compose.yaml`` and against a real ``redis-server --requirepass``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import redis
import yaml

from sparring import access, cli
from sparring.shared_state import redis_client
from tests.deploy.test_serve import free_port
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
AUTH = """
[auth]
redirect_uri = "http://localhost:8501/oauth2callback"
cookie_secret = "not-a-real-secret-only-for-this-test"
client_id = "sparring"
client_secret = "not-a-real-secret"
server_metadata_url = "http://127.0.0.1:1/.well-known/openid-configuration"
"""


@pytest.fixture
def no_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home and a working folder without secrets (the repository has none checked in)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPARRING_ALLOW_ANONYMOUS", raising=False)
    assert not access.signin_configured(access.secrets_files())
    return home


def listening_addresses(pid: int) -> set[str]:
    sockets = psutil.Process(pid).net_connections(kind="inet")
    return {s.laddr.ip for s in sockets if s.status == psutil.CONN_LISTEN}


def test_make_run_serves_on_loopback() -> None:
    dry = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    command = next(line for line in dry.splitlines() if "-m sparring serve" in line)
    assert "--address 127.0.0.1" in command


def test_serve_listens_on_loopback_only(no_secrets: Path, tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    env = {**os.environ, "HOME": str(no_secrets)}
    process = subprocess.Popen(
        [sys.executable, "-m", "sparring", "serve", "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:

        def bound() -> set[str]:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            return listening_addresses(process.pid)

        addresses = wait_until(bound, 60, interval=0.3, message="the server to listen")
        assert addresses == {"127.0.0.1"}
    finally:
        process.terminate()
        process.wait(30)
        log.close()


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.1.20", "sparring.example.com"])
def test_serve_refuses_another_address_without_sign_in(
    address: str, no_secrets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["serve", "--address", address]) == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1
    assert f"Refusing to serve on {address} without sign-in" in error
    assert "SPARRING_ALLOW_ANONYMOUS=1" in error and "[auth] in .streamlit/secrets.toml" in error


def test_sign_in_or_allowing_anonymous_on_purpose_lifts_the_refusal(no_secrets: Path) -> None:
    assert access.serve_refusal("0.0.0.0", signin=False, allow_anonymous=False)
    assert access.serve_refusal("0.0.0.0", signin=False, allow_anonymous=True) is None
    assert access.serve_refusal("127.0.0.1", signin=False, allow_anonymous=False) is None
    assert access.serve_refusal("::1", signin=False, allow_anonymous=False) is None
    secrets_toml = no_secrets / ".streamlit" / "secrets.toml"
    secrets_toml.parent.mkdir()
    secrets_toml.write_text("[auth]\nredirect_uri = 'http://x/oauth2callback'\n")  # no cookie secret: not enough
    assert not access.signin_configured(access.secrets_files())
    secrets_toml.write_text(AUTH)
    assert access.signin_configured(access.secrets_files())


def test_the_repository_ignores_secrets_and_keeps_them_out_of_the_image() -> None:
    assert ".streamlit/secrets.toml" in (ROOT / ".gitignore").read_text().split()
    assert ".streamlit/secrets.toml" in (ROOT / ".dockerignore").read_text().split()
    tracked = subprocess.run(["git", "ls-files", ".streamlit"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "secrets.toml" not in tracked.split()


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_redis_demands_a_password_that_every_process_gets() -> None:
    services = compose()["services"]
    redis_service = services["redis"]
    command = redis_service["command"]
    assert command[command.index("--requirepass") + 1].startswith("${REDIS_PASSWORD:?")  # no default password
    assert "ports" not in redis_service  # never published on the host
    for name in ("app", "worker-1", "worker-2"):
        url = services[name]["environment"]["REDIS_URL"]
        assert url.startswith("redis://:${REDIS_PASSWORD:?") and url.endswith("@redis:6379/0")
    assert services["app"]["ports"] == ["${SPARRING_PUBLISH:-127.0.0.1:8501}:8501"]  # loopback unless asked
    assert services["app"]["environment"]["SPARRING_ALLOW_ANONYMOUS"] == "${SPARRING_ALLOW_ANONYMOUS:-0}"


@pytest.fixture
def password_redis(tmp_path: Path) -> tuple[str, str]:
    server = shutil.which("redis-server")
    assert server, "redis-server is needed (make test installs nothing; apt-get install redis-server)"
    port = free_port()
    password = "s3cret-" + os.urandom(6).hex()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password, "--save", ""],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until(lambda: access_probe(url) is not None, 20, message="the password-protected redis-server")
        yield url, password
    finally:
        process.terminate()
        process.wait(10)


def access_probe(url: str) -> bool | None:
    from jobs.health import redis_requires_password

    return redis_requires_password(url)


def test_a_redis_with_a_password_refuses_strangers_and_admits_the_url_with_the_password(
    password_redis: tuple[str, str],
) -> None:
    url, password = password_redis
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(url).ping()
    with_password = url.replace("redis://", f"redis://:{password}@")
    assert redis_client(with_password).ping()  # the client every process builds from REDIS_URL
    assert access_probe(with_password) is True  # asked without the URL's password
    assert access_probe(url.replace("redis://", "redis://:wrong@")) is True


def test_health_says_whether_redis_demands_a_password(
    password_redis: tuple[str, str], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobs.health import access_report
    from sparring.runtime import reset

    url, password = password_redis
    assert access_report(url.replace("redis://", f"redis://:{password}@"), False)["redis_requires_password"] is True
    assert access_report(redis_url, False)["redis_requires_password"] is False  # the test Redis has none
    monkeypatch.setenv("REDIS_URL", url.replace("redis://", f"redis://:{password}@"))
    reset()
    from jobs.health import health_report

    report = health_report()
    assert report["reachable"] and report["access"]["redis_requires_password"] is True
    assert password not in str(report)


def test_a_rediss_url_connects_over_tls() -> None:
    client = redis_client("rediss://:pw@redis.example.com:6380/0")
    assert client.connection_pool.connection_class is redis.SSLConnection
