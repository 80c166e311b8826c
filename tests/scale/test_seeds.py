"""Battle seeds: runs with neighbouring base seeds are independent samples; cells of a run are paired.

Measured on the old scheme (battle i got base + i): runs with base seeds 101 and 102 shared 59 of
their 60 battles, so "the same test with another seed" returned the same sample. The checks
below read the seeds the store recorded for real sim scale runs.
"""

from __future__ import annotations

import json
import math

from jobs import embedded, runs
from sparring.scale import LEGACY_SEED_SCHEME, SEED_BITS, SEED_SCHEME, battle_seed, plan_from_config
from tests.helpers import rows, scalar, wait_until

RUNS = 15
BASE_SEEDS = (101, 102, 103)


def shared_beyond_chance(a: list[int], b: list[int], space: int = 2**SEED_BITS, alpha: float = 1e-3) -> bool:
    """Whether two seed lists share more seeds than independent draws from ``space`` would.

    Independent lists of n and m seeds share about Poisson(n·m/space) values; the observed
    overlap is beyond chance when that tail probability is below ``alpha``.
    """
    shared = len(set(a) & set(b))
    expected = len(a) * len(b) / space
    tail = 1 - sum(math.exp(-expected) * expected**k / math.factorial(k) for k in range(shared))
    return tail < alpha


def submit_and_finish(base_seed: int) -> str:
    run_id = runs.submit_run(
        {
            "runs": RUNS,
            "agents": [{"model": "sim/agent?concede=0.2"}, {"model": "sim/agent?concede=0.4"}],
            "max_messages": 2,
            "seed": base_seed,
        },
        require_worker=False,
    )
    wait_until(
        lambda: scalar("SELECT status FROM scale_runs WHERE run_id = ?", [run_id]) == "finished",
        180,
        interval=0.3,
        message=f"run {run_id}",
    )
    return run_id


def recorded_seeds(run_id: str) -> dict[int, list[int]]:
    """The seeds the store recorded for each cell of a run, by replicate."""
    seeds: dict[int, list[int]] = {}
    for cell_index, seed in rows(
        "SELECT cell_index, seed FROM battles WHERE run_id = ? ORDER BY cell_index, replicate", [run_id]
    ):
        seeds.setdefault(cell_index, []).append(seed)
    return seeds


def stored_config(run_id: str) -> dict:
    return json.loads(scalar("SELECT config FROM scale_runs WHERE run_id = ?", [run_id]))


def test_runs_with_neighbouring_base_seeds_share_no_more_seeds_than_chance() -> None:
    embedded.start(threads=4)
    run_ids = [submit_and_finish(base) for base in BASE_SEEDS]
    lists = [recorded_seeds(run_id) for run_id in run_ids]
    for seeds in lists:
        assert len(seeds) == 2 and all(len(cell) == RUNS for cell in seeds.values())
        # the cells of one run share their list, so they stay paired
        assert seeds[0] == seeds[1]
        assert len(set(seeds[0])) == RUNS
    for i in range(len(lists)):
        for j in range(i + 1, len(lists)):
            assert not shared_beyond_chance(lists[i][0], lists[j][0]), (BASE_SEEDS[i], BASE_SEEDS[j])
    # the recorded derivation rebuilds the recorded seeds
    for run_id, seeds, base in zip(run_ids, lists, BASE_SEEDS, strict=True):
        config = stored_config(run_id)
        assert config["seed_scheme"] == SEED_SCHEME and config["base_seed"] == base
        assert plan_from_config(run_id, "x", RUNS, config).seeds() == seeds[0]
    # the old scheme (base + i) fails the same check on the same base seeds
    old = [[battle_seed(base, i, LEGACY_SEED_SCHEME) for i in range(RUNS)] for base in BASE_SEEDS]
    assert shared_beyond_chance(old[0], old[1]) and shared_beyond_chance(old[1], old[2])


def test_runs_recorded_without_a_scheme_keep_their_offset_seeds() -> None:
    embedded.start(threads=4)
    run_id = submit_and_finish(500)
    config = stored_config(run_id)
    del config["seed_scheme"]
    # a run stored before seed schemes existed is rebuilt with the seeds it was given then
    assert plan_from_config(run_id, "x", RUNS, config).seeds() == [500 + i for i in range(RUNS)]
    assert (
        plan_from_config(run_id, "x", RUNS, {**config, "seed_scheme": SEED_SCHEME}).seeds() == recorded_seeds(run_id)[0]
    )


def test_seed_scheme_is_checked() -> None:
    assert battle_seed(7, 3, LEGACY_SEED_SCHEME) == 10
    assert 0 <= battle_seed(7, 3) < 2**SEED_BITS
    try:
        battle_seed(7, 3, "nope")
    except ValueError as error:
        assert "unknown seed scheme 'nope'" in str(error)
    else:
        raise AssertionError("an unknown seed scheme was accepted")
