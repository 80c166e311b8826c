"""``python -m jobs.worker --workers N``: a queue consumer process (thread workers).

Several of them, on one machine or many, share the queue. SIGINT stops gracefully
(running battles finish); SIGTERM stops at once and hands running battles back to the
queue; SIGKILL loses nothing either: the reaper re-enqueues its battles once their
leases expire, and they resume from their last committed message.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from jobs import dispatch, runner
from jobs.consumer import make_consumer, requeue_interrupted, shut_down, warm_up_in_background
from jobs.queue import get_queue
from sparring.runtime import get_runtime
from sparring.settings import get_settings


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m jobs.worker", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workers",
        type=int,
        default=settings.worker_threads,
        help=f"Worker threads, i.e. battles run at once (default {settings.worker_threads}).",
    )
    parser.add_argument("--no-periodic", action="store_true", help="Do not run periodic maintenance here.")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("SPARRING_LOG_LEVEL", "INFO").upper(),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
    )
    args = parser.parse_args(argv)
    if not 1 <= args.workers <= 512:
        parser.error("--workers must be between 1 and 512")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # A worker's statements are tiny: one DuckDB thread wastes less CPU on hand-offs.
    os.environ.setdefault("SPARRING_DUCKDB_THREADS", "1")
    switch = os.environ.get("SPARRING_GIL_SWITCH_S")
    if switch:
        sys.setswitchinterval(float(switch))
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("huey").setLevel(logging.WARNING if args.log_level == "INFO" else args.log_level)
    dispatch.wire()  # a worker's jobs may launch or stop others through the use cases
    settings = get_settings()
    queue = get_queue()
    if settings.record_sink == "duckdb":
        get_runtime().store.migrate()
    warm_up_in_background()
    worker = runner.WorkerRuntime(queue, threads=args.workers, kind="worker")
    runner.install(worker)
    requeue_interrupted(worker)
    consumer = make_consumer(queue, args.workers, in_process=False, periodic=not args.no_periodic)
    worker.start()
    logging.getLogger(__name__).info(
        "Worker %s: %d threads, %s mode, queue %s", worker.worker_id, args.workers, settings.mode, settings.namespace
    )
    try:
        consumer.run()
    finally:
        shut_down(consumer, worker)
    return 0


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalisation: battle threads that are still unwinding must not
    # meet a half-torn-down runtime (DuckDB aborts the process if they do).
    os._exit(code)
