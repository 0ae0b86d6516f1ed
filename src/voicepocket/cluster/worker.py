"""The voice-worker deployment: one Engine (and byte-budgeted pool) per replica.

A request arrives with its voice's pool key as the multiplexed model id. The
``@serve.multiplexed`` loader only tells Ray that this replica serves that key: it returns
a ``VoiceHandle``, never the session, and loads nothing. The pool loads the voice on the
first lease (single flight), keeps it within the byte budget, and is the only owner of
sessions; when Ray's own model cache drops a handle, nothing is freed or closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TypeVar

from ray import serve

from voicepocket.api.admission import FairScheduler
from voicepocket.cluster.protocol import Failure, SpeakCall, SpeechHeader
from voicepocket.cluster.shared import SharedState
from voicepocket.engine import Engine
from voicepocket.errors import VoicePocketError
from voicepocket.pool import PoolStats
from voicepocket.settings import Settings
from voicepocket.text import prepare
from voicepocket.voices import AudioChunk, Voice

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

ROUTED_VOICES_PER_REPLICA = 4096
"""Ray's multiplex cache counts models, not bytes: keep its cap far above what any pool
holds, so it never decides residency (dropping a handle frees nothing anyway)."""

STATS_INTERVAL_S = 0.5
"""How often a replica reports its pool stats to Redis, in seconds."""


@dataclass(frozen=True, slots=True)
class VoiceHandle:
    """What Ray's multiplex cache keeps for a voice: its pool key, not its session."""

    pool_key: str


class _Chunks:
    """A leased voice's remaining chunks, synthesized one per ``next()`` under an
    inference slot granted round-robin by owner. ``close()`` ends the lease whether or
    not synthesis started; never call it while ``next()`` runs."""

    def __init__(
        self,
        iterator: Iterator[AudioChunk],
        *,
        lease: AbstractContextManager[Voice],
        slot: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self._iterator = iterator
        self._lease: AbstractContextManager[Voice] | None = lease
        self._slot = slot

    def next(self) -> AudioChunk | None:
        with self._slot():
            return next(self._iterator, None)

    def close(self) -> None:
        lease, self._lease = self._lease, None
        if lease is None:
            return
        try:
            close = getattr(self._iterator, "close", None)
            if close is not None:
                close()
        finally:
            lease.__exit__(None, None, None)


def _close_when_opened(opening: asyncio.Future[tuple[SpeechHeader, _Chunks]]) -> None:
    """Give back the lease of a synthesis opened after its request was cancelled."""
    if not opening.cancelled() and opening.exception() is None:
        opening.result()[1].close()


class VoiceWorker:
    """Serves syntheses from this replica's pool."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = Engine(settings)
        # The default voice is pinned and warm on every replica: requests for it are not
        # tied to one replica (the ingress sends them without a model id).
        self.engine.start(prewarm=True)
        self.scheduler = FairScheduler(workers=settings.workers)
        # Leases, text preparation and inference run here, never on the replica's event
        # loop; sized so every ongoing request can wait for a slot without starving others.
        self._executor = ThreadPoolExecutor(
            max_workers=settings.cluster_max_ongoing + 4, thread_name_prefix="voice"
        )
        self.shared: SharedState | None = None
        if settings.redis_url:
            self.shared = SharedState(settings.redis_url, prefix=settings.redis_prefix)
            self.shared.listen({"evict": self._evict, "warm": self._warm})
            self.shared.report_every(STATS_INTERVAL_S, self._snapshot)

    @serve.multiplexed(max_num_models_per_replica=ROUTED_VOICES_PER_REPLICA)
    async def voice_handle(self, pool_key: str) -> VoiceHandle:
        """Ray's loader: records that this replica serves ``pool_key``; loads nothing."""
        return VoiceHandle(pool_key)

    async def speak(self, call: SpeakCall) -> AsyncIterator[SpeechHeader | AudioChunk | Failure]:
        """Stream a ``SpeechHeader``, then one ``AudioChunk`` per chunk from
        ``call.start``; a ``VoicePocketError`` ends the stream as a ``Failure``."""
        model_id = serve.get_multiplexed_model_id()
        if model_id:
            await self.voice_handle(model_id)
        loop = asyncio.get_running_loop()
        # Work already running in a thread when the ingress cancels (client gone, request
        # retried elsewhere) finishes there; it is awaited (or cleaned up once done)
        # before the lease is given back, so the two never race.
        opening = loop.run_in_executor(self._executor, self._open, call)
        try:
            header, chunks = await asyncio.shield(opening)
        except VoicePocketError as error:
            yield Failure.of(error)
            return
        except asyncio.CancelledError:
            opening.add_done_callback(_close_when_opened)
            raise
        pending: asyncio.Future[AudioChunk | None] | None = None
        try:
            yield header
            while True:
                pending = loop.run_in_executor(self._executor, chunks.next)
                chunk = await asyncio.shield(pending)
                pending = None
                if chunk is None:
                    return
                yield chunk
        except VoicePocketError as error:
            yield Failure.of(error)
        finally:
            if pending is not None:
                with contextlib.suppress(BaseException):
                    await pending
            await self._run(chunks.close)

    async def prewarm(self, call: SpeakCall) -> int:
        """Make the voice resident here and warm it with one short synthesis; returns
        the pool's load count (for tests and logs)."""
        model_id = serve.get_multiplexed_model_id()
        if model_id:
            await self.voice_handle(model_id)
        await self._run(lambda: self.engine.prewarm(call.record))
        return self.engine.pool.stats().loads

    async def stats(self) -> tuple[PoolStats, list[str], int]:
        """This replica's pool stats, resident keys and pid."""
        pool, resident = self._snapshot()
        return pool, resident, os.getpid()

    def _open(self, call: SpeakCall) -> tuple[SpeechHeader, _Chunks]:
        lease = self.engine.lease(call.record)
        voice = lease.__enter__()
        try:
            if call.chunks is None:
                chunks = tuple(
                    prepare(
                        call.text,
                        symbols=voice.symbols,
                        max_chunk_chars=self.settings.max_chunk_chars,
                        first_chunk_chars=call.first_chunk_chars,
                        language=getattr(voice, "language", "en"),
                    )
                )
            else:
                chunks = call.chunks
        except BaseException:
            lease.__exit__(None, None, None)
            raise
        header = SpeechHeader(sample_rate=voice.sample_rate, chunks=chunks)
        todo = _Chunks(
            iter(voice.synthesize(list(chunks[call.start :]), call.params)),
            lease=lease,
            slot=lambda: self.scheduler.slot(call.owner),
        )
        return header, todo

    async def _run(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    def _evict(self, pool_key: str) -> None:
        _LOGGER.info("Evicting %s (broadcast)", pool_key)
        self.engine.pool.discard(pool_key)

    def _warm(self, voice: str) -> None:
        try:
            record = self.engine.registry.resolve(voice, caller=None)
            self.engine.prewarm(record)
        except VoicePocketError as error:
            _LOGGER.warning("Cannot warm %s: %s", voice, error.message)

    def _snapshot(self) -> tuple[PoolStats, list[str]]:
        return self.engine.pool.stats(), self.engine.pool.resident_keys()

    def __del__(self) -> None:  # pragma: no cover - Ray calls it when a replica stops
        # Ray Serve's documented replica shutdown hook is __del__; the pool itself is
        # closed explicitly here, never through its own finalizer.
        self.engine.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
