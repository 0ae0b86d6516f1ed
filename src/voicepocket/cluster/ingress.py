"""The ingress deployment: the same FastAPI app, built on the voice workers' voices.

``WorkerVoices`` is the cluster's ``VoiceHost``: ``speak()`` streams from a worker replica
chosen by Ray for the voice's pool key, ``prewarm()`` warms it there, ``discard()``
broadcasts the eviction to every worker, and its residency is the sum of the replicas'
reports in Redis. The registry, keys, syntheses, jobs and audio store are the same
shared SQL database and object storage as everywhere; the API code above it (admission,
fair scheduling, encoding, storage) is the one the single-process service runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from ray.exceptions import ObjectLostError, RayActorError
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from voicepocket.admission import Admission, AdmissionControl, FairScheduler
from voicepocket.api.app import build_services, create_app
from voicepocket.api.state import Services
from voicepocket.chunks import AudioChunk, SynthesisParams
from voicepocket.cluster.protocol import Failure, SpeakCall, SpeechHeader
from voicepocket.cluster.shared import SharedAdmission, SharedState
from voicepocket.engine import Engine
from voicepocket.errors import (
    CapacityError,
    EngineError,
    RateLimited,
    StreamEndedEarly,
    WorkerLost,
)
from voicepocket.pool import PoolStats
from voicepocket.registry import Registry, VoiceRecord
from voicepocket.settings import Settings
from voicepocket.speech import Chunking, resolve_speakable

_LOGGER = logging.getLogger(__name__)

RESUME_WITHIN_S = 30.0
"""How long a synthesis keeps trying live replicas after losing its worker, in seconds:
Ray marks a dead replica within a few seconds and starts a new one within tens."""

RETRY_PAUSE_S = (0.1, 0.25, 0.5, 1.0, 2.0)
"""Pauses before successive retries (the last repeats): time for the router to learn."""


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
    """A synthesis running on a worker replica, a ``SpeechStream``: every input error
    surfaced before the first sample (the worker answers with a header first).

    A worker lost in flight is retried on whichever replica Ray picks, resuming at the
    first chunk not yet received, until ``RESUME_WITHIN_S`` has passed; so is a full
    worker pool once audio has started (a 503 is no longer possible then). What is
    left is a 503 with ``Retry-After`` before the first chunk, and after it an error the
    HTTP layer turns into an aborted body or an SSE ``error`` event."""

    def __init__(
        self, *, record: VoiceRecord, call: SpeakCall, workers: DeploymentHandle, model_id: str
    ) -> None:
        self.record = record
        self._call = call
        self._workers = workers
        self._model_id = model_id
        self._attempts = 0
        self._lost_at: float | None = None
        """``monotonic()`` of the first loss: retries stop ``RESUME_WITHIN_S`` after it."""
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
                self._retry_or_raise(exc)
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

    def _retry_or_raise(self, exc: Exception) -> None:
        """Re-raise ``exc`` unless another attempt may heal it; else pause before it."""
        capacity = isinstance(exc, CapacityError) and not isinstance(exc, RateLimited)
        if not (is_worker_loss(exc) or (capacity and self._received)):
            raise exc
        now = time.monotonic()
        self._lost_at = self._lost_at or now
        if now - self._lost_at > RESUME_WITHIN_S:
            raise WorkerLost("A voice worker was lost; retry shortly.", retry_after_s=2.0) from exc
        pause = RETRY_PAUSE_S[min(self._attempts, len(RETRY_PAUSE_S) - 1)]
        self._attempts += 1
        _LOGGER.warning(
            "Voice worker lost (%s: %s); attempt %d resumes at chunk %d in %.2f s",
            type(exc).__name__, exc, self._attempts + 1, self._received, pause,
        )  # fmt: skip
        self._cancel()
        time.sleep(pause)

    def __iter__(self) -> Iterator[AudioChunk]:
        try:
            while self._received < len(self.chunks):
                try:
                    item = self._next()
                except Exception as exc:
                    self._retry_or_raise(exc)
                    self._open()
                    continue
                self._received += 1
                yield item
        finally:
            self.close()

    def _cancel(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.cancel()

    def close(self) -> None:
        """Stop the worker's synthesis if it is still running (idempotent)."""
        if self._received < len(self.chunks):
            self._cancel()
        self._stream = None

    def __enter__(self) -> RemoteSpeech:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class WorkerVoices:
    """The voices of the worker replicas, as a ``VoiceHost``. Residency is the sum of
    the replicas' reports in Redis; without Redis, only what this ingress saw."""

    def __init__(
        self,
        registry: Registry,
        *,
        workers: DeploymentHandle,
        shared: SharedState | None,
        budget_bytes: int,
    ) -> None:
        self.registry = registry
        self._workers = workers
        self._shared = shared
        self._budget_bytes = budget_bytes
        # Guards ``_warm``.
        self._lock = threading.Lock()
        self._warm: set[str] = set()
        """Keys a worker confirmed warm to this ingress (the default, or prewarmed)."""
        self._default: str | None = None
        """Pool key of the default voice, which every replica holds pinned."""

    def speak(
        self,
        voice: str,
        text: str,
        *,
        caller: str | None,
        params: SynthesisParams,
        chunking: Chunking,
        limit: int | None,
    ) -> RemoteSpeech:
        record = resolve_speakable(self.registry, voice, text, caller=caller, limit=limit)
        call = SpeakCall(
            record=record, owner=caller or record.owner, text=text, params=params,
            chunking=chunking,
        )  # fmt: skip
        return RemoteSpeech(
            record=record, call=call, workers=self._workers, model_id=self._model_id(record)
        )

    def prewarm(self, record: VoiceRecord, *, pin: bool = False) -> None:
        """Warm ``record`` on the worker Ray routes it to. The default voice (``pin``)
        every replica pins and warms as it starts: then only wait for a worker."""
        if pin:
            self._default = record.pool_key
            started = time.perf_counter()
            self._workers.stats.remote().result(timeout_s=600)
            _LOGGER.info("Voice workers answered in %.1f s", time.perf_counter() - started)
        else:
            call = SpeakCall(
                record=record, owner=record.owner, text="", params=SynthesisParams(),
                chunking=Chunking(max_chunk_chars=300),
            )  # fmt: skip
            handle = self._workers.options(multiplexed_model_id=self._model_id(record))
            handle.prewarm.remote(call).result(timeout_s=600)
        with self._lock:
            self._warm.add(record.pool_key)

    def discard(self, pool_key: str) -> None:
        """Every worker replica evicts ``pool_key`` now (through Redis). Without Redis a
        stale copy stays until its pool evicts it: requests for it already get 404 from
        the registry, and a replaced voice has a new pool key."""
        with self._lock:
            self._warm.discard(pool_key)
        if self._shared is not None:
            listeners = self._shared.broadcast_evict(pool_key)
            _LOGGER.info("Eviction of %s broadcast to %d replicas", pool_key, listeners)

    def stats(self) -> PoolStats:
        totals: dict[str, Any] = {name: 0 for name in PoolStats.__slots__}
        totals["load_seconds"] = 0.0
        if self._shared is None:
            with self._lock:
                totals["resident_voices"] = len(self._warm)
            totals["budget_bytes"] = self._budget_bytes
            return PoolStats(**totals)
        for replica in self._shared.replicas():
            for name in totals:
                totals[name] += getattr(replica.pool, name)
        return PoolStats(**totals)

    def is_resident(self, pool_key: str) -> bool:
        with self._lock:
            if pool_key in self._warm:
                return True
        return self._shared is not None and any(
            pool_key in replica.resident for replica in self._shared.replicas()
        )

    def close(self) -> None:
        if self._shared is not None:
            self._shared.close()

    def _model_id(self, record: VoiceRecord) -> str:
        """The multiplexed model id: the pool key, or none for the default voice, which
        every replica holds pinned (so Ray balances it by load alone)."""
        return "" if record.pool_key == self._default else record.pool_key


class Ingress:
    """The HTTP ingress replica: ``create_app`` on the workers' voices."""

    def __init__(self, settings: Settings, workers: DeploymentHandle) -> None:
        # Trainings run in the training replicas (``cluster.training``), each in its own
        # Ray reservation, never in an ingress: no training worker in the app's lifespan.
        self.settings = settings.model_copy(update={"train_worker": False})
        self.workers = workers

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(self.settings, build=self._build)

    def _build(self, settings: Settings) -> Services:
        shared = (
            SharedState(settings.redis_url, prefix=settings.redis_prefix)
            if settings.redis_url
            else None
        )

        def worker_voices(registry: Registry) -> WorkerVoices:
            return WorkerVoices(
                registry, workers=self.workers, shared=shared,
                budget_bytes=settings.pool_bytes * settings.cluster_workers,
            )  # fmt: skip

        engine = Engine(settings, voices=worker_voices)
        # Migrations are a no-op once ``serve --cluster`` prepared the database.
        engine.start(prewarm=True)
        local = Admission(
            capacity=settings.workers + settings.queue_size, per_owner=settings.per_key_requests
        )
        admission: AdmissionControl = local
        if shared is not None:
            admission = SharedAdmission(shared, local=local, per_owner=settings.per_key_requests)
        # Inference slots are granted on the workers, fairly by owner; here the scheduler
        # only bounds chunks awaited at once, at what every worker can run together.
        scheduler = FairScheduler(workers=settings.workers * settings.cluster_workers)
        return build_services(settings, engine=engine, admission=admission, scheduler=scheduler)
