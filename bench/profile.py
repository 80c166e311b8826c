"""Where the worker's CPU goes under load: py-spy, sampling only threads that hold the GIL.

    python -m bench.profile            # prints the top frames by inclusive share

Used to find what dominates before optimising (see BENCHMARKS.md); not part of `make bench`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.common import ROOT, Worker, environment, scalar, wait_for_workers, wait_until

PY_SPY = Path(sys.executable).parent / "py-spy"


def main(seconds: int = 20, top: int = 30) -> None:
    out = Path(tempfile.mkdtemp()) / "profile.txt"
    with environment(SPARRING_HEARTBEAT_PERIOD_S="1"):
        from jobs import runs

        worker = Worker(32)
        try:
            wait_for_workers(1)
            time.sleep(8)
            run_id = runs.submit_run({"runs": 400, "max_messages": 24, "agents": [{"model": "sim/agent?concede=0"}]})
            wait_until(lambda: (scalar("SELECT count(*) FROM messages") or 0) > 200, 120)
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
            runs.cancel_run(run_id)
        finally:
            worker.stop()
    report(out, top)


PARTS = [
    ("store", ("store/recorder.py", "store/apply.py", "store/db.py", "store/queries.py")),
    ("coordination (Redis)", ("jobs/coord.py", "jobs/runner.py")),
    ("gateway", ("sparring/gateway.py",)),
    ("engine and judge parsing", ("sparring/engine.py", "sparring/judging/prompt.py")),
    ("Huey", ("huey/",)),
]


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
    for frames, count, in_litellm in samples:
        for frame in {f.split(" (")[0] for f in frames}:
            inclusive[frame] += count
        if in_litellm:
            parts["litellm"] += count
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
