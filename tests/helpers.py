"""Small helpers shared by tests (``tests/`` is on ``pythonpath``: ``from helpers import ...``)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

LOG_TAIL_BYTES = 2000
"""How much of a child process's log a start-up failure quotes."""


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


def wait_serving(
    process: subprocess.Popen[bytes],
    probe: Callable[[], object],
    *,
    timeout_s: float,
    what: str,
    log: Path,
    not_yet: tuple[type[Exception], ...] = (OSError,),
    interval_s: float = 0.05,
) -> float:
    """``eventually`` for a child process coming up: return (the seconds it took) once
    ``probe()`` is truthy. ``probe`` raising one of ``not_yet`` means "not yet" (nothing
    listens yet); ``process`` exiting ends the wait at once. Either failure is a
    ``RuntimeError`` naming ``what`` and its ``log``, and quoting the log's tail."""

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}; see {log}:\n{_tail(log)}")
        try:
            return bool(probe())
        except not_yet:
            return False

    try:
        return eventually(ready, timeout_s=timeout_s, what=what, interval_s=interval_s)
    except AssertionError as error:
        raise RuntimeError(
            f"{what} not ready in {timeout_s} s; see {log}:\n{_tail(log)}"
        ) from error


def _tail(log: Path) -> str:
    """The end of ``log`` (its last ``LOG_TAIL_BYTES`` bytes), as text."""
    try:
        with log.open("rb") as file:
            file.seek(max(0, log.stat().st_size - LOG_TAIL_BYTES))
            return file.read().decode(errors="replace")
    except OSError as error:
        return f"(log unreadable: {error})"


ERROR_MARKS = ('"level": "error"', '"level": "critical"', "Traceback", " ERROR ")
ERRORS_QUOTED = 40
"""How many of a service's error lines a failed test's report quotes."""


def log_errors(log: Path) -> str:
    """The last ``ERRORS_QUOTED`` lines of ``log`` that record an error (our JSON records
    of level error, Python tracebacks, Ray's ERROR lines): a failed test's report quotes
    them, so a CI failure shows the server's side of it."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError as error:
        return f"(log unreadable: {error})"
    marked = [line for line in lines if any(mark in line for mark in ERROR_MARKS)]
    return "\n".join(marked[-ERRORS_QUOTED:]) or "(no errors logged)"


def metric(client: httpx.Client, name: str) -> float:
    """The value of an unlabelled sample in the server's ``/metrics``."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split(" ")[1])
    raise AssertionError(f"no metric {name}")
