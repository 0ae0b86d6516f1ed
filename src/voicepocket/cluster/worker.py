"""The voice-worker deployment: one ``ResidentVoices`` (a byte-budgeted pool) per replica.

A request arrives with its voice's pool key as the multiplexed model id. The
``@serve.multiplexed`` loader only tells Ray that this replica serves that key: it returns
a ``VoiceHandle``, never the session, and loads nothing. The pool loads the voice when a
chunk of it is synthesized (single flight), keeps it within the byte budget, and is the
only owner of sessions; when Ray's own model cache drops a handle, nothing is freed.

Chunks are synthesized one at a time under an inference slot granted round-robin by
owner, and each leases its voice only while it runs: a request waiting for its turn pins
no voice, so a replica that takes over another's streams never runs out of room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from ray import serve

from voicepocket.admission import FairScheduler
from voicepocket.chunks import AudioChunk
from voicepocket.cluster.protocol import Failure, SpeakCall, SpeechHeader
from voicepocket.cluster.shared import SharedState
from voicepocket.engine import Engine
from voicepocket.errors import VoicePocketError
from voicepocket.pool import PoolStats
from voicepocket.registry import Registry
from voicepocket.settings import Settings
from voicepocket.speech import LocalSpeech, ResidentVoices

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


class VoiceWorker:
    """Serves syntheses from this replica's pool."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = Engine(settings, voices=self._resident_voices)
        # The default voice is pinned and warm on every replica: requests for it are not
        # tied to one replica (the ingress sends them without a model id).
        self.engine.start(prewarm=True)
        self.scheduler = FairScheduler(workers=settings.workers)
        # Text preparation and inference run here, never on the replica's event loop;
        # sized so every ongoing request can wait for a slot without starving others.
        self._executor = ThreadPoolExecutor(
            max_workers=settings.cluster_max_ongoing + 4, thread_name_prefix="voice"
        )
        self.shared: SharedState | None = None
        if settings.redis_url:
            self.shared = SharedState(settings.redis_url, prefix=settings.redis_prefix)
            self.shared.listen({"evict": self._evict, "warm": self._warm})
            self.shared.report_every(STATS_INTERVAL_S, self._snapshot)

    def _resident_voices(self, registry: Registry) -> ResidentVoices:
        self.voices = ResidentVoices.for_settings(registry, self.settings)
        return self.voices

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
        try:
            speech = await self._run(lambda: self._open(call))
        except VoicePocketError as error:
            yield Failure.of(error)
            return
        chunks = iter(speech)
        # Work already running in a thread when the ingress cancels (client gone, request
        # retried elsewhere) finishes there; it is awaited before the stream is closed.
        pending: asyncio.Future[AudioChunk | None] | None = None
        try:
            yield SpeechHeader(sample_rate=speech.sample_rate, chunks=tuple(speech.chunks))
            while True:
                pending = asyncio.get_running_loop().run_in_executor(
                    self._executor, self._next_chunk, chunks, call.owner
                )
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
            speech.close()

    async def prewarm(self, call: SpeakCall) -> int:
        """Make the voice resident here and warm it with one short synthesis; returns
        the pool's load count (for tests and logs)."""
        model_id = serve.get_multiplexed_model_id()
        if model_id:
            await self.voice_handle(model_id)
        await self._run(lambda: self.voices.prewarm(call.record))
        return self.voices.stats().loads

    async def stats(self) -> tuple[PoolStats, list[str], int]:
        """This replica's pool stats, resident keys and pid."""
        pool, resident = self._snapshot()
        return pool, resident, os.getpid()

    def _open(self, call: SpeakCall) -> LocalSpeech:
        return self.voices.open(
            call.record, call.text, params=call.params, chunking=call.chunking,
            chunks=call.chunks, start=call.start,
        )  # fmt: skip

    def _next_chunk(self, chunks: Iterator[AudioChunk], owner: str) -> AudioChunk | None:
        with self.scheduler.slot(owner):
            return next(chunks, None)

    async def _run(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    def _evict(self, pool_key: str) -> None:
        _LOGGER.info("Evicting %s (broadcast)", pool_key)
        self.voices.discard(pool_key)

    def _warm(self, voice: str) -> None:
        try:
            self.voices.prewarm(self.engine.registry.voices.resolve(voice, caller=None))
        except VoicePocketError as error:
            _LOGGER.warning("Cannot warm %s: %s", voice, error.message)

    def _snapshot(self) -> tuple[PoolStats, list[str]]:
        return self.voices.stats(), self.voices.pool.resident_keys()

    def __del__(self) -> None:  # pragma: no cover - Ray calls it when a replica stops
        # Ray Serve's documented replica shutdown hook is __del__; the pool itself is
        # closed explicitly here, never through its own finalizer.
        self.engine.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
