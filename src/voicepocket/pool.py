"""The resident voice pool: voices kept loaded within a byte budget.

Owns which voices are in memory. A caller leases a voice (``with pool.lease(...)``); a
leased voice is never evicted or closed under its user. A miss loads the voice once even
when many threads ask at the same time (single flight), after evicting least-recently-used
idle voices until the new one fits. Costs are each voice's measured resident bytes (see
``voicepocket.voices.probe``), not file sizes. Pinned voices (the default voice) are never
evicted. The pool knows nothing of HTTP, formats or where voices come from: the caller
passes a ``load`` callable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from voicepocket.errors import CapacityError, VoiceTooLarge

_LOGGER = logging.getLogger(__name__)


class Closeable(Protocol):
    def close(self) -> None: ...


V = TypeVar("V", bound=Closeable)


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of the pool's counters."""

    hits: int
    """Leases served by a resident voice."""

    misses: int
    """Leases that found the voice not resident (waiting on another's load included)."""

    loads: int
    """Voices loaded."""

    load_failures: int
    """Loads that raised."""

    evictions: int
    """Voices evicted to make room (explicit discards not included)."""

    load_seconds: float
    """Total time spent loading, in seconds."""

    resident_bytes: int
    """Cost of every voice in memory: resident, loading, or discarded but still leased."""

    budget_bytes: int
    """The byte budget."""

    resident_voices: int
    """Voices resident and leasable."""

    in_use: int
    """Leases currently held."""


@dataclass(slots=True, eq=False)
class _Entry(Generic[V]):
    voice: V
    cost: int
    leases: int = 0
    retired: bool = False
    """Discarded while leased: closed when its last lease ends."""


@dataclass(slots=True)
class _Counters:
    hits: int = 0
    misses: int = 0
    loads: int = 0
    load_failures: int = 0
    evictions: int = 0
    load_seconds: float = 0.0


@dataclass(slots=True)
class _Loading:
    future: Future[None] = field(default_factory=Future)
    discarded: bool = False
    """The voice was discarded while loading: close it instead of keeping it."""


class VoicePool(Generic[V]):
    """Voices resident under a byte budget, LRU-evicted, loaded once per miss."""

    def __init__(self, *, budget_bytes: int, wait_s: float = 30.0) -> None:
        self.budget_bytes = budget_bytes
        self._wait_s = wait_s
        # Guards every field below; voices are loaded and closed outside it.
        self._lock = threading.Lock()
        # Signalled whenever bytes may have become free (a lease ended, a load failed).
        self._freed = threading.Condition(self._lock)
        # Resident voices by key, least recently used first.
        self._entries: OrderedDict[str, _Entry[V]] = OrderedDict()
        # Loads in flight by key, so concurrent misses wait on one load.
        self._loading: dict[str, _Loading] = {}
        # Bytes reserved for loads in flight and discarded-but-leased voices.
        self._reserved_bytes = 0
        self._pinned: set[str] = set()
        self._counters = _Counters()
        self._closed = False

    @contextmanager
    def lease(self, key: str, *, cost_bytes: int, load: Callable[[], V]) -> Iterator[V]:
        """Hold voice ``key`` for the duration of the block, loading it on a miss."""
        entry = self._acquire(key, cost_bytes, load)
        try:
            yield entry.voice
        finally:
            self._release(entry)

    def prewarm(
        self, key: str, *, cost_bytes: int, load: Callable[[], V], warm: Callable[[V], object]
    ) -> None:
        """Make ``key`` resident and run ``warm`` on it once (e.g. one short synthesis)."""
        with self.lease(key, cost_bytes=cost_bytes, load=load) as voice:
            warm(voice)

    def pin(self, key: str) -> None:
        """Never evict ``key`` (it may be loaded before or after pinning)."""
        with self._lock:
            self._pinned.add(key)

    def unpin(self, key: str) -> None:
        """Let ``key`` be evicted again."""
        with self._lock:
            self._pinned.discard(key)

    def is_resident(self, key: str) -> bool:
        """Whether ``key`` is loaded and leasable now."""
        with self._lock:
            return key in self._entries

    def discard(self, key: str) -> None:
        """Forget ``key`` (its voice was deleted): closed now, or when its last lease ends."""
        with self._lock:
            self._pinned.discard(key)
            loading = self._loading.get(key)
            if loading is not None:
                loading.discarded = True
            entry = self._entries.pop(key, None)
            if entry is None:
                return
            if entry.leases:
                entry.retired = True
                self._reserved_bytes += entry.cost
                return
        self._close(key, entry.voice)
        with self._lock:
            self._freed.notify_all()

    def stats(self) -> PoolStats:
        """The counters now."""
        with self._lock:
            c = self._counters
            return PoolStats(
                hits=c.hits,
                misses=c.misses,
                loads=c.loads,
                load_failures=c.load_failures,
                evictions=c.evictions,
                load_seconds=c.load_seconds,
                resident_bytes=self._used_bytes_locked(),
                budget_bytes=self.budget_bytes,
                resident_voices=len(self._entries),
                in_use=sum(e.leases for e in self._entries.values()),
            )

    def resident_keys(self) -> list[str]:
        """Resident keys, least recently used first."""
        with self._lock:
            return list(self._entries)

    def close(self) -> None:
        """Close every idle voice and refuse new leases; leased voices close on release."""
        with self._lock:
            self._closed = True
            idle = [(k, e) for k, e in self._entries.items() if not e.leases]
            for entry in self._entries.values():
                if entry.leases:
                    entry.retired = True
                    self._reserved_bytes += entry.cost
            self._entries.clear()
        for key, entry in idle:
            self._close(key, entry.voice)

    # -- acquiring -------------------------------------------------------------------

    def _acquire(self, key: str, cost: int, load: Callable[[], V]) -> _Entry[V]:
        counted_miss = False
        while True:
            with self._lock:
                if self._closed:
                    raise CapacityError("The voice pool is shutting down.")
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                    entry.leases += 1
                    if not counted_miss:
                        self._counters.hits += 1
                    return entry
                if not counted_miss:
                    self._counters.misses += 1
                    counted_miss = True
                loading = self._loading.get(key)
                if loading is None:
                    evicted = self._reserve_locked(key, cost)
                    loading = self._loading[key] = _Loading()
                    break
            # Another thread is loading this voice: wait for it (its failure is ours), then
            # look again.
            loading.future.result()
        for evicted_key, evicted_entry in evicted:
            self._close(evicted_key, evicted_entry.voice)
        return self._load(key, cost, load, loading)

    def _reserve_locked(self, key: str, cost: int) -> list[tuple[str, _Entry[V]]]:
        """Make room for ``cost`` bytes and reserve them; return what was evicted."""
        if cost > self.budget_bytes:
            raise VoiceTooLarge(
                f"Voice {key} needs {cost / 1e6:.0f} MB resident, more than the whole pool "
                f"budget of {self.budget_bytes / 1e6:.0f} MB."
            )
        evicted: list[tuple[str, _Entry[V]]] = []
        deadline = time.monotonic() + self._wait_s
        while self._used_bytes_locked() + cost > self.budget_bytes:
            victim = self._least_recent_idle_locked()
            if victim is not None:
                evicted.append((victim, self._entries.pop(victim)))
                self._counters.evictions += 1
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CapacityError(
                    "Every resident voice is in use; no room to load another right now.",
                    retry_after_s=1.0,
                )
            self._freed.wait(remaining)
        self._reserved_bytes += cost
        return evicted

    def _least_recent_idle_locked(self) -> str | None:
        for key, entry in self._entries.items():
            if not entry.leases and key not in self._pinned:
                return key
        return None

    def _used_bytes_locked(self) -> int:
        return sum(e.cost for e in self._entries.values()) + self._reserved_bytes

    def _load(self, key: str, cost: int, load: Callable[[], V], loading: _Loading) -> _Entry[V]:
        started = time.perf_counter()
        try:
            voice = load()
        except BaseException as exc:
            with self._lock:
                self._counters.load_failures += 1
                self._reserved_bytes -= cost
                del self._loading[key]
                self._freed.notify_all()
            loading.future.set_exception(exc)
            raise
        elapsed = time.perf_counter() - started
        _LOGGER.info("Loaded voice %s in %.2f s (%d MB)", key, elapsed, cost // 10**6)
        with self._lock:
            self._reserved_bytes -= cost
            del self._loading[key]
            self._counters.loads += 1
            self._counters.load_seconds += elapsed
            entry = _Entry(voice=voice, cost=cost, leases=1)
            if loading.discarded or self._closed:
                entry.retired = True
                self._reserved_bytes += cost
            else:
                self._entries[key] = entry
        loading.future.set_result(None)
        return entry

    # -- releasing -------------------------------------------------------------------

    def _release(self, entry: _Entry[V]) -> None:
        with self._lock:
            entry.leases -= 1
            close_now = entry.retired and not entry.leases
            if close_now:
                self._reserved_bytes -= entry.cost
            self._freed.notify_all()
        if close_now:
            self._close("(discarded)", entry.voice)

    @staticmethod
    def _close(key: str, voice: V) -> None:
        try:
            voice.close()
        except Exception:
            _LOGGER.exception("Closing voice %s failed", key)
