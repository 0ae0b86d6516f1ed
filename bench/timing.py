"""What the bench scripts share: timing a callable, run after run."""

from __future__ import annotations

import time
from collections.abc import Callable


def timed(run: Callable[[], object], runs: int, *, warm_up: bool = True) -> list[float]:
    """Seconds taken by each of ``runs`` calls of ``run``, after one untimed call unless
    ``warm_up`` is False (imports, caches and page faults are not what we measure)."""
    if warm_up:
        run()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return times
