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

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import anyio.to_thread

from voicepocket.admission import AdmissionControl, FairScheduler, Ticket
from voicepocket.audio import StreamEncoder
from voicepocket.chunks import AudioChunk, SynthesisParams
from voicepocket.errors import AudioTooLong
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
    max_audio_s: float
    """Most audio it may produce, in seconds (past it, ``AudioTooLong`` mid-stream)."""
    audio_s: float = 0.0
    """Seconds of audio produced so far."""
    first_audio_at: float | None = field(default=None)
    stopped: BaseException | None = None
    """Raised at its next chunk once set: its client left, or the server is draining."""


class ClientGone(Exception):
    """A synthesis stopped because nobody is listening any more (never reaches a client)."""


class Synthesizer:
    """Admits, schedules and runs syntheses from a ``SpeechSource``."""

    def __init__(
        self,
        *,
        speech: SpeechSource,
        chunking: Chunking,
        short_first: Chunking,
        limit: int,
        max_audio_s: float,
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
        self._max_audio_s = max_audio_s
        self.limiter = anyio.CapacityLimiter(threads)
        # Guards ``_open``: syntheses opened and not released, by id, for ``stop_all``.
        self._lock = threading.Lock()
        self._open: dict[int, OpenSynthesis] = {}

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
            check_audio_length(speech, params, most_s=self._max_audio_s)
        except BaseException:
            self.admission.release(ticket)
            raise
        return self._opened(OpenSynthesis(owner, ticket, speech, fmt, admitted_at,
                                          len(text), max_audio_s=self._max_audio_s))  # fmt: skip

    def open_job(
        self, *, owner: str, voice: str, text: str, fmt: str, params: SynthesisParams,
        limit: int, max_audio_s: float,
    ) -> OpenSynthesis:  # fmt: skip
        """Open a background job's synthesis (blocking; no admission: the job queue is
        its own bound)."""
        speech = self.speech.speak(
            voice, text, caller=owner, params=params, chunking=self._chunking, limit=limit
        )
        try:
            check_audio_length(speech, params, most_s=max_audio_s)
        except BaseException:
            speech.close()
            raise
        return self._opened(OpenSynthesis(owner, None, speech, fmt, time.perf_counter(),
                                          len(text), max_audio_s=max_audio_s))  # fmt: skip

    def _opened(self, job: OpenSynthesis) -> OpenSynthesis:
        with self._lock:
            self._open[id(job)] = job
        return job

    def stop(self, job: OpenSynthesis, error: BaseException) -> None:
        """Make ``job`` raise ``error`` before its next chunk (from any thread: the
        synthesis thread may be deep in a response that sends nothing until its end)."""
        job.stopped = error

    def stop_all(self, error: BaseException) -> int:
        """``stop`` every open request's synthesis (the drain's deadline; background jobs
        are stopped by their runner, which queues them again); how many there were."""
        with self._lock:
            jobs = [job for job in self._open.values() if job.ticket is not None]
        for job in jobs:
            self.stop(job, error)
        return len(jobs)

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
        with self._lock:
            self._open.pop(id(job), None)
        if job.ticket is not None:
            self.admission.release(job.ticket)

    def _chunks(self, job: OpenSynthesis) -> Iterator[AudioChunk]:
        iterator = iter(job.speech)
        while True:
            if job.stopped is not None:
                raise job.stopped
            with self.scheduler.slot(job.owner):
                started = time.perf_counter()
                chunk = next(iterator, None)
                elapsed = time.perf_counter() - started
            if chunk is None:
                return
            job.audio_s += chunk.duration_s
            if job.audio_s > job.max_audio_s:
                raise AudioTooLong(f"The speech ran past the limit of {job.max_audio_s:.0f} "
                                   "seconds of audio; send less text.", param="input")  # fmt: skip
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
        except ClientGone:
            return
        finally:
            with anyio.CancelScope(shield=True):
                await self.run(lambda: close_blocks(blocks))


CHARS_PER_AUDIO_S = 10.0
"""Normalized characters per second of speech at speed 1 used to estimate a request's
audio: English voices speak 15-18 (the bundled voice: 15.8 on prose, 18 on numbers read
out), so honest text is over-estimated, not refused."""


def estimated_audio_s(chunks: Sequence[str], params: SynthesisParams) -> float:
    """Seconds of audio ``chunks`` will take to speak, estimated generously."""
    return sum(len(chunk) for chunk in chunks) / CHARS_PER_AUDIO_S / params.speed


def check_audio_length(speech: SpeechStream, params: SynthesisParams, *, most_s: float) -> None:
    """``AudioTooLong`` when ``speech`` would take more than ``most_s`` to speak."""
    estimate = estimated_audio_s(speech.chunks, params)
    if estimate > most_s:
        raise AudioTooLong(
            f"This text would take about {estimate:.0f} seconds to speak at speed "
            f"{params.speed:g} (numbers and symbols are read out as words); the limit is "
            f"{most_s:.0f} seconds. Send less text, or a job (POST /v1/syntheses).",
            param="input",
        )


def close_blocks(blocks: Iterator[bytes]) -> None:
    """Close ``blocks`` if it is a generator (stopping whatever produces it)."""
    close = getattr(blocks, "close", None)
    if close is not None:
        close()
