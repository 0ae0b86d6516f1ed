"""Stored syntheses, end to end: the one owner of audio at ``{owner}/{uuid}.{ext}``.

Storing writes the object first and then records its row (deleting the object again if
recording fails), so a row never points at missing audio and a failed store leaves
nothing behind. Fetching, deleting and expiring go through here too: the speech API, the
job runner and the CLI's ``gc`` all call this one service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta

from voicepocket.registry.models import utcnow
from voicepocket.registry.syntheses import Synthesis, SynthesisRegistry
from voicepocket.store import AudioStore, ExpiryReport


class AudioArchive:
    """Audio objects and their synthesis rows, kept consistent."""

    def __init__(self, audio: AudioStore, syntheses: SynthesisRegistry) -> None:
        self.audio = audio
        self.syntheses = syntheses

    def store(
        self,
        blocks: Iterable[bytes],
        *,
        owner: str,
        voice: str,
        fmt: str,
        input_chars: int,
        duration_s: Callable[[], float],
        synthesis_id: str | None = None,
        created_at: datetime | None = None,
    ) -> Synthesis:
        """Write ``blocks`` and record them. ``duration_s()`` is asked once they are
        written. With a ``synthesis_id`` (a job's fixed id) storing again is harmless: the
        object is overwritten and the first row kept."""
        fresh = synthesis_id is None
        synthesis_id = synthesis_id or SynthesisRegistry.new_id()
        stored = self.audio.put(owner, fmt, blocks, audio_id=synthesis_id)
        synthesis = Synthesis(
            id=synthesis_id,
            owner=owner,
            voice=voice,
            format=fmt,
            storage_key=stored.key,
            bytes=stored.bytes,
            duration_s=duration_s(),
            input_chars=input_chars,
            created_at=created_at or utcnow(),
        )
        try:
            return self.syntheses.record_once(synthesis)
        except BaseException:
            if fresh:  # a job's object may already have a row from an earlier run
                self.audio.objects.delete(stored.key)
            raise

    def get(self, synthesis_id: str, *, owner: str) -> Synthesis:
        """``owner``'s synthesis (``NotFound`` for anyone else's)."""
        return self.syntheses.get(synthesis_id, owner=owner)

    def list(self, *, owner: str) -> list[Synthesis]:
        """``owner``'s syntheses, newest first."""
        return self.syntheses.list(owner=owner)

    def read(self, synthesis: Synthesis) -> Iterator[bytes]:
        """The stored audio, block by block."""
        return self.audio.objects.iter_bytes(synthesis.storage_key)

    def signed_url(self, synthesis: Synthesis, *, expires_s: int) -> str | None:
        """A short-lived URL of the audio, where the store can sign (GCS, S3)."""
        return self.audio.objects.signed_url(synthesis.storage_key, expires_s=expires_s)

    def delete(self, synthesis_id: str, *, owner: str) -> None:
        """Delete ``owner``'s synthesis: the row first (so none points at missing audio),
        then its audio."""
        synthesis = self.syntheses.get(synthesis_id, owner=owner)
        self.syntheses.delete(synthesis)
        self.audio.objects.delete(synthesis.storage_key)

    def expire(self, *, older_than: timedelta, now: datetime, dry_run: bool) -> ExpiryReport:
        """Expire old audio, each synthesis row just before its audio (so none points at
        missing audio), then the rows whose audio was already gone."""
        # A row is written just after its audio: the margin covers that gap.
        cutoff = now - older_than + timedelta(hours=1)
        rows = {s.storage_key: s for s in self.syntheses.older_than(cutoff)}

        def drop_row(key: str) -> None:
            row = rows.pop(key, None)
            if row is not None:
                self.syntheses.delete(row)

        report = self.audio.expire(
            older_than=older_than, now=now, before_delete=drop_row, dry_run=dry_run
        )
        for row in rows.values():  # rows whose audio was already gone
            created = row.created_at.replace(tzinfo=row.created_at.tzinfo or UTC)
            expired = not dry_run and created < now - older_than
            if expired and not self.audio.objects.exists(row.storage_key):
                self.syntheses.delete(row)
        return report
