"""The project's .streamlit/config.toml reaches the server from where every command starts it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def resolved_option(name: str, cwd: Path) -> str | None:
    """The value Streamlit resolves for ``name`` when started in ``cwd`` (None: its default)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("STREAMLIT_")}
    shown = subprocess.run(
        [sys.executable, "-m", "streamlit", "config", "show"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    match = re.search(rf"^{re.escape(name)} = (.+)$", shown, re.M)
    return match.group(1).strip('"') if match else None


def test_users_get_the_viewers_toolbar_without_a_deploy_button(tmp_path: Path) -> None:
    # `make run`, the Procfile and the browser tests start the app in the repository's root; the
    # image starts it in its WORKDIR, where the Dockerfile copies .streamlit.
    assert resolved_option("toolbarMode", ROOT) == "viewer"
    assert resolved_option("toolbarMode", tmp_path) is None  # elsewhere: Streamlit's default, shown commented
    dockerfile = (ROOT / "Dockerfile").read_text()
    workdir = dockerfile.rindex("\nWORKDIR ")
    copied = re.search(r"^COPY .*\s\.streamlit \./\.streamlit$", dockerfile, re.M)
    assert copied and copied.start() > workdir, "the image copies .streamlit into the folder the app starts in"
