"""The success-check options: validated before anything is written, and deciding the battle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparring import cli, sim


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--success-regex", "(unclosed"], "--success-regex: is not a valid regular expression"),
        (["--success-tool", "9lives"], "--success-tool: '9lives' is not a tool name"),
        (["--success-tool", "issue_refund:{amount: 1}"], "--success-tool: the arguments after issue_refund: are not"),
        (["--success-tool", "issue_refund:[1]"], "--success-tool: the arguments after issue_refund: must be a JSON"),
        (["--success-contains", "  "], "--success-contains: must not be empty"),
        (["--success-contains", "A", "--success-contains", "A"], "--success-contains: each text must be different"),
        (["--success-contains", "x" * 501], "--success-contains: is too long"),
    ],
)
@pytest.mark.parametrize("command", ["battle", "scale"])
def test_bad_checks_exit_2_with_one_line_and_write_nothing(
    isolated: Path, capsys: pytest.CaptureFixture[str], command: str, args: list[str], expected: str
) -> None:
    assert cli.main([command, *args]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], err
    assert not (isolated / "sparring.duckdb").exists()


def test_a_canary_decides_a_battle_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["battle", "--agent-model", "sim/agent?concede=1", "--judge-model", "sim/judge?fnr=1"]
    assert cli.main([*argv, "--success-contains", sim.CONCESSION, "--skip-judge-check", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["outcome"] == "achieved" and payload["turns_to_goal"] == 1


def test_the_text_transcript_shows_the_check_beside_the_judge(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["battle", "--agent-model", "sim/agent?concede=1", "--success-regex", "exception", "--seed", "1"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "check: ACHIEVED" in out and "judge: ACHIEVED" in out


def test_scale_takes_the_checks_for_every_cell(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["scale", "--agent-model", "sim/agent?concede=0", "--agent-model", "sim/agent?concede=1"]
    argv += ["--runs", "2", "--max-messages", "4", "--success-contains", sim.CONCESSION, "--json", "--seed", "5"]
    assert cli.main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [(c["n"], c["achieved"]) for c in payload["cells"]] == [(2, 0), (2, 2)]


def test_judge_none_runs_without_a_judge_check(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["battle", "--agent-model", "sim/agent?concede=1", "--judge-model", "none"]
    assert cli.main([*argv, "--success-contains", sim.CONCESSION, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == "achieved"
    assert cli.main(["battle", "--judge-model", "none"]) == 2
    assert "--judge-model: 'none' (no judge) needs a success check" in capsys.readouterr().err


def test_judge_none_launches_through_the_queue_and_prices_without_a_judge(capsys: pytest.CaptureFixture[str]) -> None:
    """The launch path bounds the cost (spend limits) and forecasts it: no judge, no judge cost, no crash."""
    from sparring import usecases
    from sparring.runtime import get_runtime

    argv = ["scale", "--agent-model", "sim/agent?concede=1", "--judge-model", "none", "--runs", "2"]
    argv += ["--max-messages", "4", "--success-contains", sim.CONCESSION, "--dry-run", "--json"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["forecast"] is not None
    checked = {"agent_model": "sim/agent?concede=1", "judge_model": "none", "success_contains": [sim.CONCESSION]}
    battle_id = usecases.launch_battle(checked, require_worker=False)
    assert get_runtime().store.get_battle(battle_id) is not None
    scale = {"agents": [{"model": "sim/agent?concede=1"}], "judge_model": "none", "runs": 2, "max_messages": 4}
    run_id = usecases.launch_scale({**scale, "success_contains": [sim.CONCESSION]}, require_worker=False)
    assert get_runtime().store.get_run(run_id) is not None


def test_no_judge_is_spelt_none(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["battle", "--judge-model", "None", "--success-contains", "x"]) == 2
    assert "--judge-model: write 'none' (lower case) for no judge, not 'None'" in capsys.readouterr().err
