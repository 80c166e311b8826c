"""A small support bot behind an HTTP API, to attack offline: see README.md beside this file."""

from examples.support_bot.bot import Bot, Reply, refund_code, reply
from examples.support_bot.server import make_server

__all__ = ["Bot", "Reply", "make_server", "refund_code", "reply"]
