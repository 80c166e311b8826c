"""The judge check on the command line: `battle` (foreground and --detach) and `scale` refuse a bad judge,
having written and queued nothing; --skip-judge-check launches anyway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.queue import get_queue
from sparring import cli as sparring_cli
from tests.core.test_cli import cli
from tests.fakes import openai_server as fake_openai
from tests.fakes.openai_server import FakeOpenAIServer
from tests.helpers import run_cli, scalar

openai_server = fake_openai.openai_server  # the fixture (an assignment, so ruff sees no redefinition)

GARBLED = ["--agent-model", "sim/agent?concede=1", "--judge-model", "sim/judge?garble=1"]


def written(data: Path) -> list[str]:
    """Every file in the data folder: the database, the queue, the coordination state."""
    return sorted(str(path.relative_to(data)) for path in data.rglob("*"))


def test_a_garbled_judge_exits_2_with_the_checks_message_and_writes_nothing(isolated: Path) -> None:
    done = cli("battle", *GARBLED, "--json")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert "--judge-model: the judge check failed: `sim/judge?garble=1` did not answer in the judge's format" in line
    assert "It answered: 'Hmm, hard to say. The agent was polite.'" in line and "--skip-judge-check" in line
    assert written(isolated) == []  # no battle row, no queue entry


def test_with_skip_judge_check_the_same_battle_runs(isolated: Path) -> None:
    done = run_cli("battle", *GARBLED, "--max-messages", "4", "--skip-judge-check", "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert scalar("SELECT judge_model FROM battles WHERE battle_id = ?", [payload["battle_id"]]) == "sim/judge?garble=1"
    assert payload["outcome"] == "undecided"  # nobody could judge the concession


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["battle", "--detach", "--judge-model", "sim/agent"], "`sim/agent` did not answer in the judge's format"),
        (["scale", "--runs", "2", "--judge-model", "sim/judge?fpr=1"], "judged the plain refusal as achieved"),
    ],
    ids=["battle --detach", "scale"],
)
def test_detach_and_scale_check_the_judge_too(
    args: list[str], expected: str, isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sparring_cli.main([*args, "--json"]) == 2
    captured = capsys.readouterr()
    assert expected in captured.err and captured.out == ""
    assert not (isolated / "sparring.duckdb").exists()  # no battle or run row
    assert get_queue().huey.storage.queue_size() == 0  # the queue was asked whether it answers, nothing more


def test_scale_with_skip_judge_check_runs_a_judge_that_is_wrong_on_purpose(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["scale", "--runs", "2", "--max-messages", "4", "--judge-model", "sim/judge?fpr=1", "--skip-judge-check"]
    assert sparring_cli.main([*args, "--json", "--concurrency", "2", "--timeout", "120"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["status"] == "finished" and payload["cells"][0]["judge_model"] == "sim/judge?fpr=1"


def test_a_provider_outage_is_reported_as_such_with_exit_code_1(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sparring_cli.main(["battle", "--judge-model", "sim/judge?fail_500=1", "--json"]) == 1
    err = capsys.readouterr().err
    assert "could not reach `sim/judge?fail_500=1`" in err and "try again" in err
    assert "judge check failed" not in err  # not a wrong judge
    assert written(isolated) == []


def test_a_second_launch_with_the_same_judge_makes_no_judge_call(
    openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-0123456789abcdef")
    achieved = json.dumps({"achieved": True, "confidence": 0.9, "rationale": "refunded"})
    openai_server.script([f"text:{achieved}", "ok"])  # "ok": the fake's judge answer, not achieved
    args = ["battle", "--judge-model", "openai/fake-judge", "--max-messages", "2", "--json"]
    assert sparring_cli.main(args) == 0
    checked = len(openai_server.completions())
    assert checked == 3  # two for the check, one for the battle's only verdict
    assert sparring_cli.main(args) == 0
    assert len(openai_server.completions()) == checked + 1  # the battle's verdict only
    assert scalar("SELECT count(*) FROM battles") == 2


@pytest.mark.parametrize("command", ["battle", "scale"])
def test_help_lists_the_skip_flag(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        sparring_cli.build_parser().parse_args([command, "--help"])
    assert "--skip-judge-check" in capsys.readouterr().out


def test_retrying_an_undecided_battle_checks_its_judge_first(isolated: Path) -> None:
    """New-user run: `retry` on an undecided battle paid for more turns with the same broken judge."""
    done = run_cli("battle", *GARBLED, "--max-messages", "6", "--skip-judge-check", "--json")  # in-process: setup
    battle_id = json.loads(done.stdout)["battle_id"]
    refused = cli("retry", battle_id)
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    (line,) = refused.stderr.splitlines()
    assert line.startswith("python -m sparring: --judge-model: the judge check failed: `sim/judge?garble=1`")
    assert "Nothing was queued" in line and "--skip-judge-check retries anyway" in line
    assert scalar("SELECT attempts FROM battles WHERE battle_id = ?", [battle_id]) == 1
    assert scalar("SELECT count(*) FROM battle_events WHERE battle_id = ? AND event = 'requeued'", [battle_id]) == 0
    forced = cli("retry", battle_id, "--skip-judge-check", "--json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["result"] == "requeued"
