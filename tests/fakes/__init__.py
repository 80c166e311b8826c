"""Stand-ins for outside services, run for real on 127.0.0.1 (no mocks of our own code)."""
