"""Daily spend limits: a launch that could pass one is refused with the numbers; a running
scale test stops once one is reached. Real store, sim models (which report a fictional price)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sparring import usecases
from sparring.access import Actor
from sparring.runtime import reset
from tests.helpers import rows, scalar

LAUNCHER = Actor("lena@example.com", "launcher")
OTHER = Actor("omar@example.com", "launcher")
BATTLE = {"seed": 7, "max_messages": 4}


def spend_inline(actor: Actor) -> float:
    battle_id = usecases.create_battle({"seed": 3, "max_messages": 4}, actor=actor)
    usecases.run_inline(battle_id)
    return float(scalar("SELECT cost_usd FROM battles WHERE battle_id = ?", [battle_id]))


def limit(monkeypatch: pytest.MonkeyPatch, person: float | None = None, deployment: float | None = None) -> None:
    for name, value in (("SPARRING_PERSON_DAILY_USD", person), ("SPARRING_DEPLOYMENT_DAILY_USD", deployment)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(value))
    reset()


def test_no_limit_by_default() -> None:
    assert not usecases.spend_left(actor=LAUNCHER).limited
    assert usecases.launch_battle(BATTLE, require_worker=False, actor=LAUNCHER)


def test_a_launch_that_could_pass_the_persons_limit_is_refused_with_the_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spent = spend_inline(LAUNCHER)
    assert spent > 0
    limit(monkeypatch, person=spent + 0.0001)
    with pytest.raises(usecases.SpendLimitReached) as refused:
        usecases.launch_scale({"runs": 5, "max_messages": 6}, require_worker=False, actor=LAUNCHER)
    message = str(refused.value)
    assert re.fullmatch(
        r"This scale test could cost up to \$[0-9.]+; you have \$0\.0001 left today "
        r"\(spent \$[0-9.]+ of your \$[0-9.]+ a day\)\.",
        message,
    ), message
    assert scalar("SELECT count(*) FROM scale_runs") == 0
    assert rows("SELECT actor, action, outcome FROM audit WHERE outcome LIKE 'refused%'") == [
        ("lena@example.com", "launch_scale", "refused: spend limit")
    ]
    assert usecases.spend_left(actor=OTHER).person_left == pytest.approx(spent + 0.0001)  # their own day


def test_the_deployment_limit_counts_everyone(monkeypatch: pytest.MonkeyPatch) -> None:
    spent = spend_inline(OTHER)
    limit(monkeypatch, deployment=spent)
    with pytest.raises(usecases.SpendLimitReached, match=r"the team has \$0 left today"):
        usecases.launch_battle(BATTLE, require_worker=False, actor=LAUNCHER)
    allowance = usecases.spend_left(actor=LAUNCHER)
    assert allowance.person_spent == 0 and allowance.deployment_spent == pytest.approx(spent)


def test_a_budget_caps_the_bound_of_a_scale_test(monkeypatch: pytest.MonkeyPatch) -> None:
    limit(monkeypatch, person=0.5)
    big = {"runs": 500, "max_messages": 24}
    with pytest.raises(usecases.SpendLimitReached, match="could cost up to"):
        usecases.launch_scale(big, require_worker=False, actor=LAUNCHER)
    assert usecases.launch_scale({**big, "budget_usd": 0.4}, require_worker=False, actor=LAUNCHER)


def test_the_roles_file_limits_win_over_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    roles = tmp_path / "roles.toml"
    roles.write_text('[limits]\nperson_daily_usd = 0\n[limits.people]\n"omar@example.com" = 100\n')
    monkeypatch.setenv("SPARRING_ROLES_FILE", str(roles))
    limit(monkeypatch, person=100)
    with pytest.raises(usecases.SpendLimitReached, match=r"you have \$0 left today"):
        usecases.launch_battle(BATTLE, require_worker=False, actor=LAUNCHER)
    assert usecases.launch_battle(BATTLE, require_worker=False, actor=OTHER)


def test_a_running_scale_test_stops_when_its_launcher_reaches_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from jobs import runs
    from jobs.queue import get_queue

    run_id = usecases.launch_scale({"runs": 3, "max_messages": 4}, require_worker=False, actor=LAUNCHER)
    runs.check_budget(get_queue(), run_id)
    assert scalar("SELECT status FROM scale_runs WHERE run_id = ?", [run_id]) == "queued"  # no limit yet
    spent = spend_inline(LAUNCHER)
    limit(monkeypatch, person=spent)  # reached, as if by the run's own battles
    runs.check_budget(get_queue(), run_id)
    status, error = rows("SELECT status, error FROM scale_runs WHERE run_id = ?", [run_id])[0]
    assert status == "stopping"
    assert error.startswith("budget of today's spend limit reached (you have $0 left today")
