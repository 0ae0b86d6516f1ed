"""Running one admitted synthesis: inference slots per chunk, encoding, metrics, cleanup.

Inference never runs on the event loop: audio is produced by a sync generator iterated in
worker threads (a limiter of their own, so waiting syntheses cannot starve the threads
the rest of the app needs). Closing the generator early (client gone) stops synthesis
after the chunk in progress and returns the voice lease and the admission ticket.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import anyio.to_thread

from voicepocket.api.admission import Admission, FairScheduler, Ticket
from voicepocket.api.metrics import Metrics
from voicepocket.audio import StreamEncoder
from voicepocket.engine import Engine, Speech
from voicepocket.voices import AudioChunk, SynthesisParams

T = TypeVar("T")


@dataclass(slots=True)
class OpenSynthesis:
    """One opened synthesis (admitted, unless it is a background job's)."""

    owner: str
    """Who asked: the unit of fairness."""
    ticket: Ticket | None
    """Its admission, released when the audio ends; ``None`` for background jobs."""
    speech: Speech
    format: str
    admitted_at: float
    """``perf_counter()`` at admission, for time to first audio."""
    input_chars: int
    audio_s: float = 0.0
    """Seconds of audio produced so far."""
    first_audio_at: float | None = field(default=None)


class Synthesizer:
    """Admits, schedules and runs syntheses for the API."""

    def __init__(
        self,
        *,
        engine: Engine,
        admission: Admission,
        scheduler: FairScheduler,
        metrics: Metrics,
        first_chunk_chars: int,
        threads: int,
    ) -> None:
        self.engine = engine
        self.admission = admission
        self.scheduler = scheduler
        self.metrics = metrics
        self._first_chunk_chars = first_chunk_chars
        self.limiter = anyio.CapacityLimiter(threads)

    async def open(
        self, *, owner: str, voice: str, text: str, fmt: str, params: SynthesisParams
    ) -> OpenSynthesis:
        """Admit (or 429) and open a synthesis: every input error is raised here."""
        ticket = self.admission.admit(owner)
        admitted_at = time.perf_counter()
        # A short first chunk starts the audio sooner when it runs at once; behind a queue
        # it would only add an inference call per request (~4% of throughput, measured).
        first_chunk_chars = self._first_chunk_chars if self.scheduler.slot_free else None
        try:
            speech = await self.run(
                lambda: self.engine.speak(
                    voice,
                    text,
                    caller=owner,
                    params=params,
                    first_chunk_chars=first_chunk_chars,
                )
            )
        except BaseException:
            self.admission.release(ticket)
            raise
        return OpenSynthesis(owner, ticket, speech, fmt, admitted_at, input_chars=len(text))

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
        """The encoded audio of ``job``; always releases its lease and ticket.
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
            job.speech.close()
            if job.ticket is not None:
                self.admission.release(job.ticket)

    def cancel(self, job: OpenSynthesis) -> None:
        """Give back an opened synthesis that will not run (e.g. a cache hit)."""
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
                await self.run(blocks.close)


def sse_events(blocks: Iterator[bytes], *, input_chars: int) -> Iterator[bytes]:
    """OpenAI's speech SSE: ``speech.audio.delta`` per block, then ``speech.audio.done``."""
    try:
        for block in blocks:
            delta = {"type": "speech.audio.delta", "audio": base64.b64encode(block).decode()}
            yield f"data: {json.dumps(delta)}\n\n".encode()
        usage = {"input_tokens": input_chars, "output_tokens": 0, "total_tokens": input_chars}
        done = {"type": "speech.audio.done", "usage": usage}
        yield f"data: {json.dumps(done)}\n\n".encode()
    finally:
        close = getattr(blocks, "close", None)
        if close is not None:
            close()

