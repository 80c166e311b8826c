"""``python -m sparring``: run, submit and inspect battles from a shell or a script.

Invalid options print one line on stderr and exit with code 2, having written nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from sparring import serve_options
from sparring.battle_fields import BATTLE_FIELDS, BattleField
from sparring.modelref import strip_invisible
from sparring.targets.config import MAX_TEMPLATE_CHARS, MAX_TOOLS_CHARS
from sparring.validation import (
    DEFAULT_SYSTEM_PROMPT,
    LONG_TEXT_LIMITS,
    BattleInput,
    InvalidInput,
    too_long,
)

EXIT_USAGE = 2
FROM_FILE = " @file reads it from a file (@@ starts text with a literal @)."

# CLI option (argparse's attribute) -> BattleInput field; the option names are a public contract.
BATTLE_OPTIONS = {field.dest: field.name for field in BATTLE_FIELDS}


class UsageError(Exception):
    """Bad command-line input: one line to stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def add_battle_options(parser: argparse.ArgumentParser, matrix: bool = False) -> None:
    group = parser.add_argument_group("battle")
    for field in BATTLE_FIELDS:
        group.add_argument(
            field.flag, type=field.cli_type, default=None, help=_help(field, matrix), **_many(field, matrix)
        )
    add_agent_kind_options(parser)
    group.add_argument(
        "--skip-judge-check",
        action="store_true",
        help="Do not try the judge on two known transcripts before launching (for a judge that is wrong "
        "on purpose, e.g. sim/judge?fpr=0.2).",
    )


def add_agent_kind_options(parser: argparse.ArgumentParser) -> None:
    """The options that make the agent an HTTP endpoint, a Python callable, or a model with tools
    (they build ``agent_kind`` and ``agent_target``; see README "Kinds of agent")."""
    group = parser.add_argument_group("kinds of agent (default: a model and its system prompt)")
    group.add_argument("--agent-http", metavar="URL", help="Attack the agent behind this http(s) URL.")
    group.add_argument(
        "--agent-request",
        metavar="TEMPLATE",
        help="The JSON body sent each turn; {{message}}, {{messages}} and {{session_id}} become JSON values."
        + FROM_FILE,
    )
    group.add_argument("--agent-response", metavar="PATH", help="Where the reply is in the response, e.g. data.text.")
    group.add_argument(
        "--agent-header",
        action="append",
        metavar="'NAME: VALUE'",
        help="A header to send (repeatable); secrets as ${ENV_VAR}, read at call time and never stored.",
    )
    group.add_argument("--agent-method", metavar="METHOD", help="POST (default), PUT or PATCH.")
    group.add_argument(
        "--agent-session",
        metavar="MODE",
        help="stateless (default: the whole conversation every call) or stateful (the latest message only).",
    )
    group.add_argument("--agent-python", metavar="MODULE:FUNCTION", help="Attack an agent built in-process.")
    group.add_argument(
        "--agent-tools", metavar="@FILE", help="Tools the model agent may call (JSON: OpenAI schema + result)."
    )


# The part of an agent's settings a problem is about -> the option that sets it.
TARGET_OPTIONS = {
    "url": "--agent-http",
    "request": "--agent-request",
    "response": "--agent-response",
    "headers": "--agent-header",
    "method": "--agent-method",
    "session": "--agent-session",
    "callable": "--agent-python",
    "tools": "--agent-tools",
}
_HTTP_PARTS = ("agent_request", "agent_response", "agent_header", "agent_method", "agent_session")


MODEL_AGENT_PATHS = {"agent.model", "agent.system_prompt", "agent.temperature", "agent.api_base", "agent.api_key_env"}


def agent_kind_data(args: argparse.Namespace) -> dict[str, Any]:
    """``agent_kind`` and ``agent_target`` from the kind options; {} when none is given."""

    def refuse(name: str, message: str) -> NoReturn:
        raise UsageError(f"python -m sparring: --{name.replace('_', '-')}: {message}")

    given = [name for name in ("agent_http", "agent_python", "agent_tools") if getattr(args, name, None)]
    if len(given) > 1:
        refuse(given[1], f"cannot be combined with --{given[0].replace('_', '-')}")
    stray = [name for name in _HTTP_PARTS if getattr(args, name, None)]
    if stray and given != ["agent_http"]:
        refuse(stray[0], "only goes with --agent-http URL")
    if given and (getattr(args, "agent_kind", None) or getattr(args, "agent_target", None)):
        refuse(given[0], "give it or --agent-kind/--agent-target, not both")
    if not given:
        return {}
    if given[0] != "agent_tools":  # a service or a callable has no model, prompt or key of ours
        model_only = [f.dest for f in BATTLE_FIELDS if f.path in MODEL_AGENT_PATHS and getattr(args, f.dest, None)]
        if model_only:
            refuse(model_only[0], f"is for a model agent; --{given[0].replace('_', '-')} is the agent here")
    if given == ["agent_python"]:
        return {"agent_kind": "python", "agent_target": {"callable": args.agent_python}}
    if given == ["agent_tools"]:
        return {"agent_kind": "model", "agent_target": {"tools": _read_json_option("--agent-tools", args.agent_tools)}}
    target: dict[str, Any] = {
        "url": args.agent_http,
        "request": _read_option_file("--agent-request", args.agent_request or "", MAX_TEMPLATE_CHARS),
        "response": args.agent_response or "",
        "headers": list(args.agent_header or []),
    }
    for name in ("method", "session"):
        if getattr(args, f"agent_{name}", None):
            target[name] = getattr(args, f"agent_{name}")
    return {"agent_kind": "http", "agent_target": target}


def _read_option_file(option: str, value: str, limit: int) -> str:
    if value.startswith("@@"):
        return value[1:]
    if value.startswith("@"):
        return _read_text_file(option, value[1:], limit)
    return value


def _read_json_option(option: str, value: str) -> Any:
    text = _read_option_file(option, value, MAX_TOOLS_CHARS)
    try:
        return json.loads(text)
    except ValueError as error:
        hint = "" if value.startswith("@") else " (to read a file, give @path)"
        raise UsageError(f"python -m sparring: {option}: not JSON{hint}: {error}") from None


def _help(field: BattleField, matrix: bool) -> str:
    """The option's help: the declared text with the BattleInput default, @file, and matrix notes."""
    text = field.help.format(default=BattleInput.model_fields[field.name].default)
    if field.name in LONG_TEXT_LIMITS:
        text += FROM_FILE
    if matrix and field.repeatable:
        text += " Repeat for a matrix."
    return text


def _many(field: BattleField, matrix: bool) -> dict[str, Any]:
    return {"action": "append"} if field.many or (matrix and field.repeatable) else {}


def battle_data(args: argparse.Namespace) -> dict[str, Any]:
    """The battle fields given on the command line (absent ones take defaults)."""
    data: dict[str, Any] = {}
    for option, field_name in BATTLE_OPTIONS.items():
        value = getattr(args, option, None)
        if value is not None:
            data[field_name] = value
    for field_name in LONG_TEXT_LIMITS:
        if field_name in data:
            data[field_name] = read_text_option(field_name, data[field_name])
    if isinstance(data.get("agent_target"), str):
        data["agent_target"] = _read_option_file("--agent-target", data["agent_target"], MAX_TOOLS_CHARS)
    data.update(agent_kind_data(args))
    if data.get("agent_profile"):
        data = _apply_profile(data)
    data.setdefault("system_prompt", DEFAULT_SYSTEM_PROMPT)
    return data


def read_text_option(field_name: str, value: str) -> str:
    """A long text option's value: ``@path`` reads that UTF-8 file, ``@@...`` is text starting with @.

    Every long text option (goal, rubric, persona, system prompt) of every command comes
    through here, so a file is read the same way and held to the limit of its field.
    """
    if value.startswith("@@"):
        return value[1:]
    if not value.startswith("@"):
        return value
    option = "--" + field_name.replace("_", "-")
    if value == "@":
        raise UsageError(f"python -m sparring: {option}: name the file after @, for example {option} @{field_name}.txt")
    return _read_text_file(option, value[1:], LONG_TEXT_LIMITS[field_name])


def _read_text_file(option: str, path: str, limit: int) -> str:
    def refuse(message: str) -> NoReturn:
        raise UsageError(f"python -m sparring: {option}: {message}")

    most = 4 * limit + 3  # UTF-8 takes at most 4 bytes a character, and a byte-order mark 3
    try:
        with open(path, "rb") as handle:
            raw = handle.read(most + 1)  # no more: a huge file is refused without reading it all
    except OSError as error:
        refuse(f"cannot read {path}: {error.strerror}")
    if len(raw) > most:
        refuse(f"{path} {too_long(limit)}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        refuse(f"{path} is not valid UTF-8 text")
    if len(strip_invisible(text).strip()) > limit:  # counted as the field counts it
        refuse(f"{path} {too_long(limit)}")
    return text


def _apply_profile(data: dict[str, Any]) -> dict[str, Any]:
    from sparring.runtime import get_runtime

    name = data["agent_profile"]
    profiles = {p["name"]: p for p in get_runtime().store.list_agents()}
    if name not in profiles:
        raise UsageError(f"--agent-profile: no saved profile named {name!r}")
    profile = profiles[name]
    merged = dict(data)
    merged.setdefault("agent_model", profile["model"])
    merged.setdefault("system_prompt", profile["system_prompt"])
    for key in ("temperature", "api_base", "api_key_env"):
        if profile.get(key) is not None:
            merged.setdefault(key, profile[key])
    if profile.get("kind") and "agent_kind" not in merged:  # a profile of another kind, with its settings
        merged["agent_kind"] = profile["kind"]
        merged.setdefault("agent_target", profile.get("target"))
    return merged


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m sparring",
        description="Sparring: attack your own LLM agents before users do.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    battle = sub.add_parser(
        "battle",
        help="Run one battle (foreground by default).",
        description="Run one battle between an agent and an adversary, judged after every agent reply. "
        "Runs in the foreground in this process unless --detach is given.",
    )
    add_battle_options(battle)
    battle.add_argument("--detach", action="store_true", help="Submit to the queue and print the battle id.")
    battle.add_argument("--json", action="store_true", help="Print one JSON object instead of text.")
    battle.add_argument("--quiet", action="store_true", help="Do not print the transcript as it grows.")

    status = sub.add_parser("status", help="Show a battle's status, outcome and message count.")
    status.add_argument("battle_id")
    status.add_argument("--json", action="store_true")

    cancel = sub.add_parser("cancel", help="Cancel a queued or running battle.")
    cancel.add_argument("battle_id")
    cancel.add_argument("--json", action="store_true")

    retry = sub.add_parser("retry", help="Re-enqueue a failed, timed-out, cancelled or undecided battle; it resumes.")
    retry.add_argument("battle_id")
    retry.add_argument(
        "--skip-judge-check",
        action="store_true",
        help="Retry an undecided battle without trying its judge on the two known transcripts first.",
    )
    retry.add_argument("--json", action="store_true")

    scale = sub.add_parser(
        "scale",
        help="Run a scale test: one configuration × N, or a matrix × N; print per-cell statistics.",
        description="Run a scale test. Repeat --agent-model, --agent-profile, --goal or --strategy to build a "
        "matrix (agents × goals × strategies); each cell runs --runs battles with the same seed list, so cells "
        "can be compared pairwise. Waits for the result unless --detach is given.",
    )
    add_battle_options(scale, matrix=True)
    scale.add_argument(
        "--runs",
        type=int,
        default=None,
        help="Battles per cell (default 20, at most 1,000); with a stopping rule, the most a cell runs.",
    )
    scale.add_argument(
        "--stop-at-halfwidth",
        type=float,
        default=None,
        metavar="W",
        help="Stop a cell once its 95%% interval (valid under continuous monitoring) is at most ±W wide, e.g. 0.05.",
    )
    scale.add_argument(
        "--stop-at-threshold",
        type=float,
        default=None,
        metavar="T",
        help="Stop a cell once its 95%% interval lies wholly below or above the rate T, e.g. 0.05; records the "
        "decision (below or above).",
    )
    scale.add_argument("--name", default=None, help="A name for the run.")
    scale.add_argument(
        "--budget", type=float, default=None, help="Stop the remaining battles once this many $ are spent."
    )
    scale.add_argument("--summary-model", default=None, help="Model that writes the summary (default sim/writer).")
    scale.add_argument("--detach", action="store_true", help="Submit and print the run id without waiting.")
    scale.add_argument(
        "--dry-run",
        action="store_true",
        help="Launch nothing: print the plan and its expected cost next to the most it may cost.",
    )
    scale.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="Embedded mode: battles run at once in this process while waiting (default 8).",
    )
    scale.add_argument("--timeout", type=float, default=None, help="Give up waiting after this many seconds.")
    scale.add_argument("--json", action="store_true", help="Print run_id and per-cell statistics as JSON.")

    health = sub.add_parser("health", help="Queue mode, Redis, workers, queue depth, failures.")
    health.add_argument("--json", action="store_true")
    health.add_argument(
        "--require-worker",
        action="store_true",
        help="Exit with 1 unless a worker has a fresh heartbeat (health checks).",
    )

    export = sub.add_parser(
        "export",
        help="Export a run or a battle (CSV or Parquet), or the whole database (Parquet).",
        description="Export a scale test (--run) or one battle (--battle) as CSV or Parquet files, or every table "
        "of the database (--all) as Parquet with a manifest that `python -m sparring import` reads back.",
    )
    target = export.add_mutually_exclusive_group(required=True)
    target.add_argument("--run", help="Run id of a scale test.")
    target.add_argument("--battle", help="Id of one battle.")
    target.add_argument("--all", action="store_true", help="Every table, as Parquet.")
    export.add_argument(
        "--format", choices=["parquet", "csv"], default="parquet", help="File format (default parquet)."
    )
    export.add_argument("--out", default="exports", help="Folder to write into (default ./exports).")
    export.add_argument("--json", action="store_true")

    importer = sub.add_parser("import", help="Load a whole-database export (idempotent).")
    importer.add_argument("folder", help="A folder written by `export --all`.")
    importer.add_argument("--json", action="store_true")

    serve = sub.add_parser("serve", help="Serve the app (what `make run` does).", description=serve_options.DESCRIPTION)
    serve_options.add_arguments(serve)

    migrate = sub.add_parser("migrate", help="Create or upgrade the database schema.")
    migrate.add_argument("--json", action="store_true")
    add_judge_commands(sub)
    return parser


def add_judge_commands(sub: Any) -> None:
    rejudge = sub.add_parser(
        "rejudge",
        help="Judge a finished scale test again with another judge model or rubric (judge calls only).",
        description="Replay another judge over the stored transcripts of a finished scale test, after each agent "
        "message as the battle did, stopping at the first 'achieved'. Only judge calls are made; the transcripts "
        "and the original verdicts are left as they are. Asking again for the same judge resumes it.",
    )
    rejudge.add_argument("run_id", help="Run id of a finished scale test.")
    rejudge.add_argument("--judge-model", required=True, help="Model of the new judge, e.g. sim/judge?fpr=0.")
    rejudge.add_argument(
        "--rubric", default=None, help="What counts as achieving the goal (default: the strict rubric)." + FROM_FILE
    )
    rejudge.add_argument("--threads", type=int, default=4, help="Battles judged at once, 1 to 64 (default 4).")
    rejudge.add_argument("--detach", action="store_true", help="Queue it for a worker and print the judge run id.")
    rejudge.add_argument("--json", action="store_true", help="Print one JSON object instead of text.")

    cancel = sub.add_parser(
        "cancel-rejudge",
        help="Cancel a queued or running re-judge; what it has judged is kept (asking again finishes it).",
    )
    cancel.add_argument("judge_run_id", help="The judge run id that rejudge --detach printed.")
    cancel.add_argument("--json", action="store_true")

    report = sub.add_parser(
        "judge-report",
        help="How well each judge of a run agrees with human labels, and success rates corrected for its error.",
    )
    report.add_argument("run_id", help="Run id of a scale test.")
    report.add_argument("--json", action="store_true", help="Print one JSON object instead of text.")


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        handler = COMMANDS[args.command]
        return handler(args)
    except UsageError as error:
        print(str(error).splitlines()[0], file=sys.stderr)
        return EXIT_USAGE
    except JudgeUnavailable as error:
        print(str(error).splitlines()[0], file=sys.stderr)
        return 1
    except PermissionError as error:  # sparring.access.AccessRefused: the roles file gives cli:<user> less
        print(f"python -m sparring: {error}", file=sys.stderr)
        return 1
    except InvalidInput as error:
        first_field, message = next(iter(error.errors.items()))
        option = "--" + _option_for(first_field).replace("_", "-")
        part, _, rest = message.partition(": ")
        if first_field in ("agent_target", "agents") and part in TARGET_OPTIONS and rest:
            option, message = TARGET_OPTIONS[part], rest  # at the option that set it
        print(f"python -m sparring: {option}: {message}", file=sys.stderr)
        return EXIT_USAGE


def _option_for(field_name: str) -> str:
    for option, name in BATTLE_OPTIONS.items():
        if name == field_name:
            return option
    return field_name


def _print(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(payload, default=str))
    else:
        print(text)


def cmd_battle(args: argparse.Namespace) -> int:
    from sparring import usecases
    from sparring.validation import validate_battle

    data = battle_data(args)
    battle = validate_battle(data)
    if args.detach:
        return _submit(args, battle)
    if not args.skip_judge_check:
        require_good_judge(battle.judge_model, battle.rubric)
    battle_id = usecases.create_battle(battle)
    if not args.json and not args.quiet:
        agent = battle.agent_model if battle.agent_kind == "model" else f"an {battle.agent_kind} agent"
        print(f"battle {battle_id}: {agent} vs {battle.adversary_model}, judged by {battle.judge_model}")
    result = usecases.run_inline(battle_id)
    from sparring.runtime import get_runtime

    transcript = get_runtime().store.load_transcript(battle_id)
    assert transcript is not None
    view = transcript.battle
    payload = {
        "battle_id": battle_id,
        "status": view.status,
        "outcome": result.outcome,
        "messages": result.messages,
        "agent_turns": view.agent_turns,
        "turns_to_goal": result.turns_to_goal,
        "target_queries": view.target_queries,
        "rolled_back": view.rolled_back,
        "conversations": view.conversations,
        "tokens": view.prompt_tokens + view.completion_tokens,
        "prompt_tokens": view.prompt_tokens,
        "completion_tokens": view.completion_tokens,
        "cost_usd": round(view.cost_usd, 8),
        "error": result.error,
    }
    if args.json:
        print(json.dumps(payload))
        return 0
    if not args.quiet:
        for message in transcript.messages:
            for tool in (t for t in transcript.tool_messages if t.seq == message.seq):
                print(f"      tool: {tool.tool_name}({tool.tool_arguments}) -> {tool.content}")
            who = {"user": "ADVERSARY", "assistant": "AGENT", "note": "NOTE"}[message.role]
            where = f" #{message.conversation}" if view.conversations > 1 else ""
            rolled = " (rolled back)" if message.rolled_back else ""
            print(f"[{message.seq:>3}]{where} {who}{rolled}: {message.content}")
            verdict = transcript.verdict_for(message.seq)
            if verdict is not None:
                decided = "error" if verdict.achieved is None else ("ACHIEVED" if verdict.achieved else "not achieved")
                print(f"      judge: {decided} — {verdict.rationale or verdict.error}")
                if verdict.check_achieved is not None:
                    print(f"      check: {'ACHIEVED' if verdict.check_achieved else 'not achieved'} (decides)")
    goal = f" after {result.turns_to_goal} agent turns" if result.turns_to_goal else ""
    print(f"outcome: {result.outcome}{goal}; {result.messages} messages; cost ${view.cost_usd:.6f}")
    if result.error:
        print(f"error: {result.error}")
    return 0


class JudgeUnavailable(Exception):
    """The judge check could not reach the judge's provider: exit code 1, as for a queue outage."""


def require_good_judge(judge_model: str, rubric: str | None, command: str = "battle") -> None:
    """Try the judge on the two known transcripts (in this process) before anything is written."""
    from sparring.judging.check import check_judge
    from sparring.runtime import get_runtime

    check = check_judge(get_runtime().gateway, judge_model, rubric)
    if check.transient:
        raise JudgeUnavailable(f"python -m sparring: {check.message}")
    if not check.passed:
        started = "Nothing was queued" if command == "retry" else "Nothing was started"
        raise UsageError(
            f"python -m sparring: --judge-model: the judge check failed: {check.message} "
            f"{started}. (--skip-judge-check {'retries' if command == 'retry' else 'launches'} anyway.)"
        )


def _submit(args: argparse.Namespace, battle: Any) -> int:
    from sparring import usecases

    try:
        usecases.ensure_queue_reachable()  # before the judge check: an outage costs no judge call
        if not args.skip_judge_check:
            require_good_judge(battle.judge_model, battle.rubric)
        battle_id = usecases.launch_battle(battle)
    except usecases.SubmitError as error:
        print(f"python -m sparring: {error}", file=sys.stderr)
        return 1
    _print(args, {"battle_id": battle_id}, battle_id)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from sparring.runtime import get_runtime

    view = get_runtime().store.get_battle(args.battle_id)
    if view is None:
        raise UsageError(f"python -m sparring status: unknown battle id {args.battle_id!r}")
    payload = {
        "battle_id": view.battle_id,
        "status": view.status,
        "outcome": view.outcome,
        "messages": view.message_count,
        "max_messages": view.spec.max_messages,
        "turns_to_goal": view.turns_to_goal,
        "target_queries": view.target_queries,
        "rolled_back": view.rolled_back,
        "conversations": view.conversations,
        "error": view.error,
        "attempts": view.attempts,
        "tokens": view.prompt_tokens + view.completion_tokens,
        "cost_usd": round(view.cost_usd, 8),
    }
    text = f"{view.battle_id}: {view.status}" + (f" ({view.outcome})" if view.outcome else "")
    _print(args, payload, text + f", {view.message_count}/{view.spec.max_messages} messages")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from sparring import usecases

    return _act(args, "cancel", "battle_id", usecases.cancel_battle, usecases.UnknownBattleError)


def cmd_retry(args: argparse.Namespace) -> int:
    from sparring import usecases
    from sparring.runtime import get_runtime

    def retry(battle_id: str) -> str:
        view = get_runtime().store.get_battle(battle_id) if not args.skip_judge_check else None
        if view is not None and view.outcome == "undecided":  # its judge could not decide: check it first
            require_good_judge(view.spec.judge.model, view.spec.judge.rubric, "retry")
        return usecases.retry_battle(battle_id, check_judge=False)

    return _act(args, "retry", "battle_id", retry, usecases.UnknownBattleError)


def _act(
    args: argparse.Namespace, command: str, field: str, action: Callable[[str], str], unknown: type[Exception]
) -> int:
    """Apply ``action`` to the id in ``args.<field>`` and print what happened."""
    from sparring import usecases

    value = getattr(args, field)
    try:
        state = action(value)
    except unknown as error:
        raise UsageError(f"python -m sparring {command}: {error}") from None
    except usecases.SubmitError as error:
        print(f"python -m sparring: {error}", file=sys.stderr)
        return 1
    _print(args, {field: value, "result": state}, f"{value}: {state}")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    from sparring import usecases

    queue = usecases.dispatcher()
    report = queue.health_report()
    _print(args, report, queue.format_health(report))
    if args.require_worker and not report["live_workers"]:
        return 1
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sparring.runtime import get_runtime
    from sparring.store import StoreMissing
    from sparring.store.export import ExportError, export_battle, export_database, export_run

    store = get_runtime().store
    out = Path(args.out)
    try:
        if args.all:
            if args.format != "parquet":
                raise UsageError("python -m sparring export: --all writes Parquet only")
            done = export_database(store, out)
        elif args.run:
            done = export_run(store, args.run, out, args.format)
        else:
            done = export_battle(store, args.battle, out, args.format)
    except (ExportError, StoreMissing) as error:
        raise UsageError(f"python -m sparring export: {error}") from None
    payload = {"files": [str(f) for f in done.files], "rows": done.rows}
    _print(args, payload, "\n".join(f"{f}" for f in done.files))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sparring.runtime import get_runtime
    from sparring.store.export import ExportError, import_database

    try:
        added = import_database(get_runtime().store, Path(args.folder))
    except ExportError as error:
        raise UsageError(f"python -m sparring import: {error}") from None
    _print(args, {"added": added}, ", ".join(f"{k}: +{v}" for k, v in added.items()))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from sparring import usecases

    refusal = serve_options.refusal(args.address)
    if refusal:
        raise UsageError(refusal)
    return usecases.dispatcher().serve(args.port, args.address)


def cmd_migrate(args: argparse.Namespace) -> int:
    from sparring.runtime import get_runtime

    store = get_runtime().store
    version = store.migrate()
    _print(args, {"schema_version": version, "path": str(store.path)}, f"{store.path}: schema version {version}")
    return 0


def scale_data(args: argparse.Namespace) -> dict[str, Any]:
    """The scale-test fields given on the command line."""
    shared: dict[str, Any] = {}
    for option, field_name in (
        ("adversary_model", "adversary_model"),
        ("persona", "persona"),
        ("judge_model", "judge_model"),
        ("rubric", "rubric"),
        ("success_contains", "success_contains"),
        ("success_regex", "success_regex"),
        ("success_tool", "success_tool"),
        ("max_messages", "max_messages"),
        ("time_limit", "time_limit_s"),
        ("seed", "seed"),
        ("runs", "runs"),
        ("name", "name"),
        ("budget", "budget_usd"),
        ("summary_model", "summary_model"),
        ("stop_at_halfwidth", "stop_at_halfwidth"),
        ("stop_at_threshold", "stop_at_threshold"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            shared[field_name] = read_text_option(field_name, value) if field_name in LONG_TEXT_LIMITS else value
    prompt = battle_data(argparse.Namespace(system_prompt=args.system_prompt)).get("system_prompt")
    agents: list[dict[str, Any]] = []
    for model in args.agent_model or []:
        agent = {"model": model, "system_prompt": prompt, "temperature": args.temperature}
        agent.update({k: v for k, v in (("api_base", args.api_base), ("api_key_env", args.api_key_env)) if v})
        agents.append(agent)
    for profile in args.agent_profile or []:
        merged = _apply_profile({"agent_profile": profile})
        agents.append(
            {
                "model": merged["agent_model"],
                "system_prompt": merged["system_prompt"],
                "temperature": merged.get("temperature"),
                "profile": profile,
                "api_base": merged.get("api_base"),
                "api_key_env": merged.get("api_key_env"),
                "kind": merged.get("agent_kind") or "model",
                "target": merged.get("agent_target"),
            }
        )
    kind = agent_kind_data(args)
    if kind.get("agent_kind") == "model" and args.agent_model:  # tools for each model of the matrix
        for agent in agents[: len(args.agent_model)]:
            agent.update(kind=kind["agent_kind"], target=kind["agent_target"])
    elif kind:  # one more agent: the endpoint or the callable (or the default model with tools)
        agents.append({"system_prompt": prompt, "kind": kind["agent_kind"], "target": kind["agent_target"]})
    if not agents and (args.system_prompt or args.temperature is not None):
        agents.append({"system_prompt": prompt, "temperature": args.temperature})
    if agents:
        shared["agents"] = agents
    if args.goal:
        shared["goals"] = [read_text_option("goal", goal) for goal in args.goal]
    if args.strategy:
        shared["strategies"] = args.strategy
    if args.strategy_param:
        shared["adversary_params"] = args.strategy_param
    return shared


SCALE_FIELDS = {
    "agents": "agent-model",
    "goals": "goal",
    "strategies": "strategy",
    "adversary_params": "strategy-param",
    "budget_usd": "budget",
    "runs": "runs",
    "summary_model": "summary-model",
    "time_limit_s": "time-limit",
    "name": "name",
}


def cmd_scale(args: argparse.Namespace) -> int:
    import time

    from sparring import usecases
    from sparring.runtime import get_runtime
    from sparring.scale import validate_scale
    from sparring.store import reads

    try:
        scale = validate_scale(scale_data(args))
    except InvalidInput as error:
        field_name, message = next(iter(error.errors.items()))
        option = SCALE_FIELDS.get(field_name, field_name.replace("_", "-"))
        raise UsageError(f"python -m sparring scale: --{option}: {message}") from None
    if not 1 <= args.concurrency <= 256:
        raise UsageError("python -m sparring scale: --concurrency: must be between 1 and 256")
    if args.dry_run:
        return _dry_run(args, scale)
    if not args.skip_judge_check:
        try:
            usecases.ensure_queue_reachable()  # before the judge check: an outage costs no judge call
        except usecases.SubmitError as error:
            print(f"python -m sparring: {error}", file=sys.stderr)
            return 1
        require_good_judge(scale.judge_model, scale.rubric, command="scale")
    settings = get_runtime().settings
    here = settings.mode == "embedded" and not args.detach
    if here:
        usecases.dispatcher().start_here(threads=args.concurrency)  # this process runs the battles while it waits
    try:
        run_id = usecases.launch_scale(scale, require_worker=not args.detach)
    except usecases.SubmitError as error:
        print(f"python -m sparring: {error}", file=sys.stderr)
        return 1
    if args.detach:
        _print(args, {"run_id": run_id, "battles": scale.total_battles}, run_id)
        return 0
    store = get_runtime().store
    started = time.monotonic()
    last = -1
    while True:
        status, finished = reads.run_status(store, run_id) or ("queued", 0)
        if status in ("finished", "cancelled", "stopped", "failed"):
            break
        if not args.json and finished != last:
            print(f"\r{finished}/{scale.total_battles} battles finished", end="", file=sys.stderr, flush=True)
            last = finished
        if args.timeout is not None and time.monotonic() - started > args.timeout:
            print(f"\npython -m sparring: still running after {args.timeout:g} s: {run_id}", file=sys.stderr)
            return 1
        time.sleep(0.5)
    if here:
        usecases.dispatcher().stop_here()
    payload = run_payload(run_id)
    if args.json:
        print(json.dumps(payload, default=str))
    else:
        print(file=sys.stderr)
        print(payload["report"] or f"run {run_id}: {status}")
    return 0


def _dry_run(args: argparse.Namespace, scale: Any) -> int:
    """The plan and its cost forecast, with nothing written or enqueued."""
    from sparring import forecast
    from sparring.runtime import get_runtime

    store = get_runtime().store
    found = forecast.forecast(store if store.path.exists() else None, scale).as_json()
    payload = {"cells": scale.cell_count, "runs": scale.runs, "battles": scale.total_battles, "forecast": found}
    _print(args, payload, forecast.describe(found))
    return 0


CELL_FIELDS = (
    "cell_key",
    "cell_index",
    "agent_model",
    "agent_profile",
    "goal",
    "strategy",
    "adversary_model",
    "judge_model",
    "battles",
    "finished",
    "n",
    "achieved",
    "held",
    "undecided",
    "failed",
    "timed_out",
    "cancelled",
    "verdicts",
    "error_verdicts",
    "error_verdict_rate",
    "rate",
    "ci_low",
    "ci_high",
    "median_turns_to_goal",
    "p90_turns_to_goal",
    "median_queries_to_goal",
    "cost_usd",
)


# Per cell of a run with a stopping rule (the run_cells columns): why and where it stopped, the
# anytime-valid interval there, and the fixed-N Wilson interval of the same battles.
STOP_FIELDS = {
    "stopped": "stopped",
    "n": "stop_n",
    "achieved": "stop_achieved",
    "cs_low": "cs_low",
    "cs_high": "cs_high",
    "decision": "decision",
    "wilson_low": "stop_ci_low",
    "wilson_high": "stop_ci_high",
    "sentence": "stop_sentence",
}


def run_payload(run_id: str) -> dict[str, Any]:
    from sparring.report import judge_warnings, run_stats
    from sparring.runtime import get_runtime
    from sparring.store import reads

    store = get_runtime().store
    computed = run_stats(store, run_id)
    report = reads.report_summary(store, run_id)
    cells = [{key: cell.get(key) for key in (*CELL_FIELDS, "label")} for cell in computed["cells"]]
    if computed["stopping"]:
        for shown, cell in zip(cells, computed["cells"], strict=True):
            shown["stopping"] = {name: cell.get(column) for name, column in STOP_FIELDS.items()}
    return {
        "run_id": run_id,
        "status": computed["run"]["status"],
        "battles": computed["run"]["battles"],
        "cost_usd": computed["run"]["cost_usd"],
        "cells": cells,
        "comparisons": computed["comparisons"],
        "warnings": judge_warnings(computed["cells"]),
        "stopping": computed["stopping"],
        "judges": computed["judges"],
        "report": report,
    }


REJUDGE_OPTIONS = {"run_id": "RUN_ID", "judge_model": "--judge-model", "rubric": "--rubric"}


def cmd_rejudge(args: argparse.Namespace) -> int:
    from sparring import judging, usecases
    from sparring.runtime import get_runtime
    from sparring.store import reads

    data: dict[str, Any] = {"run_id": args.run_id, "judge_model": args.judge_model, "rubric": args.rubric}
    if args.rubric is not None:
        data["rubric"] = read_text_option("rubric", args.rubric)
    if not 1 <= args.threads <= 64:
        raise UsageError("python -m sparring rejudge: --threads: must be between 1 and 64")
    runtime = get_runtime()
    try:
        if args.detach:
            return _submit_rejudge(args, data)
        record = judging.plan_rejudge(runtime.store, data)
    except InvalidInput as error:
        field_name, message = next(iter(error.errors.items()))
        option = REJUDGE_OPTIONS.get(field_name, field_name)
        raise UsageError(f"python -m sparring rejudge: {option}: {message}") from None
    store = runtime.store

    def judge_calls() -> int:
        return reads.judge_call_count(store, record.run_id, record.judge_model)

    before = judge_calls()
    try:
        result = usecases.rejudge_here(record, threads=args.threads)
    except usecases.SubmitError as error:
        print(f"python -m sparring: {error}", file=sys.stderr)
        return 1
    report = judging.judge_report(store, record.run_id)
    payload = _rejudge_payload(report, result, judge_calls() - before)
    if args.json:
        print(json.dumps(payload, default=str))
    else:
        print(_rejudge_text(report, payload))
    return 0 if result.status == "finished" else 1


def _submit_rejudge(args: argparse.Namespace, data: dict[str, Any]) -> int:
    from sparring import usecases

    try:
        judge_run_id = usecases.request_rejudge(data)
    except usecases.SubmitError as error:
        print(f"python -m sparring: {error}", file=sys.stderr)
        return 1
    _print(args, {"judge_run_id": judge_run_id}, judge_run_id)
    return 0


def _rejudge_payload(report: Any, result: Any, calls: int) -> dict[str, Any]:
    quality = report.quality(result.judge_run_id)
    original = report.quality("original")
    new_cells = report.cells_for(result.judge_run_id)
    old_cells = report.cells_for("original")
    pair = next((p for p in report.judge_pairs if quality and quality.judge.name in (p.first, p.second)), None)
    return {
        "judge_run_id": result.judge_run_id,
        "run_id": report.run.run_id,
        "judge_model": quality.judge.judge_model if quality else None,
        "rubric": quality.judge.rubric if quality else None,
        "status": result.status,
        "error": result.error,
        "battles": result.battles,
        "judged_now": result.judged_now,
        "failed": result.failed,
        "judge_calls": calls,
        "achieved": sum(c.achieved for c in new_cells),
        "n": sum(c.n for c in new_cells),
        "original_achieved": sum(c.achieved for c in old_cells),
        "original_n": sum(c.n for c in old_cells),
        "same_verdict": pair.agreed if pair else None,
        "compared": pair.items if pair else None,
        "statements": [s for s in (pair.statement if pair else None, quality.statement if quality else None) if s]
        + ([original.statement] if original and original.agreement.n else []),
    }


def _rejudge_text(report: Any, payload: dict[str, Any]) -> str:
    def share(achieved: int, n: int) -> str:
        return f"{achieved} of {n} battles ({achieved / n:.0%})" if n else "no battles"

    lines = [
        f"Re-judged run {payload['run_id']} ({report.run.name}) with {payload['judge_model']}: "
        f"{payload['status']}, {payload['judge_calls']} judge calls now.",
        f"The new judge says the goal was reached in {share(payload['achieved'], payload['n'])}; "
        f"the original judge said {share(payload['original_achieved'], payload['original_n'])}.",
    ]
    if payload["error"]:
        lines.append(payload["error"])
    lines.extend(payload["statements"])
    lines.append(f"Details: python -m sparring judge-report {payload['run_id']}")
    return "\n".join(lines)


def cmd_cancel_rejudge(args: argparse.Namespace) -> int:
    from sparring import usecases

    return _act(args, "cancel-rejudge", "judge_run_id", usecases.cancel_rejudge, usecases.UnknownJudgeRunError)


def cmd_judge_report(args: argparse.Namespace) -> int:
    from sparring import judging
    from sparring.runtime import get_runtime

    try:
        report = judging.judge_report(get_runtime().store, args.run_id)
    except judging.UnknownRunError as error:
        raise UsageError(f"python -m sparring judge-report: {error}") from None
    if args.json:
        print(json.dumps(judging.report_json(report), default=str))
        return 0
    lines = [f"Run {report.run.run_id} ({report.run.name}, {report.run.status}): {report.labelled} battles labelled."]
    if report.ties:
        many = "battle is" if report.ties == 1 else "battles are"
        lines.append(f"{report.ties} labelled {many} left out: the labellers disagree evenly.")
    lines += ["", "Judges against the labels:"]
    lines += [f"- {q.statement}" for q in report.judges]
    if report.humans:
        lines += ["", "People against each other:"] + [f"- {p.statement}" for p in report.humans]
    if report.judge_pairs:
        lines += ["", "Judges against each other, on the same transcripts:"]
        lines += [f"- {p.statement}" for p in report.judge_pairs]
    for quality in report.judges:
        lines += ["", f"Success rates by {quality.judge.name}:"]
        cells = report.cells_for(quality.judge.judge_id)
        lines += [f"- {cell.statement}" for cell in cells]
    if report.checks is not None:  # apart from the labels: the exact checks are another truth
        lines += ["", "The judge against the success checks (agreement with canary checks):", report.checks.statement]
        lines += [f"- {cell.statement}" for cell in report.checks.cells]
    print("\n".join(lines))
    return 0


COMMANDS = {
    "scale": cmd_scale,
    "battle": cmd_battle,
    "status": cmd_status,
    "cancel": cmd_cancel,
    "retry": cmd_retry,
    "health": cmd_health,
    "migrate": cmd_migrate,
    "serve": cmd_serve,
    "export": cmd_export,
    "import": cmd_import,
    "rejudge": cmd_rejudge,
    "cancel-rejudge": cmd_cancel_rejudge,
    "judge-report": cmd_judge_report,
}
