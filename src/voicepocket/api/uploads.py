"""Heavy per-request work off the request path: voice uploads (probe, coqui compile) and
recording checks run on threads of their own, a bounded number at once, each API key
with a few in flight at most (429 beyond). Key checks, listings and speech use the
default thread pool and never wait behind them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio
import anyio.to_thread

from voicepocket.admission import Admission

T = TypeVar("T")


class HeavyWork:
    """Who may start an upload or a recording check now, and the threads they run on."""

    def __init__(self, *, workers: int, queue: int, per_owner: int) -> None:
        self._admission = Admission(capacity=workers + queue, per_owner=per_owner,
                                    what="uploads")  # fmt: skip
        self._workers = workers
        self._limiter: anyio.CapacityLimiter | None = None

    @asynccontextmanager
    async def admitted(self, owner: str) -> AsyncIterator[None]:
        """Hold one of ``owner``'s slots for the block (429 at once when none is left),
        from the first byte of the upload read to the answer, however the client leaves."""
        ticket = self._admission.admit(owner)
        try:
            yield
        finally:
            self._admission.release(ticket)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on one of ``workers`` threads; a cancelled caller still waits for
        it to end, so its slot is held until the work is really done."""
        if self._limiter is None:  # created in the event loop that uses it
            self._limiter = anyio.CapacityLimiter(self._workers)
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    @property
    def in_flight(self) -> int:
        """Uploads and recording checks admitted now."""
        return self._admission.admitted
