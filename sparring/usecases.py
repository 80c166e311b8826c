"""The use cases: launching, cancelling and retrying battles, scale tests and re-judges.

What the app, the CLI and the worker call. The order of operations and every refusal a user
sees are decided here; the job queue is behind ``Dispatcher``, which ``jobs.dispatch``
implements and each entry point wires once with ``wire`` (``streamlit_app.py``,
``python -m sparring``, the worker), so the core never imports the queue.

Order of operations on a launch: check the queue answers, refuse when no worker would take
the job, claim the form's token, commit the row, enqueue. If the queue fails after the row was
committed, the row is discarded and the token released, so a failed launch leaves nothing.

Who may do it: each use case takes the ``actor`` (``sparring.access``) and is wrapped in
``guarded``, which checks the actor's role before anything is done, and records the action,
its target and its outcome (refusals included) in the audit trail. A launcher may cancel and
retry only their own battles and scale tests; an admin anyone's. An actor left out is the
process's default (``access.default_actor``): ``cli:<user>`` in a shell.

A form carries a token minted when it is drawn, and a launch claims it atomically through the
dispatcher (Redis ``SET NX``, or one SQLite transaction), which every process on the queue
shares: a second submit of the same form (a double click, a rerun racing the first, another
app process) gets the first battle back instead of starting another one.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from sparring import access, spend
from sparring import records as r
from sparring.access import AccessRefused, Actor
from sparring.engine import BattleControl, BattleResult, run_battle
from sparring.runtime import get_runtime
from sparring.scale import Plan, ScaleInput, plan_run, run_created, validate_scale
from sparring.store import StoreBusy
from sparring.validation import AgentProfileInput, BattleInput, InvalidInput, field_errors, validate_battle

if TYPE_CHECKING:
    from sparring.judging import RejudgeResult
    from sparring.judging.check import JudgeCheck

log = logging.getLogger(__name__)

__all__ = [
    "AccessRefused",
    "Actor",
    "Dispatcher",
    "InvalidInput",
    "JudgeRefused",
    "NoWorkerError",
    "SubmitError",
    "cancel_battle",
    "cancel_rejudge",
    "cancel_run",
    "launch_battle",
    "launch_scale",
    "request_rejudge",
    "require_good_judge",
    "retry_battle",
    "wire",
]

RETRYABLE = ("failed", "timed_out", "cancelled", "undecided")  # undecided: the judge may answer this time
# Long enough for any double click, retry or slow rerun of one form; a form left open for a
# day and submitted again starts a new battle.
SUBMIT_TOKEN_TTL_S = 24 * 3600
_TOKEN = re.compile(r"^[0-9A-Za-z_-]{8,64}$")
# A later submit of a form waits (at most this long) for the first one's record, so that what
# it returns can be shown at once; the first one is waiting for the database file meanwhile.
FIRST_SUBMIT_WAIT_S = 30.0


class SubmitError(RuntimeError):
    """The queue cannot take the job right now; the message says what to do."""


class SpendLimitReached(SubmitError):
    """The launch could cost more than is left of a daily spend limit; the message has the numbers."""


class NoWorkerError(SubmitError):
    """Queue mode, but no worker has a fresh heartbeat."""


class RejudgeRunningError(SubmitError):
    """The same judge is judging the same run right now."""


class UnknownBattleError(LookupError):
    pass


class UnknownRunError(LookupError):
    pass


class UnknownJudgeRunError(LookupError):
    pass


class JudgeRefused(Exception):
    """The judge failed the check; the message says how (model output quoted, untrusted)."""

    def __init__(self, check: JudgeCheck) -> None:
        super().__init__(check.message)
        self.check = check


class Dispatcher(Protocol):
    """The job queue as the use cases see it (``jobs.dispatch.QueueDispatcher``)."""

    # -- the queue and its workers
    def ensure_reachable(self) -> None:
        """Return when the queue answers; ``SubmitError`` saying where it is otherwise."""

    def live_workers(self) -> list[dict[str, Any]]:
        """The workers with a fresh heartbeat (each a dict; ``sink`` says where it writes)."""

    def heartbeat_ttl_s(self) -> float:
        """How old a heartbeat may be for its worker to count as alive."""

    def worker_command(self) -> str:
        """The command that starts a worker for this queue, to show a person."""

    def claim(self, key: str, value: str, ttl_s: float) -> str:
        """Set ``key`` to ``value`` unless it is set; return the value it holds."""

    def unclaim(self, key: str) -> None:
        """Forget a claimed ``key``."""

    # -- battles
    def enqueue_battle(self, battle_id: str) -> None:
        """Mark the battle active and queue it."""

    def forget_battle(self, battle_id: str) -> None:
        """Drop the battle from the active set (it will not run)."""

    def request_cancel(self, battle_id: str) -> None:
        """Raise the battle's cancel flag: a worker running it stops at its next model call."""

    def clear_cancel(self, battle_id: str) -> None:
        """Lower the battle's cancel flag."""

    def dequeue_battle(self, battle_id: str) -> None:
        """Take a waiting battle's job out of the queue."""

    def reopen_for_retry(self, run_id: str, battle_id: str) -> None:
        """Count a battle of a run as not done again, before it is retried."""

    # -- scale tests
    def enqueue_fan_out(self, run_id: str) -> None:
        """Queue the job that writes and enqueues the run's battles."""

    def run_stopped_because(self, run_id: str) -> str | None:
        """Why the run was stopped, or None while it may go on."""

    def stop_run(self, run_id: str, reason: str) -> None:
        """Stop a run: queued battles end cancelled now, running ones at their next model call."""

    # -- re-judging and the judge check
    def enqueue_rejudge(self, record: r.JudgeRunCreated) -> None:
        """Record the judge run as asked for and queue it (``RejudgeRunningError`` if it runs)."""

    def cancel_rejudge(self, judge_run_id: str, status: str) -> str:
        """Cancel a queued or running re-judge; return what happened."""

    def check_judge(self, judge_model: str, rubric: str | None, *, require_worker: bool) -> JudgeCheck:
        """The judge check (cached, or run by a worker while this waits, bounded)."""

    def stalled_rejudges(self, judge_run_ids: list[str]) -> set[str]:
        """Of these running judge runs, those that no job holds any more (their worker died)."""

    # -- this process as a worker ("run it here instead", the command line)
    def start_here(self, threads: int | None = None) -> None:
        """Start a consumer inside this process (once), which takes jobs from the queue."""

    def stop_here(self) -> None:
        """Stop the consumer started by ``start_here``."""

    def rejudge_here(self, record: r.JudgeRunCreated, threads: int) -> RejudgeResult:
        """Record the judge run and judge it in this thread, under its lease."""

    def rejudge_in_background(self, data: dict[str, Any]) -> str:
        """Record a judge run and judge it in a thread of this process; return its id."""

    # -- the command line's other ways into the queue
    def health_report(self) -> dict[str, Any]:
        """Workers, queue, database and ingester, as JSON-ready data."""

    def format_health(self, report: dict[str, Any]) -> str:
        """``health_report()`` as lines for a terminal."""

    def serve(self, port: int, address: str | None) -> int:
        """Serve the app (with its consumer, in embedded mode) until stopped; the exit code."""


P = ParamSpec("P")
T = TypeVar("T")


def guarded(
    action: str, needs: access.Role, *, argument_is_detail: bool = False
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Check the ``actor`` keyword's role before the use case runs, and audit what happened.

    ``actor`` left out (or None) is the process's default actor, and the use case receives it.
    The audit entry's target is the first argument (a battle, run or judge run id, or the id a
    dict names) or, for a launch, the id it returns; ``argument_is_detail``: the first argument
    is kept as the entry's detail instead (the SQL box's query).
    """

    def decorate(use_case: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(use_case)
        def checked(*args: P.args, **kwargs: P.kwargs) -> T:
            given = kwargs.get("actor")
            actor = given if isinstance(given, Actor) else access.default_actor()
            kwargs["actor"] = actor
            first = args[0] if args else None
            detail = str(first)[:4000] if argument_is_detail else None
            target = None if argument_is_detail else _target(first)
            try:
                access.require(actor, needs, _ACTIONS.get(action, action))
                result = use_case(*args, **kwargs)
            except AccessRefused as refused:
                audit(actor, action, target, f"refused: needs {refused.needs}", detail or str(refused))
                raise
            except SpendLimitReached as refused:
                audit(actor, action, target, "refused: spend limit", str(refused))
                raise
            except Exception as error:
                audit(actor, action, target, f"failed: {type(error).__name__}", detail or str(error)[:500])
                raise
            audit(actor, action, target or (result if isinstance(result, str) else None), "ok", detail)
            return result

        return checked

    return decorate


def _target(argument: object) -> str | None:
    if isinstance(argument, str):
        return argument[:200]
    if isinstance(argument, r.JudgeRunCreated):
        return argument.judge_run_id
    if isinstance(argument, dict):
        named = argument.get("battle_id") or argument.get("run_id") or argument.get("name")
        return str(named)[:200] if named else None
    return None


_ACTIONS = {  # how a refusal names the action
    "launch_battle": "Launching a battle",
    "create_battle": "Launching a battle",
    "launch_scale": "Launching a scale test",
    "cancel_battle": "Cancelling a battle",
    "retry_battle": "Retrying a battle",
    "cancel_run": "Cancelling a scale test",
    "request_rejudge": "Re-judging a scale test",
    "cancel_rejudge": "Cancelling a re-judge",
    "save_agent": "Saving an agent profile",
    "save_label": "Labelling a battle",
    "sql_query": "The SQL box",
    "rejudge_here": "Re-judging a scale test",
}


def audit(actor: Actor, action: str, target: str | None, outcome: str, detail: str | None = None) -> None:
    """Append one entry to the audit trail (a failure to write it is logged, never hidden)."""
    record = r.Audited(actor.identity, actor.role, action, target, outcome, detail)
    try:
        get_runtime().sink.write([record])
    except Exception:
        log.exception("Could not write the audit entry %s %s %s", actor.identity, action, outcome)
        raise


def _require_owner(actor: Actor, owner: str | None, action: str) -> None:
    """A launcher acts on their own work; someone else's (or work from before sign-in) needs an admin."""
    if owner != actor.identity:
        access.require(actor, "admin", f"{action} launched by {owner or 'someone else'}")


def record_sign_in(actor: Actor, action: str = "sign_in") -> None:
    """A sign-in (or sign-out) in the audit trail; the app calls it once per session."""
    audit(actor, action, None, "ok" if actor.role else "refused: no role", None)


_wired: list[Dispatcher] = []


def wire(dispatcher: Dispatcher) -> None:
    """Called once by each entry point: the use cases reach the queue through ``dispatcher``."""
    _wired[:] = [dispatcher]


def dispatcher() -> Dispatcher:
    if not _wired:
        raise RuntimeError("no dispatcher wired: an entry point calls sparring.usecases.wire(...) first")
    return _wired[0]


# -- battles -------------------------------------------------------------------------------


@guarded("launch_battle", "launcher")
def launch_battle(
    data: dict[str, Any] | BattleInput,
    *,
    require_worker: bool = True,
    battle_id: str | None = None,
    token: str | None = None,
    actor: Actor | None = None,
) -> str:
    """Validate, record and enqueue one battle; return its id.

    ``require_worker``: in queue mode, refuse (``NoWorkerError``) when no worker is alive,
    rather than let the job wait silently. ``token``: the form's submit token; a submit whose
    token was claimed already returns that battle's id and creates nothing.
    """
    battle = data if isinstance(data, BattleInput) else validate_battle(data)
    queue = _reachable_queue("battle", require_worker)
    bound = spend.battle_bound(battle.model_dump())
    _check_spend(actor, bound, "This battle")
    battle_id = battle_id or r.new_id()
    launch = functools.partial(_record_and_enqueue_battle, queue, battle, battle_id, _who(actor))
    return _launch_once(queue, "battle", token, battle_id, _battle_recorded, launch)


def _battle_recorded(battle_id: str) -> bool:
    return get_runtime().source.get_battle(battle_id) is not None


def _who(actor: Actor | None) -> str:
    return (actor or access.default_actor()).identity


def _record_and_enqueue_battle(queue: Dispatcher, battle: BattleInput, battle_id: str, launched_by: str) -> None:
    sink = get_runtime().sink
    sink.write([r.BattleCreated(battle_id, battle.to_spec(), launched_by=launched_by)])
    try:
        queue.enqueue_battle(battle_id)
    except Exception as error:  # noqa: BLE001 - undo, then report plainly
        sink.write([r.BattleDiscarded(battle_id, f"enqueue failed: {type(error).__name__}")])
        try:
            queue.forget_battle(battle_id)
        except Exception:  # noqa: BLE001 - the reaper ignores battles missing from the store
            log.warning("Could not drop %s from the active set", battle_id)
        raise SubmitError(
            f"The job queue failed while submitting ({type(error).__name__}); nothing was submitted."
        ) from None


@guarded("cancel_battle", "launcher")
def cancel_battle(battle_id: str, *, actor: Actor | None = None) -> str:
    """Cancel a battle: dequeue it if it waits, flag it if it runs. Returns what happened."""
    view = _battle(battle_id)
    _require_owner(access.given(actor), _owner(view), "Cancelling a battle")
    if view.finished:
        return f"already finished ({view.outcome})"
    queue = dispatcher()
    queue.ensure_reachable()
    queue.request_cancel(battle_id)  # a worker that has just dequeued it sees this
    if view.status == "queued":
        queue.dequeue_battle(battle_id)
        get_runtime().sink.write([r.BattleFinished(battle_id, "cancelled", error="cancelled before it started")])
        queue.forget_battle(battle_id)
        return "cancelled"
    return "cancelling"


@guarded("retry_battle", "launcher")
def retry_battle(battle_id: str, *, check_judge: bool = True, actor: Actor | None = None) -> str:
    """Re-enqueue a failed, timed-out, cancelled or undecided battle; it resumes where it stopped.

    An undecided battle ended because its judge gave no usable verdict: its judge is checked
    again first (``JudgeRefused``), so a retry does not pay for turns nobody can judge.
    ``check_judge=False`` when the caller checked it, or skips it on purpose.
    """
    view = _battle(battle_id)
    _require_owner(access.given(actor), _owner(view), "Retrying a battle")
    if not view.finished or view.outcome not in RETRYABLE:
        state = view.outcome or view.status
        raise SubmitError(
            f"Only failed, timed-out, cancelled or undecided battles can be retried; this one is {state}."
        )
    queue = dispatcher()
    queue.ensure_reachable()
    if check_judge and view.outcome == "undecided":
        require_good_judge(view.spec.judge.model, view.spec.judge.rubric)
    stopped_because = queue.run_stopped_because(view.run_id) if view.run_id else None
    if stopped_because:  # its run's flag would cancel it again at once
        raise SubmitError(
            f"Battle {battle_id[:8]} belongs to a scale test that was stopped ({stopped_because}), so it "
            "cannot be retried on its own; launch the scale test again instead."
        )
    queue.clear_cancel(battle_id)
    if view.run_id:
        queue.reopen_for_retry(view.run_id, battle_id)
    get_runtime().sink.write([r.BattleRequeued(battle_id, "retry requested")])
    queue.enqueue_battle(battle_id)
    return "requeued"


def _owner(view: r.BattleView) -> str | None:
    """Who launched the battle: its own launcher, or its scale test's."""
    if view.launched_by or not view.run_id:
        return view.launched_by
    run = get_runtime().source.get_run(view.run_id)
    return run.launched_by if run else None


def _battle(battle_id: str) -> r.BattleView:
    view = get_runtime().source.get_battle(battle_id) if r.is_id(battle_id) else None
    if view is None:
        raise UnknownBattleError(f"unknown battle id {battle_id!r}")
    return view


# -- scale tests ---------------------------------------------------------------------------


@guarded("launch_scale", "launcher")
def launch_scale(
    data: dict[str, Any] | ScaleInput,
    *,
    require_worker: bool = True,
    token: str | None = None,
    actor: Actor | None = None,
) -> str:
    """Validate and record a scale test, and queue its fan-out; return the run id.

    ``token``: the form's submit token; a submit whose token was claimed already returns that
    run's id and creates nothing.
    """
    scale = data if isinstance(data, ScaleInput) else validate_scale(data)
    queue = _reachable_queue("scale test", require_worker)
    plan = plan_run(scale)
    _check_spend(actor, _scale_bound(scale, plan.total), "This scale test")
    plan.config["forecast"] = _forecast(scale)  # set against the actual cost on the run's page
    return _launch_once(
        queue,
        "run",
        token,
        plan.run_id,
        _run_recorded,
        lambda: _record_and_enqueue_run(queue, plan, scale, _who(actor)),
    )


def _scale_bound(scale: ScaleInput, total: int) -> float | None:
    """The most the scale test may cost: every battle run to its cap, or its budget if smaller."""
    from sparring.plan import cost_bound

    bound = cost_bound(scale.model_dump(), total)
    if scale.budget_usd is None:
        return bound
    return scale.budget_usd if bound is None else min(bound, scale.budget_usd)


def _check_spend(actor: Actor | None, bound: float | None, what: str) -> None:
    """``SpendLimitReached`` when a launch costing up to ``bound`` would pass a daily limit."""
    allowance = spend.allowance(get_runtime().store, _who(actor))
    refusal = spend.refusal(allowance, bound, what)
    if refusal:
        raise SpendLimitReached(refusal)


def spend_left(*, actor: Actor | None = None) -> spend.Allowance:
    """What the actor, and the deployment, may still spend today (the hub shows it)."""
    return spend.allowance(get_runtime().store, _who(actor))


def _forecast(scale: ScaleInput) -> dict[str, Any] | None:
    from sparring import forecast  # statistics and the store's read models: not for a worker's imports

    store = get_runtime().store
    return forecast.safe_forecast(store if store.path.exists() else None, scale)


def _run_recorded(run_id: str) -> bool:
    return get_runtime().source.get_run(run_id) is not None


def _record_and_enqueue_run(queue: Dispatcher, plan: Plan, scale: ScaleInput, launched_by: str) -> None:
    sink = get_runtime().sink
    sink.write([dataclasses.replace(run_created(plan, scale), launched_by=launched_by)])
    try:
        queue.enqueue_fan_out(plan.run_id)
    except Exception as error:  # noqa: BLE001 - undo, then report plainly
        sink.write([r.RunDiscarded(plan.run_id)])
        raise SubmitError(f"The job queue failed ({type(error).__name__}); the scale test was not submitted.") from None


@guarded("cancel_run", "launcher")
def cancel_run(run_id: str, *, actor: Actor | None = None) -> str:
    """Stop a scale test at the request of a person; return what happened."""
    queue = dispatcher()
    queue.ensure_reachable()
    run = get_runtime().source.get_run(run_id)
    if run is None:
        raise UnknownRunError(f"unknown run id {run_id!r}")
    _require_owner(access.given(actor), run.launched_by, "Cancelling a scale test")
    if run.status in ("finished", "cancelled", "stopped"):
        return f"already {run.status}"
    queue.stop_run(run_id, "cancelled by request")
    return "cancelling"


# -- re-judging ----------------------------------------------------------------------------


@guarded("request_rejudge", "admin")
def request_rejudge(data: dict[str, Any], *, require_worker: bool = True, actor: Actor | None = None) -> str:
    """Validate, record and queue a re-judge of a finished run; return the judge run id.

    Raises ``InvalidInput`` for bad input (nothing written), ``NoWorkerError`` when no
    worker would pick it up, ``RejudgeRunningError`` when the same judge is judging the run
    right now, ``SubmitError`` when the queue is unreachable.
    """
    from sparring import judging  # statistics (scipy): loaded only when a re-judge is asked for

    record = dataclasses.replace(judging.plan_rejudge(get_runtime().store, data), requested_by=_who(actor))
    queue = dispatcher()
    queue.ensure_reachable()
    if require_worker and not any(w.get("sink") != "stream" for w in queue.live_workers()):
        raise NoWorkerError(
            "No worker next to the database is running, so the re-judge would wait (workers with "
            f"SPARRING_RECORD_SINK=stream cannot re-judge). Start one with: {queue.worker_command()}"
        )
    queue.enqueue_rejudge(record)
    return record.judge_run_id


@guarded("rejudge_here", "admin")
def rejudge_here(record: r.JudgeRunCreated, *, threads: int, actor: Actor | None = None) -> RejudgeResult:
    """Judge a run again in this thread (the command line's foreground re-judge), attributed."""
    return dispatcher().rejudge_here(dataclasses.replace(record, requested_by=_who(actor)), threads)


@guarded("rejudge_here", "admin")
def rejudge_in_background(data: dict[str, Any], *, actor: Actor | None = None) -> str:
    """Judge a run again in a thread of this process (no worker); return the judge run id."""
    return dispatcher().rejudge_in_background(data)


@guarded("cancel_rejudge", "admin")
def cancel_rejudge(judge_run_id: str, *, actor: Actor | None = None) -> str:
    """Cancel a queued or running re-judge. Returns what happened, in a few words.

    Raises ``UnknownJudgeRunError`` for an unknown id, ``SubmitError`` when the queue is
    unreachable (nothing is changed then).
    """
    from sparring import judging

    status = judging.judge_run_status(get_runtime().store, judge_run_id) if r.is_id(judge_run_id) else None
    if status is None:
        raise UnknownJudgeRunError(f"unknown judge run id {judge_run_id!r}")
    if status in judging.JUDGE_RUN_ENDED:
        return f"already {status}"
    queue = dispatcher()
    queue.ensure_reachable()
    return queue.cancel_rejudge(judge_run_id, status)


# -- the judge check before a launch -------------------------------------------------------


def ensure_queue_reachable() -> None:
    """``SubmitError`` unless the queue answers: checked before the judge, so an outage costs no judge call."""
    dispatcher().ensure_reachable()


def require_good_judge(judge_model: str, rubric: str | None, *, require_worker: bool = True) -> JudgeCheck:
    """The passing check, or ``JudgeRefused``; ``SubmitError`` when it could not be run."""
    from sparring.checks import NO_JUDGE
    from sparring.judging.check import no_judge

    if judge_model == NO_JUDGE:  # no judge to try: the success checks decide
        return no_judge(rubric)
    check = dispatcher().check_judge(judge_model, rubric, require_worker=require_worker)
    if check.passed:
        return check
    if check.transient:
        raise SubmitError(check.message)
    raise JudgeRefused(check)


# -- submit tokens -------------------------------------------------------------------------


def new_submit_token() -> str:
    """A token for one drawn form: however often it is submitted, it launches one battle (or run)."""
    return secrets.token_urlsafe(12)


def claim_submission(queue: Dispatcher, kind: str, token: str, new_id: str) -> str:
    """The id the form's ``token`` launched: ``new_id`` when this submit is the first to carry it."""
    if not _TOKEN.match(token):
        raise ValueError(f"not a submit token: {token!r:.40}")
    return queue.claim(f"submit:{kind}:{token}", new_id, SUBMIT_TOKEN_TTL_S)


def _reachable_queue(what: str, require_worker: bool) -> Dispatcher:
    """The queue, checked to answer; with ``require_worker``, refused when no worker would pick ``what`` up."""
    queue = dispatcher()
    queue.ensure_reachable()
    if require_worker and not queue.live_workers():
        raise NoWorkerError(
            f"No worker is running (no heartbeat in the last {queue.heartbeat_ttl_s():.0f} s), "
            f"so the {what} would wait. Start one with: {queue.worker_command()}"
        )
    return queue


def _launch_once(
    queue: Dispatcher,
    kind: str,
    token: str | None,
    new_id: str,
    recorded: Callable[[str], bool],
    launch: Callable[[], object],
) -> str:
    """Run ``launch`` (which records and enqueues ``new_id``) unless this form was submitted already.

    A submit whose ``token`` was claimed before returns the first submit's id and launches
    nothing; a launch that fails releases the token, so the same form may be sent again.
    """
    if token and (first := launched_before(queue, kind, token, new_id, recorded)):
        return first
    try:
        launch()
    except BaseException:
        release_submission(queue, kind, token)
        raise
    return new_id


def launched_before(
    queue: Dispatcher, kind: str, token: str, new_id: str, recorded: Callable[[str], bool]
) -> str | None:
    """None when this submit is the first with ``token`` (it launches ``new_id``); else the first one's id.

    That id is returned once ``recorded`` sees it (or after ``FIRST_SUBMIT_WAIT_S``). Should the
    first submit fail meanwhile, it releases the token and this one claims it and launches.
    """
    deadline = time.monotonic() + FIRST_SUBMIT_WAIT_S
    while True:
        first = claim_submission(queue, kind, token, new_id)
        if first == new_id:
            return None
        if _seen(recorded, first) or time.monotonic() >= deadline:
            return first
        time.sleep(0.05)


def _seen(recorded: Callable[[str], bool], launched_id: str) -> bool:
    try:
        return recorded(launched_id)
    except StoreBusy:  # being written right now: look again
        return False


def release_submission(queue: Dispatcher, kind: str, token: str | None) -> None:
    """A submit failed and left nothing behind: the same form may be submitted again."""
    if token:
        queue.unclaim(f"submit:{kind}:{token}")


# -- in this process (no queue) ------------------------------------------------------------


@guarded("create_battle", "launcher")
def create_battle(
    data: dict[str, Any] | BattleInput, *, battle_id: str | None = None, actor: Actor | None = None
) -> str:
    """Validate ``data`` and record a new queued battle; return its id."""
    battle = data if isinstance(data, BattleInput) else validate_battle(data)
    battle_id = battle_id or r.new_id()
    get_runtime().sink.write([r.BattleCreated(battle_id, battle.to_spec(), launched_by=_who(actor))])
    return battle_id


def run_inline(
    battle_id: str,
    control: BattleControl | None = None,
    worker: str | None = None,
    transcript: r.Transcript | None = None,
) -> BattleResult:
    """Run (or resume) a battle in this process, in the foreground (``transcript``: as just read)."""
    runtime = get_runtime()
    return run_battle(
        battle_id,
        source=runtime.source,
        sink=runtime.sink,
        gateway=runtime.gateway,
        control=control,
        worker=worker,
        transcript=transcript,
    )


@guarded("save_agent", "admin")
def save_agent(data: dict[str, Any], *, actor: Actor | None = None) -> str:
    """Validate and record an agent profile; return its name."""
    from pydantic import ValidationError

    try:
        profile = AgentProfileInput.model_validate(data)
    except ValidationError as error:
        raise InvalidInput(field_errors(error)) from None
    get_runtime().sink.write([dataclasses.replace(profile.to_record(), saved_by=_who(actor))])
    return profile.name


@guarded("save_label", "launcher")
def save_label(data: dict[str, Any], *, actor: Actor | None = None) -> r.LabelSaved:
    """Record a person's label of a finished battle. The labeller is the signed-in person; only
    an app without sign-in (one ``anonymous`` actor for everybody) keeps the typed name."""
    from sparring import judging

    who = access.given(actor)
    if who.identity != access.ANONYMOUS or not data.get("labeller"):
        data = {**data, "labeller": who.identity}
    runtime = get_runtime()
    return judging.save_label(data, store=runtime.store, sink=runtime.sink)


@guarded("sql_query", "admin", argument_is_detail=True)
def run_sql(sql: str, *, limit: int = 10_000, actor: Actor | None = None) -> Any:
    """Run one read-only query from the SQL box (a pandas frame); the query is in the audit trail."""
    from sparring.store.sqlbox import run_query

    return run_query(get_runtime().store, sql, limit=limit)


def audit_trail(*, limit: int = 500, actor: Actor | None = None) -> list[dict[str, Any]]:
    """The newest entries of the audit trail, newest first. Admins only; reading it is not audited."""
    from sparring.store.reads import audit_rows

    access.require(access.given(actor), "admin", "Reading the audit trail")
    return audit_rows(get_runtime().store, limit)
