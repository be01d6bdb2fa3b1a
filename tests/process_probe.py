"""Helpers of the process-lifetime tests: is a pid still a live process (the toolkit's own probe), and waiting
for a condition."""

from __future__ import annotations

import time

from dotamini10.processes import is_alive as alive  # noqa: F401  (the toolkit's own probe, shared by the tests)


def wait_until(condition, timeout: float, poll: float = 0.1) -> bool:
    """Poll ``condition`` every ``poll`` seconds for up to ``timeout`` seconds; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return condition()
