"""Back-pressure and fairness: who may start a synthesis, and whose chunk runs next.

Used by the HTTP API and by every cluster worker; the cluster's ingress admits through
``voicepocket.cluster.shared.SharedAdmission``, which implements the same
``AdmissionControl`` protocol with per-key counts shared in Redis.

Admission (per request, at once, never blocking): a request is admitted while the server
has fewer than ``workers + queue_size`` requests admitted and its API key fewer than
``per_key_requests``; otherwise it gets 429 with ``Retry-After``.

Scheduling (per text chunk): at most ``workers`` inference calls run at once. When a slot
frees up it goes to the next *owner* in round-robin order, not to the next chunk in
arrival order, so one owner streaming a book cannot starve another's sentence: each
waits for at most one chunk per other active owner.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from voicepocket.errors import RateLimited


@dataclass(slots=True)
class Ticket:
    """One admitted request; release it exactly once."""

    owner: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    """Unique id (a shared count's member)."""
    released: bool = False


class AdmissionControl(Protocol):
    """Who may start a synthesis now."""

    def admit(self, owner: str) -> Ticket:
        """Admit a request of ``owner`` or raise ``RateLimited`` (or ``CapacityError``)."""
        ...

    def release(self, ticket: Ticket) -> None:
        """End an admitted request (idempotent)."""
        ...

    @property
    def admitted(self) -> int:
        """Requests admitted now (by this process)."""
        ...


class Admission:
    """Counts admitted requests, globally and per owner, in this process."""

    def __init__(self, *, capacity: int, per_owner: int, what: str = "requests") -> None:
        self._capacity = capacity
        self._per_owner = per_owner
        self._what = what
        # Guards the two counters below.
        self._lock = threading.Lock()
        self._admitted = 0
        self._by_owner: dict[str, int] = {}

    def admit(self, owner: str) -> Ticket:
        """Admit a request of ``owner`` or raise ``RateLimited``."""
        with self._lock:
            if self._by_owner.get(owner, 0) >= self._per_owner:
                raise RateLimited(
                    f"Too many {self._what} in flight for this API key "
                    f"(limit {self._per_owner}).",
                    retry_after_s=1.0,
                )
            if self._admitted >= self._capacity:
                raise RateLimited(
                    f"The server is busy: too many {self._what} in flight; retry shortly.",
                    retry_after_s=1.0,
                )
            self._admitted += 1
            self._by_owner[owner] = self._by_owner.get(owner, 0) + 1
        return Ticket(owner)

    def release(self, ticket: Ticket) -> None:
        """End an admitted request (idempotent)."""
        with self._lock:
            if ticket.released:
                return
            ticket.released = True
            self._admitted -= 1
            left = self._by_owner[ticket.owner] - 1
            if left:
                self._by_owner[ticket.owner] = left
            else:
                del self._by_owner[ticket.owner]

    @property
    def admitted(self) -> int:
        """Requests admitted now."""
        with self._lock:
            return self._admitted


class FairScheduler:
    """``workers`` inference slots, handed out round-robin across waiting owners."""

    def __init__(self, *, workers: int) -> None:
        # Guards every field below.
        self._lock = threading.Lock()
        self._free = workers
        # Waiting owners in round-robin order, each with its waiters in arrival order.
        self._waiting: OrderedDict[str, deque[threading.Event]] = OrderedDict()
        self._running = 0

    @contextmanager
    def slot(self, owner: str) -> Iterator[None]:
        """Hold one inference slot for the block (blocks until one is granted)."""
        granted = threading.Event()
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                granted.set()
            else:
                self._waiting.setdefault(owner, deque()).append(granted)
        granted.wait()
        with self._lock:
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                self._hand_over_locked()

    def _hand_over_locked(self) -> None:
        """Give the freed slot to the next owner in turn, or return it to the pool."""
        if not self._waiting:
            self._free += 1
            return
        owner, waiters = next(iter(self._waiting.items()))
        waiters.popleft().set()
        if waiters:
            self._waiting.move_to_end(owner)
        else:
            del self._waiting[owner]

    @property
    def slot_free(self) -> bool:
        """Whether a chunk asking now would run at once (a slot free, nobody waiting)."""
        with self._lock:
            return self._free > 0 and not self._waiting

    @property
    def waiting(self) -> int:
        """Chunks waiting for a slot."""
        with self._lock:
            return sum(len(w) for w in self._waiting.values())

    @property
    def running(self) -> int:
        """Inference calls running now."""
        with self._lock:
            return self._running
