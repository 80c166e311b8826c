"""Who may do what: the actor behind every use case, roles, and the secure-serving rule.

An ``Actor`` is an identity (the signed-in person's e-mail, ``cli:<user>`` from a shell,
``anonymous`` on an app without sign-in) and a role. Roles are ordered: a ``viewer`` reads,
a ``launcher`` also launches, cancels and retries battles and scale tests and labels, an
``admin`` also saves profiles, re-judges, uses the SQL box and cancels anyone's work. The
use cases check the role themselves (``sparring.usecases``), so hiding a button is never the
only guard: a refused action raises ``AccessRefused`` naming the role it needs.

The roles file (TOML, path from ``SPARRING_ROLES_FILE``; ``roles.example.toml`` is the
checked-in example) maps e-mail addresses, domains and OIDC groups to roles:

    default_role = "viewer"        # anyone signed in whom nothing below names ("none": no access)
    groups_claim = "groups"        # the ID-token claim holding the person's groups
    [people]   "ana@example.com" = "admin"
    [domains]  "example.com" = "launcher"
    [groups]   "red-team" = "launcher"
    [limits]   person_daily_usd = 20.0, deployment_daily_usd = 200.0
    [limits.people]  "ana@example.com" = 50.0

A person named under ``[people]`` gets that role; otherwise the highest role of their
domain and groups; otherwise ``default_role``.
"""

from __future__ import annotations

import functools
import getpass
import ipaddress
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Role = Literal["viewer", "launcher", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "launcher", "admin")
ANONYMOUS = "anonymous"
ALLOW_ANONYMOUS_SETTING = "SPARRING_ALLOW_ANONYMOUS"


class AccessRefused(PermissionError):
    """The actor's role does not allow the action; the message names the role it needs."""

    def __init__(self, actor: Actor, action: str, needs: Role) -> None:
        super().__init__(
            f"{action} needs the {needs} role; {actor.identity} is {_article(actor.role)} {actor.role}."
            if actor.role
            else f"{action} needs the {needs} role; {actor.identity} has no role here (ask an admin)."
        )
        self.actor = actor
        self.action = action
        self.needs = needs


def _article(role: str) -> str:
    return "an" if role[:1] in "aeiou" else "a"


@dataclass(frozen=True, slots=True)
class Actor:
    identity: str
    role: Role | None  # None: signed in, but the roles file gives this person no access

    def may(self, needs: Role) -> bool:
        return self.role is not None and ROLES.index(self.role) >= ROLES.index(needs)


def require(actor: Actor, needs: Role, action: str) -> None:
    """Return when ``actor`` holds ``needs`` (or a higher role); ``AccessRefused`` otherwise."""
    if not actor.may(needs):
        raise AccessRefused(actor, action, needs)


# -- the roles file ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    person_daily_usd: float | None = None
    deployment_daily_usd: float | None = None
    people: Mapping[str, float] = field(default_factory=dict)

    def for_person(self, identity: str) -> float | None:
        return self.people.get(identity.lower(), self.person_daily_usd)


@dataclass(frozen=True, slots=True)
class Roles:
    default_role: Role | None = "viewer"
    groups_claim: str = "groups"
    people: Mapping[str, Role] = field(default_factory=dict)
    domains: Mapping[str, Role] = field(default_factory=dict)
    groups: Mapping[str, Role] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)

    def role_of(self, email: str, groups: Iterable[str] = ()) -> Role | None:
        email = email.strip().lower()
        if email in self.people:
            return self.people[email]
        found = [self.domains[d] for d in [email.rpartition("@")[2]] if d in self.domains]
        found += [self.groups[g] for g in groups if g in self.groups]
        return max(found, key=ROLES.index) if found else self.default_role


class RolesFileError(ValueError):
    pass


def _role(value: object, where: str) -> Role:
    for role in ROLES:
        if value == role:
            return role
    raise RolesFileError(f"{where}: {value!r} is not a role (use {', '.join(ROLES)})")


def _money(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise RolesFileError(f"{where}: {value!r} is not an amount in dollars (a number, 0 or more)")
    return float(value)


def parse_roles(data: Mapping[str, Any], source: str = "roles file") -> Roles:
    """A parsed roles file; ``RolesFileError`` naming the entry that is wrong."""
    default = data.get("default_role", "viewer")
    tables = {}
    for name in ("people", "domains", "groups"):
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise RolesFileError(f"{source}: [{name}] must be a table")
        tables[name] = {str(k).lower(): _role(v, f"{source}: [{name}] {k}") for k, v in table.items()}
    limits = data.get("limits", {})
    people = limits.get("people", {})
    return Roles(
        default_role=None if default == "none" else _role(default, f"{source}: default_role"),
        groups_claim=str(data.get("groups_claim", "groups")),
        people=tables["people"],
        domains=tables["domains"],
        groups=tables["groups"],
        limits=Limits(
            person_daily_usd=_optional_money(limits, "person_daily_usd", source),
            deployment_daily_usd=_optional_money(limits, "deployment_daily_usd", source),
            people={str(k).lower(): _money(v, f"{source}: [limits.people] {k}") for k, v in people.items()},
        ),
    )


def _optional_money(table: Mapping[str, Any], key: str, source: str) -> float | None:
    return None if key not in table else _money(table[key], f"{source}: [limits] {key}")


@functools.cache
def _load(path: Path, mtime_ns: int) -> Roles:
    with path.open("rb") as handle:
        try:
            data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as error:
            raise RolesFileError(f"{path}: {error}") from None
    return parse_roles(data, str(path))


def load_roles(path: Path | None) -> Roles:
    """The roles file at ``path`` (re-read when it changes); everyone a viewer when there is none."""
    if path is None or not path.exists():
        return Roles()
    return _load(path, path.stat().st_mtime_ns)


# -- actors of each entry point ------------------------------------------------------------


def cli_actor(roles: Roles | None = None) -> Actor:
    """The shell's actor, ``cli:<user>``: whoever runs commands on the host already holds the
    data and the keys, so an admin unless the roles file names ``cli:<user>`` otherwise."""
    identity = f"cli:{getpass.getuser()}"
    named = (roles or Roles()).people.get(identity)
    return Actor(identity, named or "admin")


def anonymous_actor() -> Actor:
    """The actor of an app without sign-in: loopback only (or allowed on purpose), so an admin."""
    return Actor(ANONYMOUS, "admin")


def signed_in_actor(email: str, groups: Iterable[str], roles: Roles) -> Actor:
    return Actor(email.strip().lower(), roles.role_of(email, groups))


# The actor of use cases called without one: ``cli:<user>`` unless the entry point says otherwise
# (the app, once sign-in is on, sets one with no role, so a page that forgot its actor is refused).
_default: list[Actor] = []


def set_default_actor(actor: Actor | None) -> None:
    _default[:] = [actor] if actor else []


def default_actor() -> Actor:
    return _default[0] if _default else cli_actor()


def given(actor: Actor | None) -> Actor:
    """The actor a use case acts for: the one given, else the process's default."""
    return actor or default_actor()


# -- serving securely ----------------------------------------------------------------------


def is_loopback(address: str) -> bool:
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def secrets_files() -> list[Path]:
    """Where Streamlit reads secrets for this app: the user's, the working folder's, the app's."""
    app_dir = Path(__file__).resolve().parents[1]
    names = [Path.home(), Path.cwd(), app_dir]
    return list(dict.fromkeys(folder / ".streamlit" / "secrets.toml" for folder in names))


def signin_configured(secrets_files: Iterable[Path]) -> bool:
    """Whether Streamlit's secrets (the files it reads) configure sign-in: an ``[auth]`` table
    with a redirect URI and a cookie secret (the provider's settings sit beside them)."""
    for path in secrets_files:
        if not path.is_file():
            continue
        with path.open("rb") as handle:
            auth = tomllib.load(handle).get("auth", {})
        if isinstance(auth, dict) and auth.get("redirect_uri") and auth.get("cookie_secret"):
            return True
    return False


def serve_refusal(address: str, *, signin: bool, allow_anonymous: bool) -> str | None:
    """Why the app must not serve on ``address``, in one line; None when it may."""
    if is_loopback(address) or signin or allow_anonymous:
        return None
    return (
        f"Refusing to serve on {address} without sign-in: anyone who reaches the port could launch battles "
        "and read every transcript. Configure sign-in ([auth] in .streamlit/secrets.toml, see README "
        f'"Running for a team"), serve on 127.0.0.1, or set {ALLOW_ANONYMOUS_SETTING}=1 on purpose.'
    )
