"""Adversary strategies, listed once.

``STRATEGIES`` is the one registry: the battle form, the CLI's ``--strategy`` and
``--strategy-param``, validation, the scale form's cost estimate and the docs all read it.
Each strategy is a planner over the battle's committed state (``base``): the four templates
(one prompt, the transcript with roles flipped), and the algorithms ``crescendo``, ``goat``,
``pair`` and ``tap``.
"""

from __future__ import annotations

from collections.abc import Mapping

from sparring.strategies.base import Param, State, Strategy, WorstCase
from sparring.strategies.crescendo import Crescendo
from sparring.strategies.goat import Goat
from sparring.strategies.search import Pair, Tap
from sparring.strategies.templates import OPENING_CUE, TEMPLATES

STRATEGIES: dict[str, Strategy] = {s.name: s for s in (*TEMPLATES, Crescendo(), Goat(), Pair(), Tap())}

DEFAULT_STRATEGY = "direct"

# Every parameter any strategy takes, by name (a name means the same in each strategy).
ALL_PARAMS: dict[str, Param] = {p.name: p for s in STRATEGIES.values() for p in s.params}


def check_params(strategy: str, params: Mapping[str, object]) -> dict[str, int]:
    """``params`` for ``strategy``: known names, whole numbers in range; ValueError says which is wrong."""
    known = {p.name: p for p in STRATEGIES[strategy].params}
    checked: dict[str, int] = {}
    for name, value in params.items():
        if name not in known:
            takes = ", ".join(known) or "none"
            raise ValueError(f"{strategy} takes no parameter {name!r} (it takes: {takes})")
        param = known[name]
        if isinstance(value, bool) or not isinstance(value, int):
            try:
                value = int(str(value).strip())
            except ValueError:
                raise ValueError(f"{name} must be a whole number") from None
        if not param.low <= value <= param.high:
            raise ValueError(f"{name} must be between {param.low} and {param.high}")
        checked[name] = value
    return checked


def params_for(strategy: str, params: Mapping[str, int]) -> dict[str, int]:
    """The subset of ``params`` that ``strategy`` takes (a scale matrix shares one set)."""
    known = {p.name for p in STRATEGIES[strategy].params}
    return {k: v for k, v in params.items() if k in known}


__all__ = [
    "ALL_PARAMS",
    "DEFAULT_STRATEGY",
    "OPENING_CUE",
    "STRATEGIES",
    "Param",
    "State",
    "Strategy",
    "WorstCase",
    "check_params",
    "params_for",
]
