"""The pool's own logic, driven by a controllable fake loader (events, never sleeps)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import eventually

from voicepocket.errors import CapacityError, VoiceTooLarge
from voicepocket.pool import VoicePool

MB = 1_000_000


class FakeVoice:
    def __init__(self, key: str) -> None:
        self.key = key
        self.closed = False

    def close(self) -> None:
        self.closed = True


class FakeLoader:
    """Counts loads; a load can be held open until ``release`` is set."""

    def __init__(self) -> None:
        self.loads: list[str] = []
        self.voices: dict[str, FakeVoice] = {}
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self._lock = threading.Lock()

    def __call__(self, key: str) -> FakeVoice:
        with self._lock:
            self.loads.append(key)
        self.started.set()
        assert self.release.wait(10)
        voice = FakeVoice(key)
        self.voices[key] = voice
        return voice

    def for_key(self, key: str):  # type: ignore[no-untyped-def]
        return lambda: self(key)


def wait_for_misses(pool: VoicePool[FakeVoice], count: int) -> None:
    """Wait until ``count`` leases have missed: each then waits on a load or for room."""
    eventually(lambda: pool.stats().misses >= count, timeout_s=10, what=f"{count} pool misses")


def use(pool: VoicePool[FakeVoice], loader: FakeLoader, key: str, cost: int = 100 * MB) -> None:
    with pool.lease(key, cost_bytes=cost, load=loader.for_key(key)):
        pass


def test_hit_after_miss_loads_once() -> None:
    pool: VoicePool[FakeVoice] = VoicePool(budget_bytes=1000 * MB)
    loader = FakeLoader()
    use(pool, loader, "a")
    use(pool, loader, "a")
    stats = pool.stats()
    assert (stats.misses, stats.hits, stats.loads) == (1, 1, 1)
    assert stats.resident_bytes == 100 * MB
    assert loader.loads == ["a"]


def test_lru_eviction_by_bytes_in_exact_order() -> None:
    pool: VoicePool[FakeVoice] = VoicePool(budget_bytes=300 * MB)
    loader = FakeLoader()
    for key in ("a", "b", "c"):
        use(pool, loader, key)
    use(pool, loader, "a")  # a is now the most recent
    use(pool, loader, "d", cost=150 * MB)  # needs 150: evicts b then c
    assert pool.resident_keys() == ["a", "d"]
    assert loader.voices["b"].closed and loader.voices["c"].closed
    assert not loader.voices["a"].closed
    assert pool.stats().evictions == 2
    assert pool.stats().resident_bytes == 250 * MB


def test_single_flight_eight_threads_one_load() -> None:
    pool: VoicePool[FakeVoice] = VoicePool(budget_bytes=1000 * MB)
    loader = FakeLoader()
    loader.release.clear()
    got: list[FakeVoice] = []
    all_waiting = threading.Barrier(8)

    def worker() -> None:
        all_waiting.wait()
        with pool.lease("a", cost_bytes=100 * MB, load=loader.for_key("a")) as voice:
            got.append(voice)

    with ThreadPoolExecutor(8) as executor:
        futures = [executor.submit(worker) for _ in range(8)]
        assert loader.started.wait(10)
        wait_for_misses(pool, 8)
        loader.release.set()
        for future in futures:
            future.result(timeout=10)
    assert loader.loads == ["a"]
    assert len(got) == 8 and all(v is got[0] for v in got)
    assert pool.stats().loads == 1
    assert pool.stats().misses == 8


def test_failed_load_is_shared_by_waiters_and_frees_the_reservation() -> None:
    pool: VoicePool[FakeVoice] = VoicePool(budget_bytes=1000 * MB)
    gate = threading.Event()
    called = threading.Event()
    calls: list[int] = []

    def broken() -> FakeVoice:
        calls.append(1)
        called.set()
        gate.wait(10)
        raise RuntimeError("corrupt")

    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with pool.lease("a", cost_bytes=100 * MB, load=broken):
                pass
        except RuntimeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    assert called.wait(10)
    wait_for_misses(pool, 4)
    gate.set()
    for thread in threads:
        thread.join(10)
    assert len(errors) == 4
    assert len(calls) == 1
    stats = pool.stats()
    assert stats.resident_bytes == 0 and stats.load_failures == 1


def test_voice_larger_than_budget_is_refused() -> None:
    pool: VoicePool[FakeVoice] = VoicePool(budget_bytes=100 * MB)
    loader = FakeLoader()
    with pytest.raises(VoiceTooLarge, match="more than the whole pool budget"):
        use(pool, loader, "huge", cost=101 * MB)
    assert loader.loads == []


def test_pinned_voice_is_never_evicted() -> None:
    pool: VoicePool[FakeVoice] = VoicePool(budget_bytes=200 * MB)
    loader = FakeLoader()
    pool.pin("default")
    use(pool, loader, "default")
    for key in ("a", "b", "c"):
        use(pool, loader, key)
    assert "default" in pool.resident_keys()
    assert not loader.voices["default"].closed
    assert pool.resident_keys() == ["default", "c"]


def test_voice_in_use_is_not_evicted_and_load_waits_for_release() -> None:
    pool: VoicePool[FakeVoice] = VoicePool(budget_bytes=100 * MB, wait_s=10)
    loader = FakeLoader()
    holder_has_lease = threading.Event()
    let_go = threading.Event()

    def holder() -> None:
        with pool.lease("a", cost_bytes=100 * MB, load=loader.for_key("a")) as voice:
            holder_has_lease.set()
            assert let_go.wait(10)
            assert not voice.closed, "a was closed under its user"

    def second() -> str:
        with pool.lease("b", cost_bytes=100 * MB, load=loader.for_key("b")) as voice:
            return voice.key

    with ThreadPoolExecutor(2) as executor:
        try:
            held = executor.submit(holder)
            assert holder_has_lease.wait(10)
            waiting = executor.submit(second)
            # b's miss is counted under the pool lock it then waits on for room, so from
            # here on b has either loaded (wrongly) or is waiting for a to be released.
            wait_for_misses(pool, 2)
            assert not loader.voices["a"].closed
            assert loader.loads == ["a"]  # b cannot load while a is in use
            assert not waiting.done()
        finally:
            let_go.set()
        held.result(timeout=10)  # re-raises the holder's own assertions
        assert waiting.result(timeout=10) == "b"
    assert loader.voices["a"].closed
    assert pool.resident_keys() == ["b"]


def test_capacity_error_when_everything_stays_in_use() -> None:
    pool: VoicePool[FakeVoice] = VoicePool(budget_bytes=100 * MB, wait_s=0)
    loader = FakeLoader()
    with (
        pool.lease("a", cost_bytes=100 * MB, load=loader.for_key("a")),
        pytest.raises(CapacityError) as info,
    ):
        use(pool, loader, "b")
    assert info.value.status == 503
    assert loader.loads == ["a"]


def test_discard_while_leased_closes_on_release() -> None:
    pool: VoicePool[FakeVoice] = VoicePool(budget_bytes=1000 * MB)
    loader = FakeLoader()
    with pool.lease("a", cost_bytes=100 * MB, load=loader.for_key("a")) as voice:
        pool.discard("a")
        assert not pool.is_resident("a")
        assert not voice.closed
        assert pool.stats().resident_bytes == 100 * MB  # still in memory under its user
    assert voice.closed
    assert pool.stats().resident_bytes == 0
    use(pool, loader, "a")
    assert loader.loads == ["a", "a"]


def test_prewarm_loads_and_warms_once() -> None:
    pool: VoicePool[FakeVoice] = VoicePool(budget_bytes=1000 * MB)
    loader = FakeLoader()
    warmed: list[str] = []
    pool.prewarm("a", cost_bytes=MB, load=loader.for_key("a"), warm=lambda v: warmed.append(v.key))
    assert warmed == ["a"] and pool.is_resident("a")
    use(pool, loader, "a", cost=MB)
    assert pool.stats().hits == 1


def test_close_closes_idle_voices_and_refuses_new_leases() -> None:
    pool: VoicePool[FakeVoice] = VoicePool(budget_bytes=1000 * MB)
    loader = FakeLoader()
    use(pool, loader, "a")
    pool.close()
    assert loader.voices["a"].closed
    with pytest.raises(CapacityError):
        use(pool, loader, "b")
