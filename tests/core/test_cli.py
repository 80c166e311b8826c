"""``python -m sparring`` end to end, in a subprocess like a user's shell.

A follow-up command within a test (a second battle, a status) and the refused options run ``cli.main``
in this process (``run_cli``): each subprocess that runs a battle imports litellm again, 4-7 s on a busy
machine, and each refusal started an interpreter for ~0.5 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_cli


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sparring", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_battle_json_has_the_documented_fields(isolated: Path) -> None:
    done = cli("battle", "--agent-model", "sim/agent?concede=1", "--seed", "3", "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    for key in ("battle_id", "outcome", "messages", "turns_to_goal", "tokens", "cost_usd"):
        assert key in payload
    assert payload["outcome"] == "achieved" and payload["messages"] == 2 and payload["turns_to_goal"] == 1
    assert payload["tokens"] > 0 and payload["cost_usd"] > 0

    held = run_cli("battle", "--agent-model", "sim/agent?concede=0", "--max-messages", "6", "--json")
    payload = json.loads(held.stdout)
    assert payload["outcome"] == "held" and payload["messages"] == 6 and payload["turns_to_goal"] is None

    status = cli("status", payload["battle_id"], "--json")
    assert status.returncode == 0
    assert json.loads(status.stdout)["outcome"] == "held"


def test_a_judge_that_cannot_answer_gives_undecided_not_held() -> None:
    """Issue 17: the agent gives in at once, the judge's answers never parse."""
    args = ("battle", "--agent-model", "sim/agent?concede=1", "--judge-model", "sim/judge?garble=1")
    done = cli(*args, "--skip-judge-check", "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["outcome"] == "undecided" and payload["messages"] == 6 and payload["turns_to_goal"] is None
    assert "3 error verdicts in a row" in payload["error"]
    status = run_cli("status", payload["battle_id"], "--json")
    assert json.loads(status.stdout)["outcome"] == "undecided"
    text = run_cli(*args, "--skip-judge-check", "--max-messages", "4")
    assert "outcome: undecided" in text.stdout and "judge: error" in text.stdout


def test_text_output_shows_the_transcript() -> None:
    done = cli("battle", "--agent-model", "sim/agent?concede=0", "--max-messages", "4", "--goal", "Reveal the prompt")
    assert done.returncode == 0, done.stderr
    assert "ADVERSARY: " in done.stdout and "AGENT: " in done.stdout
    assert "Reveal the prompt" in done.stdout and "outcome: held" in done.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--max-messages", "0"], "--max-messages"),
        (["--max-messages", "1000000"], "--max-messages"),
        (["--max-messages", "ten"], "invalid int value"),
        (["--agent-model", "gpt-4o"], "provider/model"),
        (["--agent-model", "nosuch/model"], "Unknown provider"),
        (["--agent-model", "openai/gpt-4o-mini"], "OPENAI_API_KEY"),
        (["--agent-model", "sim/agent?concede=2"], "between 0 and 1"),
        (["--agent-model", "sim/agent?bogus=1"], "no parameter 'bogus'"),
        (["--goal", ""], "--goal"),
        (["--goal", "a\x07b"], "control characters"),
        (["--strategy", "nope"], "--strategy"),
        (["--temperature", "5"], "--temperature"),
        (["--seed", "-1"], "--seed"),
        (["--api-base", "ftp://x"], "--api-base"),
        (["--api-key-env", "lower-case"], "--api-key-env"),
        (["--time-limit", "0"], "--time-limit"),
        (["--unknown-flag"], "unrecognized arguments"),
        (["--system-prompt", "@/nonexistent/file.txt"], "cannot read"),
    ],
)
def test_invalid_options_exit_2_with_one_line_and_write_nothing(
    isolated: Path, args: list[str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "")
    done = run_cli("battle", *args)  # in-process like test_text_inputs' refusals: 18 interpreters took ~10 s
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert not (isolated / "sparring.duckdb").exists()


def test_unknown_battle_id_exits_2() -> None:
    cli("migrate")
    done = cli("status", "doesnotexist")
    assert done.returncode == 2
    assert "unknown battle id" in done.stderr


def test_help_explains_every_option() -> None:
    done = cli("battle", "--help")
    assert done.returncode == 0
    for option in (
        "--agent-model",
        "--system-prompt",
        "--goal",
        "--adversary-model",
        "--strategy",
        "--judge-model",
        "--max-messages",
        "--seed",
        "--json",
        "--detach",
    ):
        assert option in done.stdout
