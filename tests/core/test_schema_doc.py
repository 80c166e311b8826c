"""The schema reference read as sections (``sparring.schema_doc``), as the Data page shows it."""

from __future__ import annotations

from pathlib import Path

from sparring import schema_doc

TEXT = """# Data

The intro.

## Views

Views lead.

### battle_outcomes

One row per battle.

### run_cells

Per cell.

## Notes

Only a lead.
"""


def test_a_reference_splits_into_intro_chapters_and_named_sections() -> None:
    intro, chapters = schema_doc.doc_sections(TEXT)
    assert intro == "The intro."
    assert chapters == [
        ("Views", "Views lead.", [("battle_outcomes", "One row per battle."), ("run_cells", "Per cell.")]),
        ("Notes", "Only a lead.", []),
    ]
    assert schema_doc.object_docs(TEXT) == {"battle_outcomes": "One row per battle.", "run_cells": "Per cell."}


def test_the_installed_reference_documents_the_views_and_a_missing_one_reads_empty(tmp_path: Path) -> None:
    docs = schema_doc.object_docs(schema_doc.read_doc())
    assert {"battle_outcomes", "run_cells", "run_summary"} <= set(docs)
    assert schema_doc.read_doc(tmp_path / "absent.md") == ""
