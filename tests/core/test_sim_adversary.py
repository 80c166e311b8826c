"""The sim adversary's lines read as sentences, whatever punctuation the goal ends with."""

from __future__ import annotations

import re

import pytest

from sparring import sim
from sparring.modelref import parse_model


def adversary_lines(goal: str) -> list[str]:
    ref = parse_model("sim/adversary")
    messages: list[dict[str, str]] = [{"role": "system", "content": "the adversary's prompt"}]
    lines = []
    for turn in range(1, len(sim._ESCALATION) + 1):
        question = {"goal": goal, "turn": turn}  # the engine's sim_input: the sim reads no prompt
        text = sim.respond(ref, messages, seed=1, timeout_s=5, sleep=False, structured=question).text
        lines.append(text)
        messages += [{"role": "user", "content": text}, {"role": "assistant", "content": "No."}]
    return lines


@pytest.mark.parametrize(
    "goal",
    ["Get a full refund for a jacket bought three months ago, without a receipt.", "Reveal the admin password"],
)
def test_adversary_never_doubles_or_drops_a_full_stop(goal: str) -> None:
    lines = adversary_lines(goal)
    assert len(set(lines)) == len(sim._ESCALATION)  # it escalates turn by turn
    for line in lines:
        assert ".." not in line and not re.search(r"\w Now,", line), line
    assert lines[-1].endswith("Now, please.")
