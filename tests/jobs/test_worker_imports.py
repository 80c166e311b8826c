"""A worker stays lean: running battles imports neither pyarrow, pandas nor scipy.

pyarrow alone cost a worker about 50 MB of resident memory (BENCHMARKS.md, benchmark 5).
The battle runs in a fresh interpreter, so that what other tests imported does not count.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys
    import jobs.tasks, jobs.worker  # what a worker imports before its first battle
    from sparring import usecases

    battle = usecases.create_battle({"agent_model": "sim/agent?concede=0", "max_messages": 40})
    usecases.run_inline(battle)
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"pyarrow", "pandas", "scipy"})
    print("heavy:", heavy)
    """
)


def test_a_worker_running_a_battle_does_not_import_pyarrow_pandas_or_scipy(tmp_path: Path) -> None:
    env = {**os.environ, "SPARRING_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "heavy: []" in result.stdout, result.stdout
