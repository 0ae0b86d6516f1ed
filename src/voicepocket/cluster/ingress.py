"""The ingress deployment: the same FastAPI app, with a speech backend that runs on the
voice workers.

``ClusterEngine`` is an ``Engine`` whose voices live elsewhere: the registry, keys,
syntheses, jobs and audio store are the same shared SQL database and object storage as
everywhere, but ``speak()`` streams from a worker replica chosen by Ray for the voice's
pool key, ``prewarm()`` warms it there, and ``discard()`` broadcasts the eviction to every
worker. The API code above it (admission, fair scheduling, encoding, storage) is the one
the single-process service runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from ray.exceptions import ObjectLostError, RayActorError
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from voicepocket.api.admission import FairScheduler
from voicepocket.api.app import build_services, create_app
from voicepocket.api.state import Services
from voicepocket.cluster.protocol import Failure, SpeakCall, SpeechHeader
from voicepocket.cluster.shared import SharedAdmission, SharedState
from voicepocket.engine import Engine
from voicepocket.errors import CapacityError, EngineError
from voicepocket.pool import PoolStats, VoicePool
from voicepocket.registry import VoiceRecord
from voicepocket.settings import Settings
from voicepocket.voices import AudioChunk, SynthesisParams, Voice

_LOGGER = logging.getLogger(__name__)

RETRIES = 2
"""Resumed attempts a synthesis gets after losing its worker: the first usually succeeds;
the second covers a retry the router sent to the dead replica before it learned of the
death."""

RETRY_PAUSE_S = 0.25
"""Pause before each retry, doubled every time: time for the router to mark the replica."""


class WorkerLost(CapacityError):
    """A worker replica was lost more often than a synthesis retries."""


class StreamEndedEarly(EngineError):
    """A worker's stream ended before its last chunk (a worker dying can end it so)."""


LOSSES = (RayActorError, ObjectLostError, BackPressureError, StreamEndedEarly)
"""What a handle raises, itself or as the cause of what it raises, when a replica is lost."""


def is_worker_loss(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) means the replica serving a call died, is
    unreachable or cannot take the call, as opposed to the worker reporting a fault."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, LOSSES):
            return True
        seen = seen.__cause__
    return False


class RemoteSpeech:
    """A synthesis running on a worker replica, shaped like ``engine.Speech``: every input
    error surfaced before the first sample (the worker answers with a header first).

    A worker lost in flight costs a retry, on another replica, resuming at the first chunk
    not yet received (up to ``RETRIES`` times); one more loss is a 503 with
    ``Retry-After`` before the first chunk, a cut stream after it."""

    def __init__(
        self, *, record: VoiceRecord, call: SpeakCall, workers: DeploymentHandle, model_id: str
    ) -> None:
        self.record = record
        self._call = call
        self._workers = workers
        self._model_id = model_id
        self._retries = 0
        self._received = 0
        """Chunks received so far: where a retry resumes."""
        self.chunks: list[str] = []
        self._stream: DeploymentResponseGenerator[Any] | None = None
        header = self._open()
        self.sample_rate = header.sample_rate
        self.chunks = list(header.chunks)

    def _open(self) -> SpeechHeader:
        """Start the call on a replica (after a loss, resumed at the first chunk not yet
        received) and read its header."""
        while True:
            call = self._call
            if self.chunks:
                call = call.resume(tuple(self.chunks), self._received)
            handle = self._workers.options(stream=True, multiplexed_model_id=self._model_id)
            self._stream = handle.speak.remote(call)
            try:
                item = self._next()
            except Exception as exc:
                self._lost(exc)
                continue
            if not isinstance(item, SpeechHeader):
                raise EngineError("The voice worker answered out of turn.")
            return item

    def _next(self) -> Any:
        assert self._stream is not None
        try:
            item = next(self._stream)
        except StopIteration as exc:
            raise StreamEndedEarly("The voice worker ended the stream early.") from exc
        if isinstance(item, Failure):
            raise item.error()
        return item

    def _lost(self, exc: Exception) -> None:
        """Re-raise ``exc`` unless it is a lost worker; else count the retry (a 503 once
        they are spent) and pause before it."""
        if not is_worker_loss(exc):
            raise exc
        if self._retries == RETRIES:
            raise WorkerLost("A voice worker was lost; retry shortly.", retry_after_s=2.0) from exc
        self._retries += 1
        _LOGGER.warning(
            "Voice worker lost (%s: %s); retry %d of %d at chunk %d",
            type(exc).__name__, exc, self._retries, RETRIES, self._received,
        )  # fmt: skip
        time.sleep(RETRY_PAUSE_S * 2 ** (self._retries - 1))

    def __iter__(self) -> Iterator[AudioChunk]:
        try:
            while self._received < len(self.chunks):
                try:
                    item = self._next()
                except Exception as exc:
                    self._lost(exc)
                    self._open()
                    continue
                self._received += 1
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop the worker's synthesis if it is still running (idempotent)."""
        stream, self._stream = self._stream, None
        if stream is not None and self._received < len(self.chunks):
            stream.cancel()

    def __enter__(self) -> RemoteSpeech:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ClusterPool(VoicePool[Voice]):
    """The ingress's view of the worker pools: it holds no voice itself. Stats are the
    sum of the replicas' reports in Redis; without Redis, only what the ingress saw."""

    def __init__(self, shared: SharedState | None, *, budget_bytes: int) -> None:
        super().__init__(budget_bytes=budget_bytes)
        self._shared = shared
        self.warm: set[str] = set()
        """Keys a worker confirmed warm to this ingress (pinned, or prewarmed)."""

    def stats(self) -> PoolStats:
        if self._shared is None:
            return super().stats()
        replicas = self._shared.replicas()
        totals = {name: 0 for name in PoolStats.__slots__}  # type: ignore[attr-defined]
        totals["load_seconds"] = 0.0
        for replica in replicas:
            for name in totals:
                totals[name] += getattr(replica.pool, name)
        return PoolStats(**totals)

    def is_resident(self, key: str) -> bool:
        if key in self.warm:
            return True
        return self._shared is not None and any(
            key in replica.resident for replica in self._shared.replicas()
        )


class ClusterEngine(Engine):
    """An ``Engine`` whose voices are resident on the worker replicas."""

    def __init__(
        self, settings: Settings, *, workers: DeploymentHandle, shared: SharedState | None
    ) -> None:
        super().__init__(settings)
        self.workers = workers
        self.shared = shared
        self.pool = ClusterPool(shared, budget_bytes=settings.pool_bytes * settings.cluster_workers)

    def start(self, *, prewarm: bool = False) -> None:
        """Migrate (a no-op once ``serve --cluster`` prepared the database) and wait for a
        worker: each replica holds the default voice pinned and warm once it is up."""
        super().start(prewarm=False)
        started = time.perf_counter()
        self.workers.stats.remote().result(timeout_s=600)
        assert isinstance(self.pool, ClusterPool) and self.default_pool_key is not None
        self.pool.warm.add(self.default_pool_key)
        _LOGGER.info("Voice workers answered in %.1f s", time.perf_counter() - started)

    def speak(  # type: ignore[override]
        self,
        voice: str,
        text: str,
        *,
        caller: str | None = None,
        params: SynthesisParams | None = None,
        first_chunk_chars: int | None = None,
        max_chars: int | None = -1,
    ) -> RemoteSpeech:
        self.check_length(text, max_chars)
        record = self.registry.resolve(voice, caller=caller)
        call = SpeakCall(
            record=record,
            owner=caller or record.owner,
            text=text,
            params=params or SynthesisParams(),
            first_chunk_chars=first_chunk_chars,
        )
        return RemoteSpeech(
            record=record, call=call, workers=self.workers, model_id=self.model_id(record)
        )

    def prewarm(self, record: VoiceRecord) -> None:
        """Load ``record`` on the worker Ray routes it to, and warm it there."""
        call = SpeakCall(record=record, owner=record.owner, text="",
                         params=SynthesisParams(), first_chunk_chars=None)  # fmt: skip
        handle = self.workers.options(multiplexed_model_id=self.model_id(record))
        handle.prewarm.remote(call).result(timeout_s=600)
        assert isinstance(self.pool, ClusterPool)
        self.pool.warm.add(record.pool_key)

    def discard(self, pool_key: str) -> None:
        """Every worker replica evicts ``pool_key`` now (through Redis). Without Redis a
        stale copy stays until its pool evicts it: requests for it already get 404 from
        the registry, and a replaced voice has a new pool key."""
        assert isinstance(self.pool, ClusterPool)
        self.pool.warm.discard(pool_key)
        if self.shared is not None:
            listeners = self.shared.broadcast_evict(pool_key)
            _LOGGER.info("Eviction of %s broadcast to %d replicas", pool_key, listeners)

    def model_id(self, record: VoiceRecord) -> str:
        """The multiplexed model id: the pool key, or none for the default voice, which
        every replica holds pinned (so Ray balances it by load alone)."""
        return "" if record.pool_key == self.default_pool_key else record.pool_key


class Ingress:
    """The HTTP ingress replica: ``create_app`` with a cluster backend."""

    def __init__(self, settings: Settings, workers: DeploymentHandle) -> None:
        self.settings = settings
        self.workers = workers

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(self.settings, build=self._build)

    def _build(self, settings: Settings) -> Services:
        shared = (
            SharedState(settings.redis_url, prefix=settings.redis_prefix)
            if settings.redis_url
            else None
        )
        engine = ClusterEngine(settings, workers=self.workers, shared=shared)
        engine.start()
        admission = None
        if shared is not None:
            admission = SharedAdmission(
                shared,
                capacity=settings.workers + settings.queue_size,
                per_owner=settings.per_key_requests,
            )
        # Inference slots are granted on the workers, fairly by owner; here the scheduler
        # only bounds chunks awaited at once, at what every worker can run together.
        scheduler = FairScheduler(workers=settings.workers * settings.cluster_workers)
        return build_services(settings, engine=engine, admission=admission, scheduler=scheduler)
