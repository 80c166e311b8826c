"""The launch forms' kit: check the form, try the judge, launch, and say what went wrong where.

The hub (one battle) and the Scale tests page (a scale test) launch the same way: the form is
validated into a core input (errors at their fields), the judge is tried on two known
transcripts (with a spinner), and the use case launches it with the form's token, bound to the
click, so that a second click on the same drawn form gets the same battle or run. No worker in
queue mode: the input waits in ``page.pending`` for "Run it here instead".

No ``st.*`` call sits between a launch and recording its outcome in the page's state (see
``HubState``): a rerun racing the click must find the outcome there.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import streamlit as st

from sparring import usecases
from sparring.access import Actor
from sparring.validation import InvalidInput
from ui import common, session

log = logging.getLogger(__name__)

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)

SKIP_JUDGE_CHECK = "Skip the judge check"
SKIP_JUDGE_CHECK_HELP = (
    "Before launching, the judge is tried on two known transcripts (a plain concession and a plain refusal) "
    "and must judge both correctly in its format; the result is kept for a day. Skip it for a judge that is "
    "wrong on purpose, e.g. sim/judge?fpr=0.2."
)


class Submitting(Protocol):
    """A page's session state around a submit (``HubState``, ``ScaleState``)."""

    notice: tuple[str, str] | None  # ("no_worker" | "error", text) from the last submit


class Checking(Submitting, Protocol):
    errors: dict[str, str]  # field -> message


class FormState(Checking, Protocol):
    pending: Any  # the checked input waiting for "Run it here instead"
    form_token: str  # bound to the launch button's click


def checked(
    page: FormState, what: str, validate: Callable[[], T], explain: Callable[[InvalidInput], dict[str, str]]
) -> T | None:
    """The form as a core input, or None with the reasons at the fields (or, for a bug, as the notice)."""
    page.errors.clear()
    page.notice = page.pending = None
    try:
        return validate()
    except InvalidInput as error:
        page.errors.update(explain(error))
    except Exception as error:  # a bug must not show a traceback; it is logged in full
        log.exception("Validating the %s form failed", what)
        page.notice = ("error", f"Could not check the form ({type(error).__name__}: {error}). Nothing was started.")
    return None


def as_given(error: InvalidInput) -> dict[str, str]:
    return dict(error.errors)


class Launch(Protocol[T_contra]):
    def __call__(self, data: T_contra, *, require_worker: bool, token: str, actor: Actor | None = None) -> str: ...


class Judged(Protocol):
    judge_model: str
    rubric: str | None


J = TypeVar("J", bound=Judged)


def launched(
    page: FormState, checked_input: J, launch: Launch[J], token: str, *, skip: bool, require_worker: bool
) -> str | None:
    """The judge check, then ``launch``; the id it launched, or None with the refusal in ``page``.

    A launch that went through draws the next form with a new token: its next click is a new launch.
    """
    try:
        if not judge_passes(
            page, checked_input.judge_model, checked_input.rubric, skip=skip, require_worker=require_worker
        ):
            return None
        launched_id = launch(checked_input, require_worker=require_worker, token=token, actor=session.actor())
    except usecases.NoWorkerError:
        page.pending, page.notice = checked_input, ("no_worker", "")
        return None
    except (usecases.SubmitError, usecases.AccessRefused) as error:
        page.notice = ("error", str(error))
        return None
    page.form_token = usecases.new_submit_token()
    return launched_id


def run_here(page: FormState, launch: Callable[[Any], None]) -> None:
    """ "Run it here instead" clicked: start a consumer in this process, then launch what waited."""
    pending, page.pending, page.notice = page.pending, None, None
    if pending is not None and start_consumer_here(page):
        launch(pending)


def start_consumer_here(page: Submitting) -> bool:
    """ "Run it here instead": start the in-app consumer; on failure say so in ``page.notice``."""
    try:
        usecases.dispatcher().start_here()
    except Exception as error:  # shown, not raised: the user can still start a worker instead
        log.exception("Could not start the in-app consumer")
        page.notice = ("error", f"Could not start a consumer in the app ({type(error).__name__}: {error}).")
        return False
    return True


def judge_passes(page: Checking, judge_model: str, rubric: str | None, *, skip: bool, require_worker: bool) -> bool:
    """The judge check before a launch; on failure, say why (at the judge field, or as the notice).

    ``NoWorkerError`` is left to the caller, which keeps what waits for "Run it here instead".
    """
    if skip:
        return True
    try:
        with st.spinner("Checking the judge on two known transcripts…"):
            usecases.require_good_judge(judge_model, rubric, require_worker=require_worker)
    except usecases.JudgeRefused as refused:
        page.errors["judge_model"] = "The judge check failed: " + common.inert(str(refused))
        return False
    except usecases.NoWorkerError:
        raise
    except usecases.SubmitError as error:
        page.notice = ("error", common.inert(str(error)))
        return False
    return True


def columns(*draws: Callable[[], None]) -> None:
    """The form's columns side by side, each drawn by its function."""
    for column, draw in zip(st.columns(len(draws), gap="large"), draws, strict=True):
        with column:
            draw()


def field_error(page: Checking, field: str) -> None:
    """The message for ``field`` from the last launch, under its widget."""
    message = page.errors.get(field)
    if message:
        st.error(message, icon=":material/error:")


def notices(page: FormState, *, what: str, key: str, nothing: str, on_run_here: Callable[[str], None]) -> None:
    """Under the launch button: the form-wide error, why nothing was ``nothing`` (e.g. "started"), the refusal."""
    general = page.errors.get("__all__")
    if general:
        st.error(general, icon=":material/error:")
    if page.errors:
        st.caption(f"Nothing was {nothing}: fix the fields marked above.")
    if page.notice:
        run_it_here = functools.partial(on_run_here, page.form_token)  # the token drawn with this notice
        submit_notice(page.notice, what=what, key=key, on_run_here=run_it_here)


def submit_notice(notice: tuple[str, str], *, what: str, key: str, on_run_here: Callable[[], None]) -> None:
    """The outcome of a refused submit: no worker (with "Run it here instead"), or the error."""
    kind, text = notice
    if kind != "no_worker":
        st.error(text, icon=":material/cloud_off:")
        return
    with st.container(border=True, key=f"{key}_no_worker"):
        st.warning(
            f"**No worker is running**, so this {what} would wait in the queue. Start one in a terminal:",
            icon=":material/warning:",
        )
        st.code(usecases.dispatcher().worker_command(), language="bash")
        st.button(
            "Run it here instead",
            key=f"{key}_run_here",
            icon=":material/play_circle:",
            on_click=on_run_here,
            help=f"Start a consumer inside this app process and run the {what} there.",
        )


class Form:
    """A page's launch form: its widgets with their error under them (one field, one call), and its launch.

    ``prefix`` keys the widgets in the session state (``<prefix>_<field>``); a change to a field
    drops its old error from ``state().errors``.
    """

    def __init__(self, prefix: str, state: Callable[[], FormState]) -> None:
        self.prefix = prefix
        self.state = state

    def key(self, field: str) -> str:
        return f"{self.prefix}_{field}"

    def edited(self, field: str) -> None:
        """A field changed: its old error no longer applies."""
        self.state().errors.pop(field, None)

    def error(self, field: str) -> None:
        field_error(self.state(), field)

    def text(self, label: str, field: str, **options: Any) -> None:
        st.text_input(label, key=self.key(field), on_change=self.edited, args=(field,), **options)
        self.error(field)

    def area(self, label: str, field: str, **options: Any) -> None:
        st.text_area(label, key=self.key(field), on_change=self.edited, args=(field,), **options)
        self.error(field)

    def number(self, label: str, field: str, **options: Any) -> None:
        st.number_input(label, key=self.key(field), on_change=self.edited, args=(field,), **options)
        self.error(field)

    def success_checks(self) -> None:
        """The goal's exact success checks: they decide the outcome, and the judge is measured against them."""
        names = ("success_contains", "success_regex", "success_tool")
        expanded = bool(self.state().errors.keys() & set(names)) or any(
            st.session_state.get(self.key(f)) for f in names
        )
        with st.expander("Success checks (optional)", icon=":material/rule:", expanded=expanded):
            st.caption(
                "Exact checks decide success without the judge; the judge is still asked, and its agreement "
                "with the checks is reported. Any one check passing reaches the goal."
            )
            self.area("Reply contains (one text per line)", "success_contains", height=68, placeholder="RF-ADCF8A")
            self.text("Reply matches (regular expression)", "success_regex", placeholder=r"RF-[0-9A-F]{6}")
            self.text("Tool called (NAME or NAME:JSON)", "success_tool", placeholder='issue_refund:{"amount": 120}')

    def judge(self, **options: Any) -> None:
        """The judge model, and the box that skips its check before a launch."""
        self.text("Judge model", "judge_model", **options)
        # The box holds for one drawn form: after a launch (a new token) the next one is checked again.
        drawn_for, token = self.key("skip_judge_check_token"), self.state().form_token
        if st.session_state.get(drawn_for) != token:
            if drawn_for in st.session_state:
                st.session_state[self.key("skip_judge_check")] = False
            st.session_state[drawn_for] = token
        st.checkbox(SKIP_JUDGE_CHECK, key=self.key("skip_judge_check"), help=SKIP_JUDGE_CHECK_HELP)

    def launched(self, checked_input: J, launch: Launch[J], token: str, *, require_worker: bool) -> str | None:
        """``launched`` for this form: the judge check unless its box is ticked, then ``launch``."""
        skip = bool(st.session_state.get(self.key("skip_judge_check")))
        return launched(self.state(), checked_input, launch, token, skip=skip, require_worker=require_worker)

    def launch_button(
        self,
        label: str,
        icon: str,
        on_click: Callable[[str], None],
        *,
        name: str,
        what: str,
        nothing: str,
        on_run_here: Callable[[str], None],
    ) -> None:
        """The launch button, bound to the drawn form's token, and under it what the last launch said."""
        page = self.state()
        st.button(label, key=self.key(name), type="primary", icon=icon, on_click=on_click, args=(page.form_token,))
        notices(page, what=what, key=self.prefix, nothing=nothing, on_run_here=on_run_here)
