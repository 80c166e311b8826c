"""The schema reference (``docs/data.md``) read as sections, for the Data page.

The page shows each documented table and view's own section next to its rows, so the
words a notebook user reads and the ones the app shows are the same file.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

log = logging.getLogger(__name__)

DOC = Path(__file__).resolve().parent.parent / "docs" / "data.md"

Chapter = tuple[str, str, list[tuple[str, str]]]  # (## heading, its text, [(### name, its text), ...])


def read_doc(path: Path = DOC) -> str:
    """The reference's text; '' where it is not installed (logged)."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        log.warning("Could not read %s", path)
        return ""


def doc_sections(text: str) -> tuple[str, list[Chapter]]:
    """(intro, [(## heading, its text, [(### name, its text), ...]), ...]) of a markdown file."""
    intro, *chapters = re.split(r"^## ", text, flags=re.M)
    parsed = []
    for chapter in chapters:
        heading, _, body = chapter.partition("\n")
        lead, *subsections = re.split(r"^### ", body, flags=re.M)
        parsed.append(
            (
                heading.strip(),
                lead.strip(),
                [(part.partition("\n")[0].strip(), part.partition("\n")[2].strip()) for part in subsections],
            )
        )
    return intro.split("\n", 1)[-1].strip(), parsed


def object_docs(text: str) -> dict[str, str]:
    """``### name`` section of every documented table and view, by name."""
    _, chapters = doc_sections(text)
    return {name: body for _, _, subsections in chapters for name, body in subsections}
