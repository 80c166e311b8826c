"""The use cases: launching, cancelling and retrying battles, scale tests and re-judges.

What the app, the CLI and the worker call. The order of operations and every refusal a user
sees are decided here; the job queue is behind ``Dispatcher``, which ``jobs.dispatch``
implements and each entry point wires once with ``wire`` (``streamlit_app.py``,
``python -m sparring``, the worker), so the core never imports the queue.

Order of operations on a launch: check the queue answers, refuse when no worker would take
the job, claim the form's token, commit the row, enqueue. If the queue fails after the row was
committed, the row is discarded and the token released, so a failed launch leaves nothing.

A form carries a token minted when it is drawn, and a launch claims it atomically through the
dispatcher (Redis ``SET NX``, or one SQLite transaction), which every process on the queue
shares: a second submit of the same form (a double click, a rerun racing the first, another
app process) gets the first battle back instead of starting another one.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from sparring import records as r
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


_wired: list[Dispatcher] = []


def wire(dispatcher: Dispatcher) -> None:
    """Called once by each entry point: the use cases reach the queue through ``dispatcher``."""
    _wired[:] = [dispatcher]


def dispatcher() -> Dispatcher:
    if not _wired:
        raise RuntimeError("no dispatcher wired: an entry point calls sparring.usecases.wire(...) first")
    return _wired[0]


# -- battles -------------------------------------------------------------------------------


def launch_battle(
    data: dict[str, Any] | BattleInput,
    *,
    require_worker: bool = True,
    battle_id: str | None = None,
    token: str | None = None,
) -> str:
    """Validate, record and enqueue one battle; return its id.

    ``require_worker``: in queue mode, refuse (``NoWorkerError``) when no worker is alive,
    rather than let the job wait silently. ``token``: the form's submit token; a submit whose
    token was claimed already returns that battle's id and creates nothing.
    """
    battle = data if isinstance(data, BattleInput) else validate_battle(data)
    queue = dispatcher()
    queue.ensure_reachable()
    if require_worker and not queue.live_workers():
        raise NoWorkerError(
            "No worker is running (no heartbeat in the last "
            f"{queue.heartbeat_ttl_s():.0f} s), so the battle would wait. Start one with: "
            f"{queue.worker_command()}"
        )
    battle_id = battle_id or r.new_id()
    if token and (first := launched_before(queue, "battle", token, battle_id, _battle_recorded)):
        return first  # this form was submitted already: its battle, not a second one
    try:
        _record_and_enqueue_battle(queue, battle, battle_id)
    except BaseException:
        release_submission(queue, "battle", token)
        raise
    return battle_id


def _battle_recorded(battle_id: str) -> bool:
    return get_runtime().source.get_battle(battle_id) is not None


def _record_and_enqueue_battle(queue: Dispatcher, battle: BattleInput, battle_id: str) -> None:
    sink = get_runtime().sink
    sink.write([r.BattleCreated(battle_id, battle.to_spec())])
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


def cancel_battle(battle_id: str) -> str:
    """Cancel a battle: dequeue it if it waits, flag it if it runs. Returns what happened."""
    view = _battle(battle_id)
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


def retry_battle(battle_id: str, *, check_judge: bool = True) -> str:
    """Re-enqueue a failed, timed-out, cancelled or undecided battle; it resumes where it stopped.

    An undecided battle ended because its judge gave no usable verdict: its judge is checked
    again first (``JudgeRefused``), so a retry does not pay for turns nobody can judge.
    ``check_judge=False`` when the caller checked it, or skips it on purpose.
    """
    view = _battle(battle_id)
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


def _battle(battle_id: str) -> r.BattleView:
    view = get_runtime().source.get_battle(battle_id) if r.is_id(battle_id) else None
    if view is None:
        raise UnknownBattleError(f"unknown battle id {battle_id!r}")
    return view


# -- scale tests ---------------------------------------------------------------------------


def launch_scale(data: dict[str, Any] | ScaleInput, *, require_worker: bool = True, token: str | None = None) -> str:
    """Validate and record a scale test, and queue its fan-out; return the run id.

    ``token``: the form's submit token; a submit whose token was claimed already returns that
    run's id and creates nothing.
    """
    scale = data if isinstance(data, ScaleInput) else validate_scale(data)
    queue = dispatcher()
    queue.ensure_reachable()
    if require_worker and not queue.live_workers():
        raise NoWorkerError(
            f"No worker is running, so the scale test would wait. Start one with: {queue.worker_command()}"
        )
    plan = plan_run(scale)
    plan.config["forecast"] = _forecast(scale)  # set against the actual cost on the run's page
    if token and (first := launched_before(queue, "run", token, plan.run_id, _run_recorded)):
        return first  # this form was submitted already: its run, not a second one
    try:
        _record_and_enqueue_run(queue, plan, scale)
    except BaseException:
        release_submission(queue, "run", token)
        raise
    return plan.run_id


def _forecast(scale: ScaleInput) -> dict[str, Any] | None:
    from sparring import forecast  # statistics and the store's read models: not for a worker's imports

    store = get_runtime().store
    return forecast.safe_forecast(store if store.path.exists() else None, scale)


def _run_recorded(run_id: str) -> bool:
    return get_runtime().source.get_run(run_id) is not None


def _record_and_enqueue_run(queue: Dispatcher, plan: Plan, scale: ScaleInput) -> None:
    sink = get_runtime().sink
    sink.write([run_created(plan, scale)])
    try:
        queue.enqueue_fan_out(plan.run_id)
    except Exception as error:  # noqa: BLE001 - undo, then report plainly
        sink.write([r.RunDiscarded(plan.run_id)])
        raise SubmitError(f"The job queue failed ({type(error).__name__}); the scale test was not submitted.") from None


def cancel_run(run_id: str) -> str:
    """Stop a scale test at the request of a person; return what happened."""
    queue = dispatcher()
    queue.ensure_reachable()
    run = get_runtime().source.get_run(run_id)
    if run is None:
        raise UnknownRunError(f"unknown run id {run_id!r}")
    if run.status in ("finished", "cancelled", "stopped"):
        return f"already {run.status}"
    queue.stop_run(run_id, "cancelled by request")
    return "cancelling"


# -- re-judging ----------------------------------------------------------------------------


def request_rejudge(data: dict[str, Any], *, require_worker: bool = True) -> str:
    """Validate, record and queue a re-judge of a finished run; return the judge run id.

    Raises ``InvalidInput`` for bad input (nothing written), ``NoWorkerError`` when no
    worker would pick it up, ``RejudgeRunningError`` when the same judge is judging the run
    right now, ``SubmitError`` when the queue is unreachable.
    """
    from sparring import judging  # statistics (scipy): loaded only when a re-judge is asked for

    record = judging.plan_rejudge(get_runtime().store, data)
    queue = dispatcher()
    queue.ensure_reachable()
    if require_worker and not any(w.get("sink") != "stream" for w in queue.live_workers()):
        raise NoWorkerError(
            "No worker next to the database is running, so the re-judge would wait (workers with "
            f"SPARRING_RECORD_SINK=stream cannot re-judge). Start one with: {queue.worker_command()}"
        )
    queue.enqueue_rejudge(record)
    return record.judge_run_id


def cancel_rejudge(judge_run_id: str) -> str:
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


def create_battle(data: dict[str, Any] | BattleInput, *, battle_id: str | None = None) -> str:
    """Validate ``data`` and record a new queued battle; return its id."""
    battle = data if isinstance(data, BattleInput) else validate_battle(data)
    battle_id = battle_id or r.new_id()
    get_runtime().sink.write([r.BattleCreated(battle_id, battle.to_spec())])
    return battle_id


def run_inline(battle_id: str, control: BattleControl | None = None, worker: str | None = None) -> BattleResult:
    """Run (or resume) a battle in this process, in the foreground."""
    runtime = get_runtime()
    return run_battle(
        battle_id,
        source=runtime.source,
        sink=runtime.sink,
        gateway=runtime.gateway,
        control=control,
        worker=worker,
    )


def save_agent(data: dict[str, Any]) -> str:
    """Validate and record an agent profile; return its name."""
    from pydantic import ValidationError

    try:
        profile = AgentProfileInput.model_validate(data)
    except ValidationError as error:
        raise InvalidInput(field_errors(error)) from None
    get_runtime().sink.write([profile.to_record()])
    return profile.name
