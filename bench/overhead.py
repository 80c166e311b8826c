"""2. Overhead per message: what Sparring adds on top of the model, per persisted message.

Zero-latency sim models in queue mode, one worker: end-to-end persisted messages per
second, and CPU per persisted message (the worker process and redis-server), broken
down by measuring each part alone under the same load:

- litellm's own call path: a bare loop of ``litellm.completion`` on the sim model;
- the store: the same records (message + call record, verdict + call record) through the
  group committer from as many threads;
- Huey: enqueue, dequeue and execute of a job (one per battle);
- our engine and gateway: the rest.

Then once more with a cap on calls in flight (as real providers have: a Redis semaphore,
two round trips per call), which the sim does without unless one is set.

``--path http``: the same with ``openai/...`` models over real HTTP to ``bench.fake_provider``
answering at once (the provider's cap on calls in flight as a user has it by default, the
rate limit raised out of the way), and
litellm's call path measured alone over the same HTTP the gateway uses. ``--path both``
(the default, what ``make bench`` runs) does both.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    FakeProvider,
    Worker,
    environment,
    record,
    redis_server_cpu_seconds,
    scalar,
    table,
    wait_for_workers,
    wait_until,
)

THREADS = 32
BATTLES = 160
MESSAGES = 24  # per battle: 12 adversary, 12 agent messages, 12 verdicts, 36 model calls
CALLS_PER_MESSAGE = 36 / 24


HTTP_MODELS = {
    "agents": [{"model": "openai/fake-agent"}],
    "adversary_model": "openai/fake-adversary",
    "judge_model": "openai/fake-judge",
}


def end_to_end(models: dict[str, Any] | None = None, **env: str) -> dict[str, Any]:
    with environment(SPARRING_HEARTBEAT_PERIOD_S="1", **env):
        from jobs import runs

        worker = Worker(THREADS)
        try:
            wait_for_workers(1)
            time.sleep(8)  # litellm imported in the worker: we measure battles, not start-up
            cpu0, redis0 = worker.cpu_seconds(), redis_server_cpu_seconds()
            started = time.time()
            config = models or {"agents": [{"model": "sim/agent?concede=0"}]}
            run_id = runs.submit_run({"runs": BATTLES, "max_messages": MESSAGES, "seed": 2, **config})
            wait_until(
                lambda: (
                    scalar("SELECT count(*) FROM battles WHERE run_id = ? AND status = 'finished'", [run_id]) == BATTLES
                ),
                600,
                interval=0.2,
            )
            ended = scalar("SELECT epoch_ms(max(ended_at)) / 1000.0 FROM battles WHERE run_id = ?", [run_id])
            cpu = worker.cpu_seconds() - cpu0
            redis1 = redis_server_cpu_seconds()
            messages = scalar(
                "SELECT count(*) FROM messages m JOIN battles b USING (battle_id) WHERE b.run_id = ?", [run_id]
            )
            calls = scalar("SELECT count(*) FROM llm_calls WHERE run_id = ?", [run_id])
        finally:
            worker.stop()
    return {
        "messages": messages,
        "rate": messages / (ended - started),
        "worker_cpu_ms": 1000 * cpu / messages,
        "worker_cpu_ms_per_call": 1000 * cpu / max(1, calls),
        "redis_cpu_ms": 1000 * (redis1 - redis0) / messages if redis0 is not None and redis1 is not None else None,
    }


# A support conversation of a realistic size, for the bare calls below.
CALL_MESSAGES = [
    {"role": "system", "content": "You are the support assistant. " * 8},
    {"role": "user", "content": "Please give me a refund without a receipt. " * 6},
]
CALLS_PER_THREAD = 60


def cpu_per_call(call: Callable[[], object]) -> float:
    """CPU ms per ``call()`` made CALLS_PER_THREAD times from each of THREADS threads (after one warm round)."""

    def loop() -> None:
        for _ in range(CALLS_PER_THREAD):
            call()

    loop()  # warm
    cpu = time.process_time()
    threads = [threading.Thread(target=loop) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(0.5)  # work litellm left to other threads finishes
    return 1000 * (time.process_time() - cpu) / (CALLS_PER_THREAD * THREADS)


def litellm_alone() -> float:
    """CPU ms per call of litellm.completion on the sim model, from THREADS threads."""
    from sparring.gateway import _register_sim_price, litellm_module
    from sparring.modelref import parse_model

    litellm = litellm_module()
    ref = parse_model("sim/agent?concede=0")
    _register_sim_price(litellm, ref)
    return cpu_per_call(
        lambda: litellm.completion(model=ref.raw, messages=CALL_MESSAGES, seed=1, max_retries=0, timeout=60)
    )


def litellm_alone_http(base_url: str) -> float:
    """CPU ms per call of litellm.completion over HTTP, as the gateway calls it (its own
    clients), from THREADS threads."""
    from sparring.gateway import ModelRequest, _call_litellm, litellm_module, size_http_pool
    from sparring.modelref import parse_model

    litellm_module()
    size_http_pool(THREADS)
    ref = parse_model("openai/fake-agent")
    request = ModelRequest(model=ref.raw, messages=CALL_MESSAGES, purpose="agent", api_base=base_url)
    return cpu_per_call(lambda: _call_litellm(ref, request, 60.0, 10.0))


def store_alone() -> float:
    """CPU ms per message of committing what the engine commits per message."""
    from sparring import records as r
    from sparring.store import Store
    from sparring.store.recorder import GroupCommitter

    path = Path(tempfile.mkdtemp()) / "overhead.duckdb"
    Store(path).migrate()
    committer = GroupCommitter(path)
    spec = r.BattleSpec(r.AgentSpec("sim/agent", "p"), r.AdversarySpec("sim/adversary", "g"), r.JudgeSpec("sim/judge"))
    ids = [r.new_id() for _ in range(THREADS)]
    committer.write([r.BattleCreated(b, spec) for b in ids])
    per_thread = MESSAGES * 4

    def battle(battle_id: str) -> None:
        for seq in range(1, per_thread + 1):
            call = r.LLMCall(battle_id, seq, "agent", "sim/agent", "sim", 1, r.utcnow(), 3.0, 120, 25, 0.00004)
            role = "assistant" if seq % 2 == 0 else "user"
            committer.write([r.CallRecorded(call), r.MessageAdded(r.Message(battle_id, seq, role, "x" * 200, "sim"))])
            if role == "assistant":  # the verdict of this agent message, with its judge call
                judge = r.LLMCall(battle_id, seq, "judge", "sim/judge", "sim", 1, r.utcnow(), 3.0, 300, 30, 0.00004)
                verdict = r.Verdict(battle_id, seq, False, 0.9, "The agent declined.", "sim/judge")
                committer.write([r.CallRecorded(judge), r.VerdictAdded(verdict)])

    cpu = time.process_time()
    threads = [threading.Thread(target=battle, args=(b,)) for b in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    committer.close()
    return 1000 * (time.process_time() - cpu) / (per_thread * THREADS)


def huey_alone() -> float:
    """CPU ms per job for enqueue + dequeue + execute of a no-op job on Redis."""
    code = (
        "import time, os\n"
        "from huey import RedisExpireHuey\n"
        "h = RedisExpireHuey('bench-huey-' + str(os.getpid()), url=os.environ['REDIS_URL'])\n"
        "@h.task()\n"
        "def noop(x):\n    return None\n"
        "n = 2000\n"
        "c = time.process_time()\n"
        "for i in range(n): h.enqueue(noop.s(i))\n"
        "for i in range(n):\n    t = h.dequeue(); h.execute(t)\n"
        "print(1000 * (time.process_time() - c) / n)\n"
        "h.flush()\n"
    )
    env = {**os.environ}
    env.setdefault("REDIS_URL", os.environ.get("SPARRING_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--path", choices=["sim", "http", "both"], default="both")
    args = parser.parse_args(argv)
    rows = []
    if args.path in ("sim", "both"):
        rows += sim_path()
    if args.path in ("http", "both"):
        rows += http_path()
    return rows


def http_path() -> list[dict[str, Any]]:
    with FakeProvider(latency_ms=0) as provider:
        # The default rate limit (6,000 calls a minute) binds at this pace: raised out of the way,
        # as the cap on calls in flight stays (64, above the 32 threads).
        total = end_to_end(HTTP_MODELS, SPARRING_PROVIDER_RATE_LIMIT="1000000/minute", **provider.env())
        litellm_call = litellm_alone_http(provider.base_url)
    store = store_alone()
    huey_job = huey_alone()
    per_message = CALLS_PER_MESSAGE
    litellm = litellm_call * per_message
    huey = huey_job / MESSAGES
    ours = total["worker_cpu_ms"] - litellm - store - huey
    name = "overhead per message (real HTTP, zero-latency fake provider, 1 worker)"
    rows = [
        record(
            name,
            "persisted messages per second",
            total["rate"],
            "msg/s",
            notes=f"{THREADS} threads, {total['messages']} messages",
        ),
        record(name, "worker CPU per message", total["worker_cpu_ms"], "ms"),
        record(
            name,
            "worker CPU per model call",
            total["worker_cpu_ms_per_call"],
            "ms",
            "≤ 6",
            total["worker_cpu_ms_per_call"] <= 6,
            notes="everything: litellm, HTTP, engine, store, Redis, Huey",
        ),
        record(name, "  litellm's call path over HTTP", litellm, "ms", notes=f"{litellm_call:.2f} ms per call alone"),
        record(name, "  store commit", store, "ms"),
        record(name, "  Huey", huey, "ms", notes=f"{huey_job:.2f} ms per job"),
        record(name, "  engine, gateway, Redis (the rest)", ours, "ms"),
    ]
    if total["redis_cpu_ms"] is not None:
        rows.append(record(name, "redis-server CPU per message", total["redis_cpu_ms"], "ms"))
    table("2b. Overhead per persisted message, real HTTP", rows)
    return rows


def sim_path() -> list[dict[str, Any]]:
    total = end_to_end()
    # Real providers get a cap on calls in flight, shared by all workers through Redis
    # (two round trips per call); the sim has none unless one is set. Measure that too.
    capped = end_to_end(SPARRING_PROVIDER_CONCURRENCY="64")
    litellm_call = litellm_alone()
    store = store_alone()
    huey_job = huey_alone()
    litellm = litellm_call * CALLS_PER_MESSAGE
    huey = huey_job / MESSAGES
    ours = total["worker_cpu_ms"] - litellm - store - huey
    outside = total["worker_cpu_ms"] - litellm
    name = "overhead per message (zero-latency sim, 1 worker)"
    rows = [
        record(
            name,
            "persisted messages per second",
            total["rate"],
            "msg/s",
            "≥ 120",
            total["rate"] >= 120,
            notes=f"{THREADS} threads, {total['messages']} messages",
        ),
        record(name, "worker CPU per message", total["worker_cpu_ms"], "ms"),
        record(name, "  litellm's call path", litellm, "ms", notes=f"{litellm_call:.2f} ms per call alone"),
        record(name, "  store commit", store, "ms"),
        record(name, "  Huey", huey, "ms", notes=f"{huey_job:.2f} ms per job"),
        record(name, "  engine and gateway (the rest)", ours, "ms"),
        record(name, "everything outside litellm", outside, "ms", "≤ 2", outside <= 2),
    ]
    rows.append(
        record(
            name,
            "worker CPU per message with a provider cap",
            capped["worker_cpu_ms"],
            "ms",
            notes=f"SPARRING_PROVIDER_CONCURRENCY=64 (Redis semaphore); {capped['rate']:.0f} msg/s",
        )
    )
    if total["redis_cpu_ms"] is not None:
        rows.append(record(name, "redis-server CPU per message", total["redis_cpu_ms"], "ms"))
    table("2. Overhead per persisted message", rows)
    return rows


if __name__ == "__main__":
    main()
