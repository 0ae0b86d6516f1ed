"""Where speech comes from: the ``SpeechSource`` protocol the API speaks through, and its
one-process implementation over this process's voice pool.

- ``SpeechSource.speak(voice, text, ...)`` resolves the voice for the caller, checks and
  prepares the text and returns a ``SpeechStream``: every input error is raised there,
  before the first sample. It also warms and forgets voices wherever they live.
- ``Residency`` is the read-only view of where voices are resident, for readiness and
  metrics.
- ``ResidentVoices`` is both, over a ``VoicePool`` in this process; the cluster's
  ``WorkerVoices`` (``voicepocket.cluster``) is both over Ray Serve voice workers.

A local stream leases its voice for one chunk at a time, when that chunk is synthesized
(inside the caller's inference slot). A request waiting for a slot therefore pins no
voice and loads none, and the pool never holds more leases than chunks being synthesized:
it can always make room, whatever mix of voices is queued.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import lru_cache, partial
from types import TracebackType
from typing import Protocol

from voicepocket.chunks import AudioChunk, SynthesisParams
from voicepocket.errors import TextTooLong, VoiceNotReady
from voicepocket.pool import PoolStats, VoicePool
from voicepocket.registry import Registry, VoiceRecord
from voicepocket.settings import Settings
from voicepocket.text import prepare
from voicepocket.voices import TextProfile, Voice, load_voice, read_profile

PROFILES_KEPT = 4096
"""Text profiles cached per voice version (a few kB each): reading a config is cheap, not
free. A replaced voice is a new record, so a stale entry is never asked for again."""


@dataclass(frozen=True, slots=True)
class Chunking:
    """How input text is cut into inference calls."""

    max_chunk_chars: int
    """Longest text chunk (one inference call), in characters."""

    first_chunk_chars: int | None = None
    """Longest first chunk, in characters, so the first audio comes sooner; ``None``: the
    first chunk is like the others."""


def resolve_speakable(
    registry: Registry, voice: str, text: str, *, caller: str | None, limit: int | None
) -> VoiceRecord:
    """The voice a ``speak`` call means, once ``text`` passed the length ``limit``
    (``None``: no limit): what every ``SpeechSource`` checks first."""
    if limit is not None and len(text) > limit:
        raise TextTooLong(f"Input is {len(text)} characters; the limit is {limit}.", param="input")
    record = registry.voices.resolve(voice, caller=caller)
    if not record.ready:
        raise VoiceNotReady(
            f"Voice {record.ref} has not finished training yet; it speaks once its "
            "training is ready.",
            param="voice",
        )
    return record


class SpeechStream(Protocol):
    """One synthesis in progress: iterate once for its audio, one chunk per text chunk."""

    @property
    def record(self) -> VoiceRecord:
        """The voice speaking."""
        ...

    @property
    def sample_rate(self) -> int:
        """Rate of every chunk, in Hertz."""
        ...

    @property
    def chunks(self) -> Sequence[str]:
        """The text chunks, in order."""
        ...

    def __iter__(self) -> Iterator[AudioChunk]: ...

    def close(self) -> None:
        """Stop synthesis and give back what the stream holds (idempotent)."""
        ...

    def __enter__(self) -> SpeechStream: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class SpeechSource(Protocol):
    """Makes speech in registered voices, wherever they are resident."""

    def speak(
        self,
        voice: str,
        text: str,
        *,
        caller: str | None,
        params: SynthesisParams,
        chunking: Chunking,
        limit: int | None,
    ) -> SpeechStream:
        """Open a synthesis of ``text`` (at most ``limit`` characters; ``None``: any) in
        ``voice`` as ``caller`` sees it (``None``: the operator, who sees every voice)."""
        ...

    def prewarm(self, record: VoiceRecord, *, pin: bool = False) -> None:
        """Make ``record`` resident and warm; ``pin``: never evict it (the default voice)."""
        ...

    def discard(self, pool_key: str) -> None:
        """Forget a deleted or replaced voice wherever it is resident."""
        ...

    def close(self) -> None: ...


class Residency(Protocol):
    """Where voices are resident, for readiness and metrics."""

    def stats(self) -> PoolStats: ...

    def is_resident(self, pool_key: str) -> bool: ...


class VoiceHost(SpeechSource, Residency, Protocol):
    """A source that can also say what it holds (both implementations are)."""


class LocalSpeech:
    """A synthesis in this process. Each chunk leases the voice only while it is being
    synthesized; ``close()`` stops before the next chunk."""

    def __init__(
        self,
        *,
        record: VoiceRecord,
        chunks: Sequence[str],
        params: SynthesisParams,
        lease: Callable[[], AbstractContextManager[Voice]],
        start: int = 0,
    ) -> None:
        self.record = record
        self.sample_rate = record.sample_rate
        self.chunks = list(chunks)
        self._params = params
        self._lease = lease
        self._next = start
        """Index of the next chunk to synthesize."""
        self._closed = False

    def __iter__(self) -> Iterator[AudioChunk]:
        while not self._closed and self._next < len(self.chunks):
            with self._lease() as voice:
                produced = list(voice.synthesize([self.chunks[self._next]], self._params))
            self._next += 1
            yield from produced

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> LocalSpeech:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_speech(
    record: VoiceRecord,
    text: str,
    *,
    profile: TextProfile,
    lease: Callable[[], AbstractContextManager[Voice]],
    params: SynthesisParams,
    chunking: Chunking,
    chunks: Sequence[str] | None = None,
    start: int = 0,
) -> LocalSpeech:
    """Prepare ``text`` for a voice of ``profile`` (unless ``chunks`` were prepared by an
    earlier attempt) and stream it from chunk ``start``. Raises every input error now."""
    if chunks is None:
        chunks = prepare(
            text,
            symbols=profile.symbols,
            language=profile.language,
            max_chunk_chars=chunking.max_chunk_chars,
            first_chunk_chars=chunking.first_chunk_chars,
        )
    return LocalSpeech(record=record, chunks=chunks, params=params, lease=lease, start=start)


class ResidentVoices:
    """Voices resident in this process's byte-budgeted pool: a ``VoiceHost``."""

    def __init__(
        self, registry: Registry, *, budget_bytes: int, wait_s: float, threads: int,
        deadline_s: float,
    ) -> None:  # fmt: skip
        self.registry = registry
        self.pool: VoicePool[Voice] = VoicePool(budget_bytes=budget_bytes, wait_s=wait_s)
        self._threads = threads
        self._deadline_s = deadline_s
        self.profile: Callable[[VoiceRecord], TextProfile] = lru_cache(PROFILES_KEPT)(
            self._read_profile
        )
        """``record``'s text profile, read from its config once."""

    @classmethod
    def for_settings(cls, registry: Registry, settings: Settings) -> ResidentVoices:
        """A pool of ``VOICEPOCKET_POOL_BYTES`` whose voices run on ``VOICEPOCKET_THREADS``,
        each inference call within ``VOICEPOCKET_INFERENCE_TIMEOUT_S``."""
        return cls(
            registry,
            budget_bytes=settings.pool_bytes,
            wait_s=settings.pool_wait_s,
            threads=settings.threads,
            deadline_s=settings.inference_timeout_s,
        )

    def speak(
        self,
        voice: str,
        text: str,
        *,
        caller: str | None,
        params: SynthesisParams,
        chunking: Chunking,
        limit: int | None,
    ) -> LocalSpeech:
        record = resolve_speakable(self.registry, voice, text, caller=caller, limit=limit)
        return self.open(record, text, params=params, chunking=chunking)

    def open(
        self,
        record: VoiceRecord,
        text: str,
        *,
        params: SynthesisParams,
        chunking: Chunking,
        chunks: Sequence[str] | None = None,
        start: int = 0,
    ) -> LocalSpeech:
        """``open_speech`` of an already resolved voice, leasing from this pool."""
        return open_speech(
            record,
            text,
            profile=self.profile(record),
            lease=partial(self.lease, record),
            params=params,
            chunking=chunking,
            chunks=chunks,
            start=start,
        )

    def _read_profile(self, record: VoiceRecord) -> TextProfile:
        return read_profile(record.kind, self.registry.voices.model_path(record))

    def lease(self, record: VoiceRecord) -> AbstractContextManager[Voice]:
        """Hold ``record``'s voice resident for a block, loading it on a miss."""
        return self.pool.lease(
            record.pool_key, cost_bytes=record.cost_bytes, load=partial(self._load, record)
        )

    def prewarm(self, record: VoiceRecord, *, pin: bool = False) -> None:
        if pin:
            self.pool.pin(record.pool_key)
        self.pool.prewarm(
            record.pool_key,
            cost_bytes=record.cost_bytes,
            load=partial(self._load, record),
            warm=lambda voice: list(voice.synthesize([voice.sample_text()])),
        )

    def discard(self, pool_key: str) -> None:
        self.pool.discard(pool_key)

    def stats(self) -> PoolStats:
        return self.pool.stats()

    def is_resident(self, pool_key: str) -> bool:
        return self.pool.is_resident(pool_key)

    def close(self) -> None:
        self.pool.close()

    def _load(self, record: VoiceRecord) -> Voice:
        path = self.registry.voices.model_path(record)
        return load_voice(record.kind, path, threads=self._threads, deadline_s=self._deadline_s)
