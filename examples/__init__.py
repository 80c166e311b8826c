"""Sample agents to attack, offline (``examples/support_bot``)."""
