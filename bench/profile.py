"""Where the worker's CPU goes under load: py-spy, sampling only threads that hold the GIL.

    python -m bench.profile              # sim path: 32 threads, zero-latency sim models
    python -m bench.profile --path http  # real HTTP: 200 threads, openai/... models over
                                         # HTTP to bench.fake_provider (2 s latency)

Each prints the top frames by inclusive share, the shares by part, and the leaves.

Used to find what dominates before optimising (see BENCHMARKS.md); not part of `make bench`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.common import ROOT, FakeProvider, Worker, environment, scalar, wait_for_workers, wait_until

PY_SPY = Path(sys.executable).parent / "py-spy"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--path", choices=["sim", "http"], default="sim")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--threads", type=int, help="worker threads (default 32 on sim, 200 on http)")
    args = parser.parse_args(argv)
    if args.path == "http":
        with FakeProvider(latency_ms=2000) as provider:
            threads = args.threads or 200
            config = {
                "runs": threads * 4,
                "max_messages": 24,
                "agents": [{"model": "openai/fake-agent"}],
                "adversary_model": "openai/fake-adversary",
                "judge_model": "openai/fake-judge",
            }
            extra = {
                **provider.env(),
                "SPARRING_PROVIDER_CONCURRENCY": str(threads + 16),
                "SPARRING_PROVIDER_RATE_LIMIT": "1000000/minute",
            }
            raw = sample(config, threads, args.seconds, extra)
    else:
        config = {"runs": 400, "max_messages": 24, "agents": [{"model": "sim/agent?concede=0"}]}
        raw = sample(config, args.threads or 32, args.seconds, {})
    report(raw, args.top)


def sample(config: dict[str, object], threads: int, seconds: int, extra: dict[str, str]) -> Path:
    """Run ``config`` on one worker of ``threads`` threads and sample it for ``seconds``."""
    out = Path(tempfile.mkdtemp()) / "profile.txt"
    with environment(SPARRING_HEARTBEAT_PERIOD_S="1", **extra):
        from jobs import runs

        worker = Worker(threads)
        try:
            wait_for_workers(1)
            time.sleep(8)
            run_id = runs.submit_run(config)
            wait_until(lambda: (scalar("SELECT count(*) FROM messages") or 0) > threads, 120)
            cpu_before = worker.cpu_seconds()
            calls_before = scalar("SELECT count(*) FROM llm_calls") or 0
            subprocess.run(
                [
                    str(PY_SPY),
                    "record",
                    "--gil",
                    "--pid",
                    str(worker.pid),
                    "--duration",
                    str(seconds),
                    "--format",
                    "raw",
                    "--output",
                    str(out),
                    "--rate",
                    "200",
                ],
                check=True,
                cwd=ROOT,
                capture_output=True,
            )
            cpu = worker.cpu_seconds() - cpu_before
            calls = (scalar("SELECT count(*) FROM llm_calls") or 0) - calls_before
            runs.cancel_run(run_id)
        finally:
            worker.stop()
    print(f"Worker CPU per model call while sampled: {1000 * cpu / max(1, calls):.2f} ms ({calls} calls)")
    return out


PARTS = [
    ("store", ("store/recorder.py", "store/apply.py", "store/db.py", "store/queries.py")),
    ("coordination (Redis)", ("jobs/coord.py", "jobs/runner.py")),
    ("gateway", ("sparring/gateway.py",)),
    ("engine and judge parsing", ("sparring/engine.py", "sparring/judging/prompt.py")),
    ("Huey", ("huey/",)),
]


# Inside litellm's call path, by the innermost of these on the stack (the rest: "litellm, the rest").
LITELLM_PARTS = [
    (
        "OpenAI SDK and httpx (build, send, parse)",
        ("openai/_base_client.py", "openai/_models", "openai/_legacy", "httpx/", "httpcore/"),
    ),
    (
        "litellm's cost and model lookups",
        ("cost_calculator", "get_model_info", "per_call_pricing", "_record_zero_cost"),
    ),
    ("litellm's response metadata", ("response_metadata",)),
    ("litellm's parameters and request shaping", ("get_optional_params", "bridge_check", "get_llm_provider")),
    ("litellm's response building", ("convert_dict_to_response", "convert_to_model_response")),
]


def _litellm_part(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, keys in LITELLM_PARTS:
            if any(key in frame for key in keys):
                return name
    return "litellm, the rest"


def report(raw: Path, top: int = 30) -> None:
    """Print the shares of py-spy's raw stacks: by frame, by part, and the leaves outside litellm."""
    samples = []  # (frames outermost first, count, in litellm)
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        samples.append((frames, int(count), any("litellm/" in frame for frame in frames)))
    total = sum(count for _, count, _ in samples)
    inclusive: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    for frames, count, in_litellm in samples:
        for frame in {f.split(" (")[0] for f in frames}:
            inclusive[frame] += count
        if in_litellm:
            parts["litellm"] += count
            inside[_litellm_part(frames)] += count
            continue
        parts[_part(frames)] += count
        ours = [f for f in frames if "sparring/" in f or "jobs/" in f]
        function, _, where = frames[-1].partition(" (")
        caller = ours[-1].split(" (")[0] if ours else "-"
        leaves[f"{function} ({where.rsplit('/', 1)[-1]}  <- {caller}"] += count
    print(f"{total} samples of GIL-holding threads (raw stacks in {raw}); inclusive share:")
    for frame, count in inclusive.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {frame}")
    shares = ", ".join(f"{name} {100 * count / total:.1f}%" for name, count in parts.most_common())
    print(f"\nShare of GIL-holding samples by part: {shares}")
    within = ", ".join(f"{name} {100 * count / total:.1f}%" for name, count in inside.most_common())
    print(f"Within litellm's call path (shares of all samples): {within}")
    print("\nOutside litellm, by the frame that held the GIL (self share, top 25):")
    for frame, count in leaves.most_common(25):
        print(f"  {100 * count / total:5.1f}%  {frame}")


def _part(frames: list[str]) -> str:
    """The innermost part of our code (or Huey) on the stack."""
    for frame in reversed(frames):
        for name, files in PARTS:
            if any(f in frame for f in files):
                return name
    return "other"


if __name__ == "__main__":
    main()
