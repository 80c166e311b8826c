"""The benchmarks' synthetic store follows the schema: ``make bench`` starts by building it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import generate


def test_the_synthetic_store_is_built_at_the_current_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generate, "BATTLES", 3_000)  # the scale run alone is 2,000
    monkeypatch.setattr(generate, "MESSAGES_PER_BATTLE", 4)
    built = generate.build(tmp_path / "synthetic.duckdb")
    assert built["battles"] == 3_000
    assert built["messages"] == 3_000 * 4
