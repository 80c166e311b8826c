"""Who is using this browser session: the signed-in person (``st.user``) and their role.

Sign-in is Streamlit's own (``st.login``, OpenID Connect), on when Streamlit's secrets have an
``[auth]`` section. Without it the app is served on loopback only (or with
SPARRING_ALLOW_ANONYMOUS=1), and the one ``anonymous`` actor is an admin. Every page passes
``actor()`` to the use cases, which check the role themselves.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from sparring import access
from sparring.settings import get_settings

SIGNED_OUT = "signed-out"


def signin_on() -> bool:
    """Streamlit adds ``is_logged_in`` to ``st.user`` exactly when sign-in is configured."""
    return "is_logged_in" in st.user


def actor() -> access.Actor:
    if not signin_on():
        return access.anonymous_actor()
    if not st.user.is_logged_in:
        return access.Actor(SIGNED_OUT, None)
    roles = access.load_roles(get_settings().roles_file)
    return access.signed_in_actor(_email(), _groups(roles.groups_claim), roles)


def _email() -> str:
    """The e-mail the roles file matches; a provider that says it is unverified gets no say in it."""
    email = st.user.get("email")
    if not email or st.user.get("email_verified") is False:
        return f"sub:{st.user.get('sub')}"
    return str(email)


def _groups(claim: str) -> list[str]:
    value: Any = st.user.get(claim) or []
    return [value] if isinstance(value, str) else [str(g) for g in value]
