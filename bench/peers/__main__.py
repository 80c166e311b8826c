"""Side by side with PyRIT: the same red-teaming workload against the same fake server, in one run.

``python -m bench.peers [--battles 200] [--latency-ms 2000]``

One ``bench.fake_provider`` serves both, with a fixed latency. Sparring runs the makespan
benchmark's HTTP case on it (``bench.makespan.run_case``: battles of 10 messages, 15 sequential
``openai/...`` calls each, one worker with as many threads as battles); then PyRIT (pinned in
``bench/peers/requirements.txt``, installed on first use into ``bench/peers/.venv``) runs as many
red-teaming attacks at once, 5 turns of adversary, target and scorer calls each, the scorer always
saying "not achieved": 15 sequential calls as well (``bench/peers/pyrit_runner.py``).

Printed and appended to bench/results.csv: makespan, measured/ideal, CPU per call, calls per
CPU-second and peak RSS for both, and the ratios against the targets of issue 23 (Sparring's calls
per CPU-second at least 3 × PyRIT's, its makespan at most 0.5 × PyRIT's). Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import ROOT, FakeProvider, record, table

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
REQUIREMENTS = HERE / "requirements.txt"
CONSTRAINTS = HERE / "constraints.txt"  # what PyRIT brings, pinned too
RUNNER = HERE / "pyrit_runner.py"
CALLS_PER_BATTLE = 15
MAX_TURNS = 5  # adversary, target and scorer per turn: 15 calls
CALLS_PER_CPU_SECOND_TARGET = 3.0  # Sparring ÷ PyRIT, at least
MAKESPAN_TARGET = 0.5  # Sparring ÷ PyRIT, at most


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> Path:
    """bench/peers/.venv with the pinned requirements, made (or remade) when they changed."""
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes() + CONSTRAINTS.read_bytes()).hexdigest()
    stamp = VENV / ".requirements.sha256"
    if venv_python().exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return venv_python()
    print(f"Installing PyRIT ({REQUIREMENTS.name}) into {VENV.relative_to(ROOT)}: once, a few minutes")
    if VENV.exists():
        shutil.rmtree(VENV)
    base = getattr(sys, "_base_executable", sys.executable)  # not this venv's: the peer's has its own
    subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", str(REQUIREMENTS)],
        check=True,
    )
    stamp.write_text(wanted + "\n")
    return venv_python()


def run_pyrit(python: Path, provider: FakeProvider, attacks: int) -> dict[str, Any]:
    """The runner in its venv, with a throw-away home: PyRIT makes data folders under it on import."""
    home = Path(tempfile.mkdtemp(prefix="bench-pyrit-home-"))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    try:
        provider.stats(reset=True)
        command = [str(python), str(RUNNER), f"--base-url={provider.base_url}", f"--attacks={attacks}"]
        done = subprocess.run(
            [*command, f"--max-turns={MAX_TURNS}"],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the PyRIT runner failed ({done.returncode}):\n{done.stderr[-3000:]}")
        result = dict(json.loads(done.stdout.strip().splitlines()[-1]))
        result["server_peak_in_flight"] = provider.stats().get("peak_in_flight")
        return result
    finally:
        shutil.rmtree(home, ignore_errors=True)


def side_by_side(rows: list[tuple[str, str, str, str]]) -> None:
    headers = ("", "Sparring", "PyRIT 1.1.0", "unit")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=200, help="battles (and PyRIT attacks) at once")
    parser.add_argument("--latency-ms", type=int, default=2000, help="the fake server's latency per call")
    args = parser.parse_args(argv)
    if args.battles < 1 or args.latency_ms < 0:
        parser.error("--battles must be at least 1 and --latency-ms not negative")

    from bench.makespan import run_case

    python = ensure_venv()
    with FakeProvider(args.latency_ms) as provider:
        ours = run_case(args.battles, args.latency_ms, workers=1, threads=args.battles, path="http", provider=provider)
        theirs = run_pyrit(python, provider, args.battles)

    ideal = CALLS_PER_BATTLE * args.latency_ms / 1000  # all at once: one wave
    ours_cpu_s = ours["cpu_ms_per_call"] * ours["calls"] / 1000
    ours_per_cpu_s = ours["calls"] / ours_cpu_s if ours_cpu_s else float("inf")
    theirs_per_cpu_s = theirs["calls"] / theirs["cpu_s"] if theirs["cpu_s"] else float("inf")
    theirs_ratio = theirs["makespan_s"] / ideal if ideal else float("nan")
    theirs_ms_per_call = 1000 * theirs["cpu_s"] / max(1, theirs["calls"])
    cpu_ratio = ours_per_cpu_s / theirs_per_cpu_s
    makespan_ratio = ours["makespan_s"] / theirs["makespan_s"]

    name = f"peers: Sparring vs PyRIT 1.1.0, {args.battles} at once, {args.latency_ms} ms"
    print(f"\n{name} (same fake server, ideal makespan {ideal:.1f} s)")
    side_by_side(
        [
            ("makespan", f"{ours['makespan_s']:.2f}", f"{theirs['makespan_s']:.2f}", "s"),
            ("measured / ideal", f"{ours['ratio']:.2f}", f"{theirs_ratio:.2f}", ""),
            ("CPU per model call", f"{ours['cpu_ms_per_call']:.1f}", f"{theirs_ms_per_call:.1f}", "ms"),
            ("calls per CPU-second", f"{ours_per_cpu_s:.0f}", f"{theirs_per_cpu_s:.0f}", ""),
            ("peak RSS", f"{ours['peak_rss_mb']:.0f}", f"{theirs['peak_rss_mb']:.0f}", "MB"),
            ("calls", str(ours["calls"]), str(theirs["calls"]), ""),
            ("failed", f"{ours['not_held']} battles", f"{theirs['failed']} attacks", ""),
            ("peak calls in flight", str(ours["server_peak_in_flight"]), str(theirs["server_peak_in_flight"]), ""),
        ]
    )
    pyrit = "PyRIT 1.1.0"
    rows = [
        record(name, "Sparring makespan", ours["makespan_s"], "s", notes=f"ideal {ideal:.1f} s"),
        record(name, f"{pyrit} makespan", theirs["makespan_s"], "s", notes=f"ideal {ideal:.1f} s"),
        record(name, "Sparring measured / ideal", ours["ratio"], ""),
        record(name, f"{pyrit} measured / ideal", theirs_ratio, ""),
        record(name, "Sparring CPU per call", ours["cpu_ms_per_call"], "ms", notes="the worker process"),
        record(name, f"{pyrit} CPU per call", theirs_ms_per_call, "ms", notes="the whole PyRIT process"),
        record(name, "Sparring peak RSS", ours["peak_rss_mb"], "MB", notes="the worker process"),
        record(name, f"{pyrit} peak RSS", theirs["peak_rss_mb"], "MB", notes="the whole PyRIT process"),
        record(
            name,
            "calls per CPU-second, Sparring ÷ PyRIT",
            cpu_ratio,
            "×",
            f"≥ {CALLS_PER_CPU_SECOND_TARGET:g}",
            cpu_ratio >= CALLS_PER_CPU_SECOND_TARGET,
            notes=f"{ours_per_cpu_s:.0f} vs {theirs_per_cpu_s:.0f}",
        ),
        record(
            name,
            "makespan, Sparring ÷ PyRIT",
            makespan_ratio,
            "×",
            f"≤ {MAKESPAN_TARGET:g}",
            makespan_ratio <= MAKESPAN_TARGET,
            notes=f"{ours['makespan_s']:.1f} s vs {theirs['makespan_s']:.1f} s",
        ),
        record(
            name,
            "failed",
            ours["not_held"] + theirs["failed"],
            "",
            "0",
            ours["not_held"] + theirs["failed"] == 0,
            notes=f"Sparring {ours['not_held']} battles not held, {pyrit} {theirs['failed']} attacks failed",
        ),
    ]
    table("Peer ratios", rows[-3:])
    print(f"  {pyrit}: outcomes {theirs['outcomes']}, attacks by turns run {theirs['executed_turns']}")
    for error in theirs["errors"]:
        print(f"  {pyrit} error: {error}")
    expected = args.battles * CALLS_PER_BATTLE
    for who, calls in (("Sparring", ours["calls"]), (pyrit, theirs["calls"])):
        if calls != expected:  # a retried or lost call: the two did not do the same work
            print(f"  Note: {who} made {calls} model calls, not {expected}: compare per call, not per run")
    return rows


if __name__ == "__main__":
    main()
