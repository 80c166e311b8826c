"""What a consumer process runs besides Huey: leases, heartbeat and the reaper.

One ``WorkerRuntime`` per consumer process (a ``python -m jobs.worker`` or the app's
in-process consumer). Its threads:

- **lease keeper**: renews the lease of every battle this process runs, every third of
  the lease TTL, and touches it in the active set; a lease found taken by another owner
  is marked lost, and the engine abandons that battle at its next check;
- **heartbeat**: publishes id, host, pid, start time, running battles and version every
  ``heartbeat_period_s`` (expiring after ``heartbeat_ttl_s``);
- **reaper**: every ``reaper_period_s``, re-enqueues active battles that nobody holds a
  lease on, that are not waiting in the queue, and that have not been touched for a
  lease period (their worker died), and re-judges in the same state. Several reapers may
  run at once (one per worker): a short claim per battle makes the re-enqueue happen once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from jobs import judging, recovery
from jobs.queue import Queue, get_queue
from sparring import __version__
from sparring import records as r
from sparring.runtime import get_runtime
from sparring.store.db import writes_waiting_since

log = logging.getLogger(__name__)


@dataclass
class Lease:
    battle_id: str
    owner: str
    lost: bool = False
    acquired_at: float = field(default_factory=time.time)


class WorkerRuntime:
    def __init__(self, queue: Queue, *, threads: int, kind: str = "worker") -> None:
        self.queue = queue
        self.settings = queue.settings
        self.kind = kind
        self.threads = threads
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{r.new_id()[:6]}"
        self.started_at = r.utcnow()
        self._leases: dict[str, Lease] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        try:
            self._heartbeat()  # visible at once: a submit right after start must find us
        except Exception:  # noqa: BLE001 - the heartbeat thread keeps trying
            log.warning("First heartbeat failed; retrying in the background")
        for name, target in (
            ("lease-keeper", self._keep_leases),
            ("heartbeat", self._heartbeat),
            ("reaper", self._reaper),
        ):
            thread = threading.Thread(target=self._forever, args=(name, target), name=f"{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        try:
            self.queue.coord.remove_heartbeat(self.worker_id)
        except Exception:  # noqa: BLE001 - best effort on the way out (Redis may be gone)
            log.warning("Could not remove the heartbeat of %s", self.worker_id)

    def _forever(self, name: str, step: Any) -> None:
        while not self._stop.is_set():
            try:
                period = step()
            except Exception:
                log.warning("%s: step failed, retrying", name, exc_info=True)
                period = 1.0
            self._stop.wait(period)

    # -- leases ----------------------------------------------------------------------------
    def hold_lease(self, battle_id: str) -> Lease | None:
        owner = f"{self.worker_id}:{threading.get_ident()}:{r.new_id()[:6]}"
        if not self.queue.coord.acquire_lease(battle_id, owner, self.settings.lease_ttl_s):
            return None
        lease = Lease(battle_id, owner)
        with self._lock:
            self._leases[battle_id] = lease
        self.queue.coord.touch_active(battle_id)
        return lease

    def release_lease(self, lease: Lease) -> None:
        with self._lock:
            if self._leases.get(lease.battle_id) is lease:
                del self._leases[lease.battle_id]
        try:
            self.queue.coord.release_lease(lease.battle_id, lease.owner)
        except Exception:  # noqa: BLE001 - it expires on its own
            log.warning("Could not release the lease of %s; it will expire", lease.battle_id)

    def abandon_all(self) -> list[str]:
        """Hand every running battle back: the process is going away.

        The engine stops at its next check (the lease is lost), the lease is released and
        the battle is marked stale in the active set, so the next reaper pass of any
        worker re-enqueues it without waiting for the lease to expire. (Re-enqueuing from
        here would race this process's own idle workers, which may pop the job and die.)
        """
        with self._lock:
            leases = list(self._leases.values())
        for lease in leases:
            lease.lost = True
            try:
                self.queue.coord.release_lease(lease.battle_id, lease.owner)
                self.queue.coord.touch_active(lease.battle_id, at=0.0)
            except Exception:  # noqa: BLE001 - the lease then expires on its own
                log.warning("Could not hand back %s; it is recovered when its lease expires", lease.battle_id)
        return [lease.battle_id for lease in leases]

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._leases)

    def _keep_leases(self) -> float:
        with self._lock:
            leases = list(self._leases.values())
        for lease in leases:
            if lease.lost:
                continue
            if not self.queue.coord.renew_lease(lease.battle_id, lease.owner, self.settings.lease_ttl_s):
                if self.queue.coord.acquire_lease(lease.battle_id, lease.owner, self.settings.lease_ttl_s):
                    continue  # it had expired (an outage) and nobody took it: ours again
                log.warning("Lease of battle %s was taken by another worker; abandoning it", lease.battle_id)
                lease.lost = True
                continue
            self.queue.coord.touch_active(lease.battle_id)
        return max(0.5, self.settings.lease_ttl_s / 3)

    # -- heartbeat ---------------------------------------------------------------------------
    def heartbeat_info(self) -> dict[str, Any]:
        return {
            "worker_id": self.worker_id,
            "kind": self.kind,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self.started_at.isoformat(),
            "threads": self.threads,
            "running": self.running(),
            "version": __version__,
            "sink": self.settings.record_sink,
            "writes_waiting_since": writes_waiting_since(),  # the database file is held elsewhere
            "beat_at": time.time(),
        }

    def _heartbeat(self) -> float:
        self.queue.coord.publish_heartbeat(self.worker_id, self.heartbeat_info(), self.settings.heartbeat_ttl_s)
        return self.settings.heartbeat_period_s

    # -- reaper ----------------------------------------------------------------------------------
    def _reaper(self) -> float:
        reap(self.queue)
        return float(self.settings.reaper_period_s)


def reap(queue: Queue) -> list[str]:
    """Re-enqueue active battles and re-judges whose worker died; return the battles' ids."""
    recovery.recover_if_lost(queue)  # the queue lost its state: track the store's unfinished work again
    requeued = _requeue_lost(queue)
    reconcile_runs(queue)
    judging.requeue_stalled(queue)
    return requeued


def reconcile_runs(queue: Queue) -> None:
    """Count every finished battle of unfinished runs, whatever book-keeping was lost.

    A worker can commit a battle's end and then lose Redis (or die) before adding it to its
    run's done set; the run would then never be summarised. The store knows better.
    """
    from jobs.runs import maybe_summarise

    source = get_runtime().source
    for run_id in queue.coord.runs():
        total = queue.coord.run_total(run_id)
        if total is None or queue.coord.run_done_add(run_id, []) >= total:
            continue
        finished = [b for b, status in source.run_battle_statuses(run_id).items() if status == "finished"]
        if finished and queue.coord.run_done_add(run_id, finished) >= total:
            maybe_summarise(queue, run_id)


def _requeue_lost(queue: Queue) -> list[str]:
    settings = queue.settings
    coord = queue.coord
    now = time.time()
    stale = [b for b, touched in coord.active().items() if now - touched > settings.lease_ttl_s]
    if not stale:
        return []
    pending = queue.pending_ids()
    requeued = []
    for battle_id in stale:
        if battle_id in pending or coord.lease_owner(battle_id) is not None:
            continue
        if not coord.claim(f"requeue:{battle_id}", settings.lease_ttl_s):
            continue
        if _finished_in_store(battle_id):
            coord.drop_active(battle_id)
            continue
        log.warning("Battle %s lost its worker (lease expired): re-enqueuing it", battle_id)
        get_runtime().sink.write([r.BattleRequeued(battle_id, "worker lost: lease expired", reopen=False)])
        coord.touch_active(battle_id)
        queue.enqueue_battle(battle_id)
        requeued.append(battle_id)
    return requeued


def _finished_in_store(battle_id: str) -> bool:
    view = get_runtime().source.get_battle(battle_id)
    return view is None or view.finished


_current: WorkerRuntime | None = None
_current_lock = threading.Lock()


def install(worker: WorkerRuntime) -> None:
    global _current
    with _current_lock:
        _current = worker


def installed() -> WorkerRuntime | None:
    """This process's consumer runtime, if one runs here (embedded mode, a worker)."""
    with _current_lock:
        return _current


def current() -> WorkerRuntime:
    """The runtime of this consumer process (a default one if tasks run without a worker)."""
    global _current
    with _current_lock:
        if _current is None:
            _current = WorkerRuntime(get_queue(), threads=1, kind="adhoc")
        return _current


def reset() -> None:
    """Forget the installed runtime (tests switch settings between cases)."""
    global _current
    with _current_lock:
        _current = None
