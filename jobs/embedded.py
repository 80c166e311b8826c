"""The consumer that runs inside the app process.

Embedded mode (no ``REDIS_URL``): ``python -m sparring serve`` (``make run``) starts it with
the server, so queued work runs with no browser open; the app's first session starts it
too (a no-op when it already runs, e.g. under a bare ``streamlit run``). Queue mode: the app
can start it on request ("run here") when no worker is alive.
"""

from __future__ import annotations

import logging
import threading

from jobs import runner
from jobs.consumer import InProcessConsumer, make_consumer, requeue_interrupted, shut_down, warm_up_in_background
from jobs.queue import Queue, get_queue
from sparring.runtime import get_runtime

log = logging.getLogger(__name__)


class EmbeddedConsumer:
    def __init__(self, queue: Queue, threads: int) -> None:
        self.queue = queue
        self.threads = threads
        self.worker = runner.WorkerRuntime(queue, threads=threads, kind="embedded")
        self.consumer: InProcessConsumer = make_consumer(queue, threads, in_process=True)
        self._thread = threading.Thread(target=self._run, name="embedded-consumer", daemon=True)
        self._stopped = False

    def start(self, warm_up: bool = True) -> EmbeddedConsumer:
        """Start the consumer; ``warm_up=False`` leaves importing litellm to the caller.

        (The app imports it only once its first page is on screen: the import holds the
        GIL for seconds and would otherwise slow that first render down.)
        """
        if self.queue.settings.record_sink == "duckdb":
            get_runtime().store.migrate()
        if warm_up:
            warm_up_in_background()
        runner.install(self.worker)
        requeue_interrupted(self.worker)
        self.worker.start()
        self._thread.start()
        log.info("In-process consumer started: %d threads (%s mode)", self.threads, self.queue.settings.mode)
        return self

    def _run(self) -> None:
        try:
            self.consumer.run()
        except Exception:
            log.exception("The in-process consumer stopped")

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.consumer.stop(graceful=False)
        self._thread.join(timeout=10)
        shut_down(self.consumer, self.worker)


_lock = threading.Lock()
_consumer: EmbeddedConsumer | None = None


def start(threads: int | None = None, warm_up: bool = True) -> EmbeddedConsumer:
    """Start this process's in-process consumer once; later calls return the same one."""
    global _consumer
    with _lock:
        queue = get_queue()
        if _consumer is not None and (_consumer.queue is not queue or not _consumer.alive):
            _consumer.stop()  # settings changed (tests), or it died: start afresh
            _consumer = None
        if _consumer is None:
            _consumer = EmbeddedConsumer(queue, threads or queue.settings.embedded_workers).start(warm_up)
        return _consumer


def stop() -> None:
    global _consumer
    with _lock:
        if _consumer is not None:
            _consumer.stop()
            _consumer = None


def running() -> bool:
    with _lock:
        return _consumer is not None and _consumer.alive
