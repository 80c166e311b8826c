"""Roles are checked in the use cases themselves, every action is attributed and audited.

Real store, the embedded queue and sim models; the actors are the ones the app builds from
``st.user`` and the roles file (``sparring.access``), handed straight to the use cases, which
is what a forged request reaching the server would do.
"""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from sparring import access, usecases
from sparring.access import AccessRefused, Actor
from sparring.runtime import get_runtime
from sparring.store import reads
from tests.helpers import new_battle, rows, scalar

ROOT = Path(__file__).resolve().parents[2]
VIEWER = Actor("vic@example.com", "viewer")
LAUNCHER = Actor("lena@example.com", "launcher")
OTHER = Actor("omar@example.com", "launcher")
ADMIN = Actor("ana@example.com", "admin")
BATTLE = {"seed": 7, "max_messages": 4}


def audit_log() -> list[tuple[str, str, str | None, str]]:
    return rows("SELECT actor, action, target, outcome FROM audit ORDER BY occurred_at, audit_id")


def test_the_example_roles_file_gives_people_domains_and_groups_their_roles() -> None:
    roles = access.load_roles(ROOT / "roles.example.toml")
    assert roles.role_of("Ana@Example.com") == "admin"  # named: exactly this role
    assert roles.role_of("bob@example.com") == "launcher"  # their domain
    assert roles.role_of("eve@elsewhere.org", ["sparring-admins"]) == "admin"  # a group
    assert roles.role_of("eve@elsewhere.org") == "viewer"  # nobody named them: the default
    assert roles.limits.for_person("ana@example.com") == 50.0
    assert roles.limits.for_person("bob@example.com") == 20.0
    assert roles.limits.deployment_daily_usd == 200.0


def test_a_wrong_roles_file_names_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "roles.toml"
    path.write_text('[people]\n"x@example.com" = "owner"\n')
    with pytest.raises(access.RolesFileError, match=r"\[people\] x@example.com: 'owner' is not a role"):
        access.load_roles(path)
    path.write_text('default_role = "none"\n[limits]\nperson_daily_usd = -1\n')
    with pytest.raises(access.RolesFileError, match="person_daily_usd: -1 is not an amount"):
        access.load_roles(path)
    path.write_text('default_role = "none"\n')
    assert access.load_roles(path).role_of("x@example.com") is None


def test_a_viewer_cannot_launch_and_the_refusal_names_the_role_and_is_audited() -> None:
    with pytest.raises(AccessRefused) as refused:
        usecases.launch_battle(BATTLE, require_worker=False, actor=VIEWER)
    assert str(refused.value) == "Launching a battle needs the launcher role; vic@example.com is a viewer."
    with pytest.raises(AccessRefused, match="Launching a scale test needs the launcher role"):
        usecases.launch_scale({"runs": 2, "max_messages": 4}, require_worker=False, actor=VIEWER)
    assert scalar("SELECT count(*) FROM battles") == 0 and scalar("SELECT count(*) FROM scale_runs") == 0
    assert audit_log() == [
        ("vic@example.com", "launch_battle", None, "refused: needs launcher"),
        ("vic@example.com", "launch_scale", None, "refused: needs launcher"),
    ]


def test_a_launch_records_who_launched_it() -> None:
    battle_id = usecases.launch_battle(BATTLE, require_worker=False, actor=LAUNCHER)
    run_id = usecases.launch_scale({"runs": 2, "max_messages": 4}, require_worker=False, actor=LAUNCHER)
    assert scalar("SELECT launched_by FROM battles WHERE battle_id = ?", [battle_id]) == "lena@example.com"
    assert scalar("SELECT launched_by FROM scale_runs WHERE run_id = ?", [run_id]) == "lena@example.com"
    assert [row.launched_by for row in reads.run_rows(get_runtime().store)] == ["lena@example.com"]  # the list
    assert audit_log() == [
        ("lena@example.com", "launch_battle", battle_id, "ok"),
        ("lena@example.com", "launch_scale", run_id, "ok"),
    ]


def test_a_launcher_cancels_their_own_battles_only_an_admin_anyones() -> None:
    mine = usecases.launch_battle(BATTLE, require_worker=False, actor=LAUNCHER)
    theirs = usecases.launch_battle(BATTLE, require_worker=False, actor=OTHER)
    with pytest.raises(AccessRefused, match=r"Cancelling a battle launched by omar@example.com needs the admin role"):
        usecases.cancel_battle(theirs, actor=LAUNCHER)
    assert scalar("SELECT status FROM battles WHERE battle_id = ?", [theirs]) == "queued"  # untouched
    with pytest.raises(AccessRefused, match="Cancelling a battle needs the launcher role"):
        usecases.cancel_battle(mine, actor=VIEWER)
    assert usecases.cancel_battle(mine, actor=LAUNCHER) == "cancelled"
    assert usecases.cancel_battle(theirs, actor=ADMIN) == "cancelled"
    with pytest.raises(AccessRefused, match=r"Retrying a battle launched by omar@example.com needs the admin role"):
        usecases.retry_battle(theirs, actor=LAUNCHER)
    assert usecases.retry_battle(mine, actor=LAUNCHER) == "requeued"
    outcomes = [(a, action, o) for a, action, _, o in audit_log()[2:]]
    assert outcomes == [
        ("lena@example.com", "cancel_battle", "refused: needs admin"),
        ("vic@example.com", "cancel_battle", "refused: needs launcher"),
        ("lena@example.com", "cancel_battle", "ok"),
        ("ana@example.com", "cancel_battle", "ok"),
        ("lena@example.com", "retry_battle", "refused: needs admin"),
        ("lena@example.com", "retry_battle", "ok"),
    ]


def test_a_launcher_cancels_only_their_own_scale_test() -> None:
    run_id = usecases.launch_scale({"runs": 2, "max_messages": 4}, require_worker=False, actor=OTHER)
    with pytest.raises(AccessRefused, match=r"Cancelling a scale test launched by omar@example.com needs the admin"):
        usecases.cancel_run(run_id, actor=LAUNCHER)
    assert usecases.cancel_run(run_id, actor=OTHER) == "cancelling"


def test_profiles_rejudges_and_the_sql_box_are_for_admins() -> None:
    profile = {"name": "support", "model": "sim/agent", "system_prompt": "Be helpful."}
    with pytest.raises(AccessRefused, match="Saving an agent profile needs the admin role"):
        usecases.save_agent(profile, actor=LAUNCHER)
    assert usecases.save_agent(profile, actor=ADMIN) == "support"
    assert scalar("SELECT saved_by FROM agents WHERE name = 'support'") == "ana@example.com"
    with pytest.raises(AccessRefused, match="Re-judging a scale test needs the admin role"):
        usecases.request_rejudge({"run_id": "0" * 16, "judge_model": "sim/judge"}, actor=LAUNCHER)
    with pytest.raises(AccessRefused, match=r"The SQL box needs the admin role; lena@example.com is a launcher"):
        usecases.run_sql("SELECT count(*) AS n FROM battles", actor=LAUNCHER)
    frame = usecases.run_sql("SELECT count(*) AS n FROM battles", actor=ADMIN)
    assert int(frame["n"][0]) == 0
    queries = rows("SELECT actor, outcome, detail FROM audit WHERE action = 'sql_query' ORDER BY occurred_at")
    assert queries == [
        ("lena@example.com", "refused: needs admin", "SELECT count(*) AS n FROM battles"),
        ("ana@example.com", "ok", "SELECT count(*) AS n FROM battles"),
    ]
    with pytest.raises(AccessRefused, match="Reading the audit trail needs the admin role"):
        usecases.audit_trail(actor=LAUNCHER)
    assert usecases.audit_trail(actor=ADMIN)[0]["action"] == "sql_query"  # newest first


def test_a_label_is_the_signed_in_persons_whatever_name_was_sent() -> None:
    battle_id = new_battle(max_messages=2)
    usecases.run_inline(battle_id)
    usecases.save_label({"battle_id": battle_id, "labeller": "Mallory", "label": "achieved"}, actor=LAUNCHER)
    assert rows("SELECT labeller, label FROM judge_labels") == [("lena@example.com", "achieved")]
    with pytest.raises(AccessRefused, match="Labelling a battle needs the launcher role"):
        usecases.save_label({"battle_id": battle_id, "label": "achieved"}, actor=VIEWER)
    assert scalar("SELECT target FROM audit WHERE action = 'save_label' AND outcome = 'ok'") == battle_id


def test_a_signed_in_person_without_a_role_is_refused_everything() -> None:
    nobody = Actor("stranger@elsewhere.org", None)
    with pytest.raises(AccessRefused, match=r"stranger@elsewhere.org has no role here"):
        usecases.launch_battle(BATTLE, require_worker=False, actor=nobody)


def test_the_shell_acts_as_cli_user_an_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    battle_id = new_battle()  # no actor given: the process's default
    assert scalar("SELECT launched_by FROM battles") == f"cli:{getpass.getuser()}"
    assert access.default_actor().role == "admin"
    access.set_default_actor(Actor(access.ANONYMOUS, None))  # what the app sets once sign-in is on
    try:
        with pytest.raises(AccessRefused):
            usecases.cancel_battle(battle_id)
    finally:
        access.set_default_actor(None)
