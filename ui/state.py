"""What the pages keep in ``st.session_state``, as plain objects.

Defined here rather than in the page scripts because a page script is executed anew on
every run, so a class defined there would be a new class each time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sparring import records as r
from sparring.scale import ScaleInput
from sparring.store import ui_queries
from sparring.strategies.base import rolled_back_by
from sparring.usecases import new_submit_token
from sparring.validation import BattleInput


@dataclass
class HubState:
    """The hub's own session state, kept in one object that callbacks change in place.

    Every ``st.session_state`` access is a point where Streamlit may abandon a callback
    for a newer rerun (a second click). A callback that has just submitted a battle must
    record its id without passing such a point, or the id could be lost.
    """

    kept: dict[str, Any]  # the form's values: widget state is dropped while another page shows
    errors: dict[str, str] = dataclasses.field(default_factory=dict)  # field -> message, from the last Start
    notice: tuple[str, str] | None = None  # ("no_worker" | "error", text) from the last submit
    pending: BattleInput | None = None  # the battle waiting for "Run it here instead"
    profile_errors: dict[str, str] = dataclasses.field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # as listed in this run
    session_ids: list[str] = dataclasses.field(default_factory=list)  # started here (also in the URL), newest first
    rows: ui_queries.HubRows | None = None  # the list as last read, shown while the database is busy
    # The token the Start button is drawn with (bound to its click, so a second click on the same drawn
    # form carries the same token and gets the same battle); a new one once a battle was started.
    form_token: str = dataclasses.field(default_factory=new_submit_token)


@dataclass
class ScaleState:
    """The Scale tests page's session state (the same reasoning as ``HubState``)."""

    kept: dict[str, Any]  # the form's values, restored after a visit to another page
    slots: list[int] = dataclasses.field(default_factory=lambda: [0])  # ids of the custom-agent rows
    errors: dict[str, str] = dataclasses.field(default_factory=dict)  # field -> message, from the last Launch
    notice: tuple[str, str] | None = None  # ("no_worker" | "error", text) from the last submit
    pending: ScaleInput | None = None  # the scale test waiting for "Run it here instead"
    runs: list[ui_queries.RunRow] | None = None  # the list as last read, shown while the database is busy
    form_token: str = dataclasses.field(default_factory=new_submit_token)  # as HubState's

    @property
    def next_slot(self) -> int:
        return max(self.slots, default=-1) + 1


@dataclass
class Transcript:
    """What this session has already read of one battle: each refresh reads only what follows."""

    battle_id: str
    view: r.BattleView | None = None
    messages: list[r.Message] = dataclasses.field(default_factory=list)
    verdicts: dict[int, r.Verdict] = dataclasses.field(default_factory=dict)
    elapsed_s: float | None = None  # as of the last read (ui_queries.ELAPSED)

    @property
    def last_seq(self) -> int:
        return self.messages[-1].seq if self.messages else 0

    @property
    def last_verdict_seq(self) -> int:
        return max(self.verdicts, default=0)

    def add(self, update: ui_queries.BattleUpdate) -> None:
        self.elapsed_s = update.elapsed_s
        for message in update.messages:
            # Committed in order: never a gap or a repeat. A turn's tool messages (part 1, 2, ...)
            # come with its reply (part 0, read last), all of the same seq.
            last = self.messages[-1] if self.messages else None
            following = message.seq == self.last_seq + 1
            same_turn = last is not None and message.seq == last.seq and last.part != 0
            if following or same_turn:
                self.messages.append(message)
                for seq in rolled_back_by(message):  # a roll-back changes rows read before
                    if 0 < seq <= len(self.messages):
                        self.messages[seq - 1] = dataclasses.replace(self.messages[seq - 1], rolled_back=True)
        for verdict in update.verdicts:
            self.verdicts.setdefault(verdict.seq, verdict)
