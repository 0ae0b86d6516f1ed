"""A voice host the tests control: the real registry and text preparation, fake audio.

``FakeVoices`` is a ``VoiceHost``, built the way an ``Engine`` builds its voices::

    engine = Engine(settings, voices=lambda registry: FakeVoices(registry))

Voices resolve through the real registry (tenancy and 404s are real) and text is prepared
with ``voicepocket.text.prepare`` over ``SYMBOLS``; the audio is ``tone(chunk)``, a sine
``SAMPLES_PER_CHAR`` samples per character at ``SAMPLE_RATE``, so a test knows every
sample a request should return. A ``Gate`` holds streams before a given chunk until the
test opens it, ``fail_at`` makes a chunk raise ``EngineError``, and the host counts the
streams it opened and closed so a test can assert none leaked. Nothing here sleeps.
"""

from __future__ import annotations

import string
import threading
from collections.abc import Iterator, Sequence
from types import TracebackType

import numpy as np

from voicepocket.chunks import AudioChunk, SynthesisParams
from voicepocket.errors import EngineError
from voicepocket.pool import PoolStats
from voicepocket.registry import Registry, VoiceRecord
from voicepocket.speech import Chunking, resolve_speakable
from voicepocket.text import prepare

SYMBOLS = frozenset(string.ascii_letters + string.digits + " .,;:!?'-")
"""What every fake voice can say."""

SAMPLE_RATE = 22050
"""Rate of the fake's audio, in Hertz."""

SAMPLES_PER_CHAR = 64
"""Samples of audio per character of a text chunk."""

TONE_HZ = 440.0
"""Pitch of the fake's sine, in Hertz."""

GATE_TIMEOUT_S = 30.0
"""Longest a stream waits at a gate, in seconds: a test that never opens it fails."""

FAILURE_MESSAGE = "The fake voice failed."
"""The ``EngineError`` message of a chunk made to fail with ``fail_at``."""


def tone(text: str) -> np.ndarray:
    """The fake's samples for one text chunk: mono float32, ``SAMPLES_PER_CHAR`` per
    character."""
    seconds = np.arange(SAMPLES_PER_CHAR * len(text), dtype=np.float64) / SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * TONE_HZ * seconds)).astype(np.float32)


def samples_of(chunks: Sequence[str]) -> np.ndarray:
    """Everything the fake says for ``chunks``, in order."""
    return np.concatenate([tone(text) for text in chunks]) if chunks else np.zeros(0, np.float32)


class Gate:
    """Holds every stream before its chunk ``at`` until ``open()``: a synthesis stopped
    mid-stream, keeping what it holds (its admission, its inference slot)."""

    def __init__(self, *, at: int = 0) -> None:
        self.at = at
        """Index of the chunk streams wait before."""
        # Guards ``_open`` and ``_held``; notified when either changes or a stream closes.
        self._changed = threading.Condition()
        self._open = False
        self._held = 0

    def open(self) -> None:
        """Let every held stream (and every later one) go on."""
        with self._changed:
            self._open = True
            self._changed.notify_all()

    def wait_held(self, count: int, *, timeout_s: float) -> bool:
        """Block until ``count`` streams wait here (from a test thread, never the event
        loop: ``anyio.to_thread.run_sync``); ``False`` on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._held >= count, timeout=timeout_s)

    @property
    def held(self) -> int:
        """Streams waiting here now."""
        with self._changed:
            return self._held

    def pass_through(self, stream: FakeSpeech) -> None:
        """Wait until the gate is open or ``stream`` is closed."""
        with self._changed:
            self._held += 1
            self._changed.notify_all()
            try:
                if not self._changed.wait_for(
                    lambda: self._open or stream.closed, timeout=GATE_TIMEOUT_S
                ):
                    raise RuntimeError(f"Gate not opened in {GATE_TIMEOUT_S} s")
            finally:
                self._held -= 1
                self._changed.notify_all()

    def wake(self) -> None:
        """Make held streams look again (one of them was closed)."""
        with self._changed:
            self._changed.notify_all()


class FakeSpeech:
    """One fake synthesis: a ``SpeechStream`` that asks its host before each chunk."""

    def __init__(self, host: FakeVoices, record: VoiceRecord, chunks: Sequence[str]) -> None:
        self.record = record
        self.sample_rate = SAMPLE_RATE
        self.chunks = list(chunks)
        self.closed = False
        self._host = host
        self._gate: Gate | None = None
        """The gate this stream last waited at, woken when it closes."""

    def __iter__(self) -> Iterator[AudioChunk]:
        for index, text in enumerate(self.chunks):
            self._host.before_chunk(self, index)
            if self.closed:
                return
            self._host.spoke(text)
            yield AudioChunk(samples=tone(text), sample_rate=SAMPLE_RATE, text=text)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._host.stream_closed(self)
        if self._gate is not None:
            self._gate.wake()

    def wait_at(self, gate: Gate) -> None:
        """Wait until ``gate`` opens or this stream is closed."""
        self._gate = gate
        gate.pass_through(self)

    def __enter__(self) -> FakeSpeech:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class FakeVoices:
    """A ``VoiceHost`` over the real registry whose voices are sines.

    ``gate`` and ``fail_at`` apply to every stream's chunks from the moment they are set;
    ``reset()`` clears both.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        gate: Gate | None = None,
        fail_at: int | None = None,
        budget_bytes: int = 2 * 1024**3,
    ) -> None:
        self.registry = registry
        self.gate = gate
        """Holds streams before chunk ``gate.at``; ``None``: nothing is held."""
        self.fail_at = fail_at
        """Index of the chunk that raises ``EngineError``; ``None``: none does."""
        self._budget_bytes = budget_bytes
        # Guards the counters, ``spoken``, ``_resident`` and ``_streams``.
        self._lock = threading.Lock()
        self.opened = 0
        """Streams opened by ``speak``."""
        self.closed = 0
        """Streams closed (each counted once)."""
        self.spoken: list[str] = []
        """Every chunk synthesized, in order."""
        self._resident: dict[str, int] = {}
        """Cost in bytes of each prewarmed voice, by pool key."""
        self._streams: set[FakeSpeech] = set()
        """Streams open now."""

    # -- what a test reads and sets ----------------------------------------------------

    @property
    def open_streams(self) -> int:
        """Streams opened and not closed yet: 0 once every synthesis was released."""
        with self._lock:
            return self.opened - self.closed

    def reset(self) -> None:
        """No gate, no failure; held streams go on."""
        if self.gate is not None:
            self.gate.open()
        self.gate = None
        self.fail_at = None

    # -- the VoiceHost protocol ----------------------------------------------------------

    def speak(
        self,
        voice: str,
        text: str,
        *,
        caller: str | None,
        params: SynthesisParams,
        chunking: Chunking,
        limit: int | None,
    ) -> FakeSpeech:
        record = resolve_speakable(self.registry, voice, text, caller=caller, limit=limit)
        chunks = prepare(
            text,
            symbols=SYMBOLS,
            max_chunk_chars=chunking.max_chunk_chars,
            first_chunk_chars=chunking.first_chunk_chars,
        )
        stream = FakeSpeech(self, record, chunks)
        with self._lock:
            self.opened += 1
            self._streams.add(stream)
        return stream

    def prewarm(self, record: VoiceRecord, *, pin: bool = False) -> None:
        with self._lock:
            self._resident[record.pool_key] = record.cost_bytes

    def discard(self, pool_key: str) -> None:
        with self._lock:
            self._resident.pop(pool_key, None)

    def stats(self) -> PoolStats:
        """Prewarmed voices are resident; a stream held at a gate is a lease in use."""
        held = self.gate.held if self.gate is not None else 0
        with self._lock:
            return PoolStats(
                hits=0,
                misses=0,
                loads=len(self._resident),
                load_failures=0,
                evictions=0,
                load_seconds=0.0,
                resident_bytes=sum(self._resident.values()),
                budget_bytes=self._budget_bytes,
                resident_voices=len(self._resident),
                in_use=held,
            )

    def is_resident(self, pool_key: str) -> bool:
        with self._lock:
            return pool_key in self._resident

    def close(self) -> None:
        """Close every stream still open (a held one stops at its gate)."""
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.close()

    # -- called by FakeSpeech ------------------------------------------------------------

    def before_chunk(self, stream: FakeSpeech, index: int) -> None:
        gate = self.gate
        if gate is not None and index == gate.at:
            stream.wait_at(gate)
        if self.fail_at is not None and index == self.fail_at and not stream.closed:
            raise EngineError(FAILURE_MESSAGE)

    def spoke(self, text: str) -> None:
        with self._lock:
            self.spoken.append(text)

    def stream_closed(self, stream: FakeSpeech) -> None:
        with self._lock:
            self.closed += 1
            self._streams.discard(stream)
