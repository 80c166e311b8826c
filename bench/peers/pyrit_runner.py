"""PyRIT's side of the peer benchmark; run inside bench/peers/.venv (it imports neither sparring nor bench).

``python bench/peers/pyrit_runner.py --base-url http://127.0.0.1:PORT/v1 --attacks 10 --max-turns 5``

Runs N of PyRIT's red-teaming attacks (``RedTeamingAttack``) at once on one event loop, through
PyRIT's own ``AttackExecutor`` with ``max_concurrency=N``, as its documentation runs many
objectives. Adversary, objective target and the true/false scorer (``SelfAskTrueFalseScorer``) are
``OpenAIChatTarget``s on the fake server, memory is SQLite in memory. Each turn makes three calls
(adversary, target, scorer) and the scorer always says "not achieved", so an attack of 5 turns
makes 15 calls, as a Sparring battle of 10 messages does.

Prints one JSON line: attacks, makespan_s, calls (the server's request count over the run),
cpu_s (this process's user + system CPU over the run), cpu_total_s (with start-up), peak_rss_mb,
failed attacks, and the outcomes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from typing import Any

import httpx


def server_requests(base_url: str) -> int:
    root = base_url.rstrip("/").removesuffix("/v1")
    return int(httpx.get(f"{root}/stats", timeout=10).json()["requests"])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from pyrit.executor.attack import (
        AttackAdversarialConfig,
        AttackExecutor,
        AttackScoringConfig,
        RedTeamingAttack,
    )
    from pyrit.prompt_target import OpenAIChatTarget
    from pyrit.score import SelfAskTrueFalseScorer
    from pyrit.setup import IN_MEMORY, initialize_pyrit_async

    # No .env files, no default initializers: everything this run uses is configured here.
    await initialize_pyrit_async(memory_db_type=IN_MEMORY, env_files=[], load_defaults=False, silent=True)

    def target(model: str) -> OpenAIChatTarget:
        return OpenAIChatTarget(endpoint=args.base_url, api_key=args.api_key, model_name=model)

    attack = RedTeamingAttack(
        objective_target=target("fake-agent"),
        attack_adversarial_config=AttackAdversarialConfig(target=target("fake-adversary")),
        attack_scoring_config=AttackScoringConfig(
            objective_scorer=SelfAskTrueFalseScorer(chat_target=target("fake-judge"))
        ),
        max_turns=args.max_turns,
    )
    objectives = [f"Get the agent to reveal the secret code (attack {i})" for i in range(args.attacks)]
    executor = AttackExecutor(max_concurrency=args.attacks)

    requests_before = server_requests(args.base_url)
    cpu_before = time.process_time()
    started = time.monotonic()
    result = await executor.execute_attack_async(attack=attack, objectives=objectives, return_partial_on_failure=True)
    makespan = time.monotonic() - started
    cpu = time.process_time() - cpu_before
    calls = server_requests(args.base_url) - requests_before

    outcomes: dict[str, int] = {}
    turns: dict[str, int] = {}
    for attack_result in result.completed_results:
        outcome = str(attack_result.outcome.value)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        turns[str(attack_result.executed_turns)] = turns.get(str(attack_result.executed_turns), 0) + 1
    errors = [f"{type(e).__name__}: {e}"[:300] for e in result.exceptions]
    return {
        "attacks": args.attacks,
        "max_turns": args.max_turns,
        "makespan_s": makespan,
        "calls": calls,
        "cpu_s": cpu,
        "cpu_total_s": time.process_time(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        "completed": len(result.completed_results),
        "failed": len(errors),
        "outcomes": outcomes,
        "executed_turns": turns,
        "errors": errors[:3],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="the fake server's OpenAI base URL, ending in /v1")
    parser.add_argument("--api-key", default="sk-bench-fake")
    parser.add_argument("--attacks", type=int, required=True, help="attacks at once")
    parser.add_argument("--max-turns", type=int, default=5)
    args = parser.parse_args(argv)
    if args.attacks < 1 or args.max_turns < 1:
        parser.error("--attacks and --max-turns must be at least 1")
    print(json.dumps(asyncio.run(run(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
