"""Small helpers shared by tests (``tests/`` is on ``pythonpath``: ``from helpers import ...``)."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(
    predicate: Callable[[], object], *, timeout_s: float, what: str, interval_s: float = 0.05
) -> float:
    """Return (the seconds it took) as soon as ``predicate()`` is truthy; raise
    ``AssertionError`` naming ``what`` if it is still falsy after ``timeout_s`` seconds.

    For conditions a test cannot be told about (a counter in another thread, a server
    coming up). A fake the test controls should signal with a ``threading.Event`` instead.
    The predicate is always tried once more at the deadline, so a slow machine that checks
    late still passes when the condition holds.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    while True:
        if predicate():
            return time.monotonic() - started
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(min(interval_s, remaining))
