"""Spend limits: what a person, and the whole deployment, may spend on model calls per UTC day.

Limits come from the roles file (``[limits]``, per person in ``[limits.people]``) or, when it
sets none, from ``SPARRING_PERSON_DAILY_USD`` and ``SPARRING_DEPLOYMENT_DAILY_USD``. A launch
is refused when its cost upper bound (every battle run to its message cap, as the scale test
form's estimate; a scale test's budget caps it) passes what is left today; a scale test that
reaches a limit while it runs is stopped like one that reaches its budget (``jobs.runs``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparring import access, pricing
from sparring.formatting import format_money
from sparring.settings import get_settings
from sparring.store import Store


@dataclass(frozen=True, slots=True)
class Allowance:
    identity: str
    person_limit: float | None
    person_spent: float
    deployment_limit: float | None
    deployment_spent: float

    @property
    def limited(self) -> bool:
        return self.person_limit is not None or self.deployment_limit is not None

    @property
    def person_left(self) -> float | None:
        return None if self.person_limit is None else max(0.0, round(self.person_limit - self.person_spent, 9))

    @property
    def deployment_left(self) -> float | None:
        return (
            None if self.deployment_limit is None else max(0.0, round(self.deployment_limit - self.deployment_spent, 9))
        )

    @property
    def left(self) -> float | None:
        """What this person may still spend today: the smaller of the two limits' remainders."""
        lefts = [x for x in (self.person_left, self.deployment_left) if x is not None]
        return min(lefts) if lefts else None

    def sentence(self) -> str:
        """What is left today, and of which limit, in a sentence."""
        parts = []
        if self.person_limit is not None:
            parts.append(
                f"you have {format_money(self.person_left or 0.0)} left today "
                f"(spent {format_money(self.person_spent)} of your {format_money(self.person_limit)} a day)"
            )
        if self.deployment_limit is not None:
            parts.append(
                f"the team has {format_money(self.deployment_left or 0.0)} left today "
                f"(spent {format_money(self.deployment_spent)} of {format_money(self.deployment_limit)} a day)"
            )
        return "; ".join(parts) if parts else "no spend limit applies"


def today_utc(now: dt.datetime | None = None) -> dt.datetime:
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def limits_for(identity: str) -> tuple[float | None, float | None]:
    """(per person, per deployment) daily limits in dollars: the roles file's, else the settings'."""
    settings = get_settings()
    limits = access.load_roles(settings.roles_file).limits
    person = limits.for_person(identity)
    deployment = limits.deployment_daily_usd
    return (
        person if person is not None else settings.person_daily_usd,
        deployment if deployment is not None else settings.deployment_daily_usd,
    )


def allowance(store: Store, identity: str) -> Allowance:
    person_limit, deployment_limit = limits_for(identity)
    if person_limit is None and deployment_limit is None:
        return Allowance(identity, None, 0.0, None, 0.0)
    person_spent, deployment_spent = store.spent_since(identity, today_utc())
    return Allowance(identity, person_limit, person_spent, deployment_limit, deployment_spent)


def battle_bound(battle: Mapping[str, Any]) -> float | None:
    """The most one battle (``BattleInput`` fields) may cost, run to its message cap with its
    strategy's worst case; None when a price is unknown."""
    return pricing.estimate_cost([dict(battle)]).usd


def refusal(allowance: Allowance, bound: float | None, what: str) -> str | None:
    """Why a launch whose cost is at most ``bound`` must not start; None when it may."""
    left = allowance.left
    if left is None:
        return None
    if bound is None:
        return (
            f"{what} has a model without a known price, so its cost cannot be bounded, and a spend limit "
            f"applies ({allowance.sentence()}). Use priced models, or give a scale test a budget."
        )
    if bound <= left:
        return None
    return f"{what} could cost up to {format_money(bound)}; {allowance.sentence()}."
