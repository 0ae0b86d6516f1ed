"""Running one admitted synthesis: admission, inference slots per chunk, encoding, metrics.

Built from a ``SpeechSource`` (this process's pool or a cluster's workers), so the API,
the job runner and the CLI's server share one speech path. Inference never runs on the
event loop: audio is produced by a sync generator iterated in worker threads (a limiter
of their own, so waiting syntheses cannot starve the threads the rest of the app needs).

Every opened synthesis is released exactly once, however it ends: its audio ran out, the
client left mid-stream, or the client left before the stream started (when no generator
ever ran, so no generator's ``finally`` can be relied on): ``release`` is idempotent and
the HTTP layer calls it when the response is over.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import anyio.to_thread

from voicepocket.admission import AdmissionControl, FairScheduler, Ticket
from voicepocket.audio import StreamEncoder
from voicepocket.chunks import AudioChunk, SynthesisParams
from voicepocket.metrics import Metrics
from voicepocket.speech import Chunking, SpeechSource, SpeechStream

T = TypeVar("T")


@dataclass(slots=True)
class OpenSynthesis:
    """One opened synthesis (admitted, unless it is a background job's)."""

    owner: str
    """Who asked: the unit of fairness."""
    ticket: Ticket | None
    """Its admission, released when the synthesis is released; ``None`` for jobs."""
    speech: SpeechStream
    format: str
    admitted_at: float
    """``perf_counter()`` at admission, for time to first audio."""
    input_chars: int
    audio_s: float = 0.0
    """Seconds of audio produced so far."""
    first_audio_at: float | None = field(default=None)


class Synthesizer:
    """Admits, schedules and runs syntheses from a ``SpeechSource``."""

    def __init__(
        self,
        *,
        speech: SpeechSource,
        chunking: Chunking,
        short_first: Chunking,
        limit: int,
        admission: AdmissionControl,
        scheduler: FairScheduler,
        metrics: Metrics,
        threads: int,
    ) -> None:
        self.speech = speech
        self.admission = admission
        self.scheduler = scheduler
        self.metrics = metrics
        self._chunking = chunking
        self._short_first = short_first
        self._limit = limit
        self.limiter = anyio.CapacityLimiter(threads)

    async def open(
        self, *, owner: str, voice: str, text: str, fmt: str, params: SynthesisParams
    ) -> OpenSynthesis:
        """Admit (or 429) and open a synthesis: every input error is raised here."""
        ticket = self.admission.admit(owner)
        admitted_at = time.perf_counter()
        # A short first chunk starts the audio sooner when it runs at once; behind a queue
        # it would only add an inference call per request (~4% of throughput, measured).
        chunking = self._short_first if self.scheduler.slot_free else self._chunking
        try:
            speech = await self.run(
                lambda: self.speech.speak(
                    voice,
                    text,
                    caller=owner,
                    params=params,
                    chunking=chunking,
                    limit=self._limit,
                )
            )
        except BaseException:
            self.admission.release(ticket)
            raise
        return OpenSynthesis(owner, ticket, speech, fmt, admitted_at, input_chars=len(text))

    def open_job(
        self, *, owner: str, voice: str, text: str, fmt: str, params: SynthesisParams, limit: int
    ) -> OpenSynthesis:
        """Open a background job's synthesis (blocking; no admission: the job queue is
        its own bound)."""
        speech = self.speech.speak(
            voice, text, caller=owner, params=params, chunking=self._chunking, limit=limit
        )
        return OpenSynthesis(owner, None, speech, fmt, time.perf_counter(), len(text))

    async def run(self, function: Callable[[], T]) -> T:
        """Run blocking ``function`` on a synthesis thread."""
        return await anyio.to_thread.run_sync(function, limiter=self.limiter)

    def audio(
        self,
        job: OpenSynthesis,
        *,
        progressive: bool = True,
        on_chunk: Callable[[int], None] | None = None,
    ) -> Iterator[bytes]:
        """The encoded audio of ``job``; releases it however iteration ends.
        ``on_chunk(n)`` is called after the n-th chunk is synthesized."""
        try:
            with StreamEncoder(
                job.format, sample_rate=job.speech.sample_rate, progressive=progressive
            ) as encoder:
                for done, chunk in enumerate(self._chunks(job), start=1):
                    if on_chunk is not None:
                        on_chunk(done)
                    block = encoder.encode(chunk.samples)
                    if block:
                        self._first_audio(job)
                        yield block
                tail = encoder.finish()
            if tail:
                self._first_audio(job)
                yield tail
        finally:
            self.release(job)

    def release(self, job: OpenSynthesis) -> None:
        """Stop ``job``'s speech and end its admission (idempotent): after its audio, when
        it will not run (e.g. a cache hit), or when its client is gone."""
        job.speech.close()
        if job.ticket is not None:
            self.admission.release(job.ticket)

    def _chunks(self, job: OpenSynthesis) -> Iterator[AudioChunk]:
        iterator = iter(job.speech)
        while True:
            with self.scheduler.slot(job.owner):
                started = time.perf_counter()
                chunk = next(iterator, None)
                elapsed = time.perf_counter() - started
            if chunk is None:
                return
            job.audio_s += chunk.duration_s
            self.metrics.chunks.inc()
            self.metrics.audio_seconds.inc(chunk.duration_s)
            if chunk.duration_s > 0:
                self.metrics.real_time_factor.observe(elapsed / chunk.duration_s)
            yield chunk

    def _first_audio(self, job: OpenSynthesis) -> None:
        if job.first_audio_at is None:
            job.first_audio_at = time.perf_counter()
            self.metrics.time_to_first_audio.observe(job.first_audio_at - job.admitted_at)

    async def stream(self, blocks: Iterator[bytes]) -> AsyncIterator[bytes]:
        """Iterate ``blocks`` on synthesis threads; close it however iteration ends."""
        try:
            while (block := await self.run(lambda: next(blocks, None))) is not None:
                yield block
        finally:
            with anyio.CancelScope(shield=True):
                await self.run(lambda: close_blocks(blocks))


def close_blocks(blocks: Iterator[bytes]) -> None:
    """Close ``blocks`` if it is a generator (stopping whatever produces it)."""
    close = getattr(blocks, "close", None)
    if close is not None:
        close()
