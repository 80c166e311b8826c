"""``python -m jobs.ingest``: the one writer next to the database, for remote workers.

Reads the record stream with a consumer group, commits each batch (group commit, short
read-write sessions), and acknowledges only after the commit. On start it first re-reads
what it had received and not acknowledged (a SIGKILL between commit and ack, or before
the commit), then entries idle too long at another consumer; the writes are idempotent,
so a redelivered entry changes nothing. Between batches it serves hydration requests
(a remote worker resuming a battle the mirror does not hold) and run summaries (which
need the database and must see every record of the run: they are served when the stream
is drained).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Sequence
from typing import Any

from sparring import records as r
from sparring.livestate import GROUP, Mirror, hydrate
from sparring.runtime import get_runtime
from sparring.settings import get_settings

log = logging.getLogger(__name__)

CLAIM_IDLE_MS = 60_000


class Ingester:
    def __init__(self, batch: int = 2000, block_ms: int = 500, consumer: str = "ingester") -> None:
        settings = get_settings()
        if not settings.redis_url:
            raise SystemExit("python -m jobs.ingest needs REDIS_URL (the stream lives in Redis).")
        self.settings = settings
        self.mirror = Mirror(settings.redis_url, settings.namespace)
        self.client: Any = self.mirror.client  # redis-py's stream replies are loosely typed
        self.store = get_runtime().store
        self.batch = batch
        self.block_ms = block_ms
        self.consumer = consumer
        self.stats_key = f"{settings.namespace}:ingest"
        self._stop = False

    def stop(self, *_: Any) -> None:
        self._stop = True

    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.mirror.stream, GROUP, id="0", mkstream=True)
        except Exception as error:
            if "BUSYGROUP" not in str(error):
                raise

    def run(self) -> None:
        self.store.migrate()
        self.ensure_group()
        self._drain_own_pending()
        while not self._stop:
            try:
                self._step()
            except Exception:
                log.warning("Ingest step failed; retrying", exc_info=True)
                time.sleep(1)

    def _drain_own_pending(self) -> None:
        """What this consumer received before a crash and never acknowledged."""
        while True:
            entries = self._read("0")
            if not entries:
                return
            self._commit(entries)

    def _step(self) -> None:
        self._claim_abandoned()
        entries = self._read(">")
        if entries:
            self._commit(entries)
            return
        # Drained: everything appended so far is committed.
        self._serve_hydrations()
        self._serve_summaries()

    def _read(self, start: str) -> list[tuple[str, dict[Any, Any]]]:
        block = None if start == "0" else self.block_ms
        answer = self.client.xreadgroup(
            GROUP, self.consumer, {self.mirror.stream: start}, count=self.batch, block=block
        )
        if not answer:
            return []
        _, entries = answer[0]
        return [((i.decode() if isinstance(i, bytes) else i), fields) for i, fields in entries if fields]

    def _claim_abandoned(self) -> None:
        result = self.client.xautoclaim(
            self.mirror.stream, GROUP, self.consumer, min_idle_time=CLAIM_IDLE_MS, start_id="0-0", count=self.batch
        )
        claimed = result[1] if result else []
        entries = [((i.decode() if isinstance(i, bytes) else i), f) for i, f in claimed if f]
        if entries:
            log.info("Claimed %d entries left by another ingester", len(entries))
            self._commit(entries)

    def _commit(self, entries: Sequence[tuple[str, dict[Any, Any]]]) -> None:
        batch: list[r.Record] = []
        for _, fields in entries:
            raw: Any = fields.get(b"r", fields.get("r"))
            batch.extend(r.record_from_json(item) for item in json.loads(raw))
        started = time.perf_counter()
        self.store.write(batch)  # durable when this returns
        ids = [entry_id for entry_id, _ in entries]
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(self.mirror.stream, GROUP, *ids)
        pipe.xdel(self.mirror.stream, *ids)
        pipe.hset(
            self.stats_key,
            mapping={
                "last_commit_at": time.time(),
                "last_batch_records": len(batch),
                "last_commit_ms": round((time.perf_counter() - started) * 1000, 1),
                "host": socket.gethostname(),
                "pid": os.getpid(),
            },
        )
        pipe.hincrby(self.stats_key, "records", len(batch))
        pipe.hincrby(self.stats_key, "entries", len(ids))
        pipe.execute()

    def _serve_hydrations(self) -> None:
        for _ in range(100):
            item = self.client.rpop(self.mirror.hydrate_queue)
            if item is None:
                return
            hydrate(self.mirror, self.store, item.decode() if isinstance(item, bytes) else item)

    def _serve_summaries(self) -> None:
        from jobs import runs

        item = self.client.rpop(self.mirror.summary_queue)
        if item is None:
            return
        run_id = item.decode() if isinstance(item, bytes) else item
        log.info("Summarising run %s", run_id)
        runs.summarise_here(run_id)


def ingest_status(redis_url: str, namespace: str) -> dict[str, Any]:
    """Ingest lag for the health page: entries not yet committed, and the age of the oldest."""
    mirror = Mirror(redis_url, namespace)
    client: Any = mirror.client
    status: dict[str, Any] = {"stream": mirror.stream}
    try:
        groups = client.xinfo_groups(mirror.stream)
    except Exception:  # noqa: BLE001 - no stream yet: nothing has been sent through it
        return {**status, "active": False}
    group = next((g for g in groups if (g.get("name") in (GROUP, GROUP.encode()))), None)
    length = client.xlen(mirror.stream)
    oldest = client.xrange(mirror.stream, count=1)
    oldest_age = None
    if oldest:
        entry_id = oldest[0][0].decode() if isinstance(oldest[0][0], bytes) else oldest[0][0]
        oldest_age = max(0.0, time.time() - int(entry_id.split("-")[0]) / 1000)
    stats = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in client.hgetall(f"{namespace}:ingest").items()
    }
    last_commit = float(stats["last_commit_at"]) if "last_commit_at" in stats else None
    return {
        **status,
        "active": True,
        "waiting": int(length),
        "pending": int(group.get("pending", 0)) if group else 0,
        "oldest_waiting_s": round(oldest_age, 1) if oldest_age is not None else 0.0,
        "last_commit_age_s": round(time.time() - last_commit, 1) if last_commit else None,
        "records_committed": int(stats.get("records", 0)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2000, help="Stream entries per read (default 2000).")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ingester = Ingester(batch=args.batch)
    signal.signal(signal.SIGTERM, ingester.stop)
    signal.signal(signal.SIGINT, ingester.stop)
    log.info("Ingesting %s into %s", ingester.mirror.stream, ingester.store.path)
    ingester.run()
    return 0


if __name__ == "__main__":
    code = main()
    from sparring.store.recorder import flush_all

    flush_all()
    logging.shutdown()
    os._exit(code)
