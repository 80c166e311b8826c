"""The job queue behind ``sparring.usecases.Dispatcher``: what the use cases ask of Huey.

Each entry point (``streamlit_app.py``, ``python -m sparring``, the worker) calls ``wire()``
once; the use cases then reach the queue through it and the core never imports ``jobs``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobs import judge_check, judging, ledger, runs
from jobs.queue import Queue, get_queue
from jobs.submit import check_reachable, live_workers, worker_command
from sparring import records as r
from sparring import usecases
from sparring.judging.check import JudgeCheck

if TYPE_CHECKING:
    from sparring.judging import RejudgeResult  # statistics (scipy): loaded only when a re-judge runs


class QueueDispatcher:
    """``Dispatcher`` over this process's queue (``jobs.queue.get_queue()``, read at each call)."""

    @property
    def queue(self) -> Queue:
        return get_queue()

    def ensure_reachable(self) -> None:
        check_reachable(self.queue)

    def live_workers(self) -> list[dict[str, Any]]:
        return live_workers(self.queue)

    def heartbeat_ttl_s(self) -> float:
        return float(self.queue.settings.heartbeat_ttl_s)

    def worker_command(self) -> str:
        return worker_command(self.queue)

    def claim(self, key: str, value: str, ttl_s: float) -> str:
        return self.queue.coord.claim_value(key, value, ttl_s)

    def unclaim(self, key: str) -> None:
        self.queue.coord.unclaim(key)

    def enqueue_battle(self, battle_id: str) -> None:
        queue = self.queue
        queue.coord.touch_active(battle_id)
        queue.enqueue_battle(battle_id)

    def forget_battle(self, battle_id: str) -> None:
        self.queue.coord.drop_active(battle_id)

    def request_cancel(self, battle_id: str) -> None:
        self.queue.coord.request_cancel(battle_id)

    def clear_cancel(self, battle_id: str) -> None:
        self.queue.coord.clear_cancel(battle_id)

    def dequeue_battle(self, battle_id: str) -> None:
        self.queue.huey.revoke_by_id(battle_id, revoke_once=True)

    def reopen_for_retry(self, run_id: str, battle_id: str) -> None:
        ledger.reopen_for_retry(run_id, battle_id)

    def enqueue_fan_out(self, run_id: str) -> None:
        queue = self.queue
        queue.huey.enqueue(queue.tasks["run_scale"].s(run_id, id=f"run:{run_id}"))

    def run_stopped_because(self, run_id: str) -> str | None:
        return self.queue.coord.run_cancel_reason(run_id)

    def stop_run(self, run_id: str, reason: str) -> None:
        runs.stop_run(run_id, reason, queue=self.queue)

    def enqueue_rejudge(self, record: r.JudgeRunCreated) -> None:
        judging.enqueue_rejudge(self.queue, record)

    def cancel_rejudge(self, judge_run_id: str, status: str) -> str:
        return judging.cancel_rejudge_job(self.queue, judge_run_id, status)

    def check_judge(self, judge_model: str, rubric: str | None, *, require_worker: bool) -> JudgeCheck:
        return judge_check.check_judge(judge_model, rubric, require_worker=require_worker)

    def stalled_rejudges(self, judge_run_ids: list[str]) -> set[str]:
        return judging.stalled(judge_run_ids)

    # The consumer, the health report and the server load what runs jobs (and Streamlit): only when asked.
    def start_here(self, threads: int | None = None) -> None:
        from jobs import embedded

        embedded.start(threads=threads)

    def stop_here(self) -> None:
        from jobs import embedded

        embedded.stop()

    def rejudge_here(self, record: r.JudgeRunCreated, threads: int) -> RejudgeResult:
        return judging.rejudge_in_foreground(record, threads=threads)

    def rejudge_in_background(self, data: dict[str, Any]) -> str:
        return judging.run_here(data)

    def health_report(self) -> dict[str, Any]:
        from jobs import health

        return health.health_report()

    def format_health(self, report: dict[str, Any]) -> str:
        from jobs import health

        return health.format_report(report)

    def serve(self, port: int, address: str | None) -> int:
        from jobs import serve

        return serve.serve(port, address)


def wire() -> QueueDispatcher:
    """Wire the queue into the use cases (once, at an entry point); return the dispatcher."""
    dispatcher = QueueDispatcher()
    usecases.wire(dispatcher)
    return dispatcher
