"""The :class:`Registry`: one object over the registry's database for the engine to hold.

Owns wiring, and nothing else: one session factory over the database, handed to the voice,
key, synthesis, job, training and usage registries (``voices``, ``keys``, ``syntheses``,
``jobs``, ``training``, ``usage``), and schema
migration (``database``).
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
from voicepocket.registry.training import TrainingRegistry
from voicepocket.registry.usage import Usage, UsageRegistry
from voicepocket.registry.voices import VoiceRegistry


class Registry:
    """Owners, voices, API keys, stored syntheses and jobs, over one SQL database."""

    def __init__(
        self,
        *,
        database: Engine,
        models: ModelRepository,
        work_dir: Path,
        max_upload_bytes: int,
        max_config_bytes: int,
        pool_budget_bytes: int,
        probe_threads: int,
        default_voice: VoiceRef,
        quotas: Usage,
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
            max_config_bytes=max_config_bytes,
            pool_budget_bytes=pool_budget_bytes,
            probe_threads=probe_threads,
            default_voice=default_voice,
            coqui_python=coqui_python,
        )
        self.keys = KeyRegistry(sessions)
        self.syntheses = SynthesisRegistry(sessions)
        self.jobs = JobRegistry(sessions)
        self.training = TrainingRegistry(sessions)
        self.usage = UsageRegistry(sessions, quotas)

    def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent)."""
        migrate(self.database)
