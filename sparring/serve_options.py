"""``python -m sparring serve``'s options and its refusal, without the rest of the command line.

``python -m sparring serve`` reads its two options here rather than through ``sparring.cli``,
whose imports (the battle options, their validation, the store) take about half a second:
Streamlit answers that much sooner, and ``jobs.serve`` loads the rest once it does. The
full command line (``sparring.cli``) adds the same options to its ``serve`` command.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

PROG = "python -m sparring serve"
DESCRIPTION = (
    "Serve the app. In embedded mode (no REDIS_URL) this process also runs battles, "
    "starting at once: queued or interrupted work resumes without waiting for a browser to open a page."
)


def port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r} (use 1 to 65535)")
    return int(text)


def address(text: str) -> str:
    if not text or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"not an address: {text!r} (e.g. 127.0.0.1, 0.0.0.0 or a host name)")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=port, default=8501, help="Port to listen on (default 8501).")
    parser.add_argument(
        "--address",
        type=address,
        default="127.0.0.1",
        help="Address to listen on (default 127.0.0.1: this machine only). Any other address, e.g. 0.0.0.0, "
        "needs sign-in configured ([auth] in .streamlit/secrets.toml) or SPARRING_ALLOW_ANONYMOUS=1.",
    )


def refusal(address: str) -> str | None:
    """Why the app must not serve on ``address``, in one line; None when it may."""
    from sparring import access
    from sparring.settings import get_settings

    signin = access.signin_configured(access.secrets_files())
    return access.serve_refusal(address, signin=signin, allow_anonymous=get_settings().allow_anonymous)


class _Refused(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Refused(f"{self.prog}: {message}")


def main(argv: Sequence[str], serve: Callable[[int, str], int]) -> int:
    """Parse ``argv`` (what follows ``serve``), check the address, then ``serve(port, address)``.

    Bad options or a refused address: one line on stderr and exit code 2, as ``sparring.cli``.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")  # as sparring.cli
    parser = _Parser(prog=PROG, description=DESCRIPTION)
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
        refused = refusal(args.address)
        if refused:
            raise _Refused(refused)
    except _Refused as error:
        print(str(error).splitlines()[0], file=sys.stderr)
        return 2
    return serve(args.port, args.address)
