"""Stored syntheses: which owner's audio is where, in what format, how long."""

from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from voicepocket.errors import NotFound
from voicepocket.registry.models import OwnerRow, SynthesisRow


@dataclass(frozen=True, slots=True)
class Synthesis:
    """One stored synthesis."""

    id: str
    """Opaque id (hex uuid); also the object name in storage."""

    owner: str
    """Whose it is; nobody else can see it."""

    voice: str
    """The voice it was spoken in, ``owner/slug``."""

    format: str
    """Audio format (wav, mp3, opus, flac, pcm)."""

    storage_key: str
    """``{owner}/{uuid}.{ext}`` in the audio store."""

    bytes: int
    """Size of the stored audio."""

    duration_s: float
    """Length of the audio, in seconds."""

    input_chars: int
    """Length of the input text, in characters."""

    created_at: datetime
    """When it was stored."""

    @classmethod
    def of(cls, row: SynthesisRow) -> Synthesis:
        return cls(**{name: getattr(row, name) for name in cls.__slots__})


class SynthesisRegistry:
    """Records of stored audio, owner-scoped."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def record(self, synthesis: Synthesis) -> Synthesis:
        """Insert the record of audio already stored."""
        with self._sessions.begin() as session:
            if session.get(OwnerRow, synthesis.owner) is None:
                session.add(OwnerRow(name=synthesis.owner))
                session.flush()
            session.add(SynthesisRow(**{n: getattr(synthesis, n) for n in Synthesis.__slots__}))
        return synthesis

    def record_once(self, synthesis: Synthesis) -> Synthesis:
        """Record ``synthesis`` unless a record with its id exists (a re-run job)."""
        with self._sessions() as session:
            if session.get(SynthesisRow, synthesis.id) is not None:
                return synthesis
        return self.record(synthesis)

    def get(self, synthesis_id: str, *, owner: str) -> Synthesis:
        """The caller's synthesis ``synthesis_id``; anyone else's is ``NotFound``."""
        with self._sessions() as session:
            row = session.get(SynthesisRow, synthesis_id) if len(synthesis_id) <= 32 else None
            if row is None or row.owner != owner:
                raise NotFound(f"Synthesis {synthesis_id[:40]} not found.", param="id")
            return Synthesis.of(row)

    def list(self, *, owner: str, limit: int = 100) -> list[Synthesis]:
        """The caller's syntheses, newest first."""
        query = (
            select(SynthesisRow)
            .where(SynthesisRow.owner == owner)
            .order_by(SynthesisRow.created_at.desc())
            .limit(limit)
        )
        with self._sessions() as session:
            return [Synthesis.of(row) for row in session.scalars(query)]

    def delete(self, synthesis: Synthesis) -> None:
        """Drop the record (the caller deletes the audio)."""
        with self._sessions.begin() as session:
            row = session.get(SynthesisRow, synthesis.id)
            if row is not None:
                session.delete(row)

    def older_than(self, cutoff: datetime) -> builtins.list[Synthesis]:
        """Every synthesis created before ``cutoff`` (for retention)."""
        query = select(SynthesisRow).where(SynthesisRow.created_at < cutoff)
        with self._sessions() as session:
            return [Synthesis.of(row) for row in session.scalars(query)]


__all__ = ["Synthesis", "SynthesisRegistry"]
