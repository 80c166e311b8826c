"""``make bench``: all five benchmarks; each prints a table and appends to bench/results.csv."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import coldstart, makespan, overhead, reads, store
from bench.common import machine
from bench.generate import build


def main() -> int:
    info = machine()
    print(f"Machine: {info['cores']} cores, {info['memory_gb']} GB, {info['cpu']}, Python {info['python']}")
    started = time.monotonic()
    big = Path(tempfile.mkdtemp()) / "synthetic.duckdb"
    built = build(big)
    print(
        f"Synthetic store: {built['battles']:,} battles, {built['messages']:,} messages, "
        f"{built['size_mb']} MB, built in {built['seconds']} s"
    )
    makespan.main()
    overhead.main()
    store.main(big)
    reads.main(big)
    coldstart.main()
    # A fresh process: this one has long since imported everything.
    subprocess.run([sys.executable, "-m", "bench.memory"], check=True, cwd=Path(__file__).resolve().parents[1])
    print(f"\nAll benchmarks in {(time.monotonic() - started) / 60:.1f} min; rows appended to bench/results.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
