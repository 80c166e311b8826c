"""Huey's Redis storage with a pipelined enqueue: the one place that knows its keys.

A run's fan-out enqueues hundreds of jobs while the first ones already run; one round trip
each, every one waiting for the GIL again, would stagger their starts. Huey enqueues one
task per call, so this subclass does what ``Huey.restore`` and ``Huey.enqueue`` do to the
storage (delete the revocation's key, push the task's data) for many tasks per round trip.
"""

from __future__ import annotations

from collections.abc import Sequence

from huey.storage import RedisExpireStorage

PIPELINE_SIZE = 500


class PipelinedRedisStorage(RedisExpireStorage):  # type: ignore[misc]  # huey ships without type information
    def restore_and_enqueue(self, tasks: Sequence[tuple[str, bytes]]) -> None:
        """For each ``(revoke key, task data)``: drop the revocation, then enqueue; 500 per round trip."""
        for start in range(0, len(tasks), PIPELINE_SIZE):
            with self.conn.pipeline(transaction=False) as pipe:
                for revoke_key, data in tasks[start : start + PIPELINE_SIZE]:
                    pipe.delete(self.result_key(revoke_key))  # RedisExpireStorage.delete_data
                    pipe.lpush(self.queue_key, data)  # RedisStorage.enqueue
                pipe.execute()
