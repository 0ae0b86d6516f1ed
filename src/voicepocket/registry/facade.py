"""The :class:`Registry`: one object over the registry's database for the engine to hold.

Owns wiring, and nothing else: one session factory over the database, handed to the voice,
key, synthesis and job registries (``voices``, ``keys``, ``syntheses``, ``jobs``), schema
migration (``database``), and the voice operations callers use on the registry itself,
each passed straight to :class:`~voicepocket.registry.voices.VoiceRegistry`.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from voicepocket.registry.database import migrate
from voicepocket.registry.ids import VoiceRef
from voicepocket.registry.jobs import JobRegistry
from voicepocket.registry.keys import KeyRegistry
from voicepocket.registry.repository import ModelRepository
from voicepocket.registry.syntheses import SynthesisRegistry
from voicepocket.registry.voices import VoiceRecord, VoiceRegistry


class Registry:
    """Owners, voices, API keys, stored syntheses and jobs, over one SQL database."""

    def __init__(
        self,
        *,
        database: Engine,
        models: ModelRepository,
        work_dir: Path,
        max_upload_bytes: int,
        pool_budget_bytes: int,
        probe_threads: int,
        coqui_python: Path | None = None,
    ) -> None:
        self.database = database
        """The SQLAlchemy engine (not to be confused with ``voicepocket.engine.Engine``)."""
        self.models = models
        sessions = sessionmaker(database, expire_on_commit=False)
        self.voices = VoiceRegistry(
            sessions,
            models,
            work_dir=work_dir,
            max_upload_bytes=max_upload_bytes,
            pool_budget_bytes=pool_budget_bytes,
            probe_threads=probe_threads,
            coqui_python=coqui_python,
        )
        self.keys = KeyRegistry(sessions)
        self.syntheses = SynthesisRegistry(sessions)
        self.jobs = JobRegistry(sessions)

    def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent)."""
        migrate(self.database)

    # -- voices (see VoiceRegistry) ---------------------------------------------------

    def ensure_owner(self, name: str) -> str:
        """Create owner ``name`` if it does not exist."""
        return self.voices.ensure_owner(name)

    def register_voice(
        self,
        *,
        owner: str,
        slug: str,
        kind: str,
        model_file: Path,
        config_file: Path,
        public: bool = False,
        replace: bool = False,
        bundled: bool = False,
    ) -> VoiceRecord:
        """Validate, probe, store and record a voice; see
        :meth:`VoiceRegistry.register_voice`."""
        return self.voices.register_voice(
            owner=owner,
            slug=slug,
            kind=kind,
            model_file=model_file,
            config_file=config_file,
            public=public,
            replace=replace,
            bundled=bundled,
        )

    def resolve(self, ref: str | VoiceRef, *, caller: str | None) -> VoiceRecord:
        """The voice ``ref`` names for ``caller``; see :meth:`VoiceRegistry.resolve`."""
        return self.voices.resolve(ref, caller=caller)

    def list_voices(self, *, caller: str | None) -> list[VoiceRecord]:
        """The caller's voices and every public one (all voices for ``None``)."""
        return self.voices.list_voices(caller=caller)

    def set_public(self, record: VoiceRecord, public: bool) -> VoiceRecord:
        """Make a voice public or private."""
        return self.voices.set_public(record, public)

    def delete_voice(self, record: VoiceRecord) -> None:
        """Remove a voice's row, then its files."""
        self.voices.delete_voice(record)

    def model_path(self, record: VoiceRecord) -> Path:
        """A local path to load the voice from."""
        return self.voices.model_path(record)
