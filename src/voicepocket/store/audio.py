"""Synthesized audio in object storage: the ``{owner}/{uuid}.{ext}`` layout and its retention.

Owns :class:`AudioStore`, which keeps audio in the layout the seed's bucket used, over an
:class:`~voicepocket.store.objects.ObjectStore`, and expires it; retention touches only
keys of that layout, so a root shared with anything else loses nothing else.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from voicepocket.store.objects import ObjectStore

_AUDIO_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}/[0-9a-f]{32}\.[a-z0-9]{1,8}")


@dataclass(frozen=True, slots=True)
class StoredAudio:
    """Where one synthesis was stored."""

    key: str
    """``{owner}/{uuid}.{ext}``."""

    bytes: int
    """Size of the stored object."""


@dataclass(frozen=True, slots=True)
class ExpiryReport:
    """What one retention pass did."""

    deleted: list[str]
    """Keys of the audio objects deleted (or, in a dry run, that would be)."""

    kept: int
    """Audio objects young enough to keep."""


class AudioStore:
    """Synthesized audio at ``{owner}/{uuid}.{ext}``, the seed's bucket layout."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects

    @staticmethod
    def key_for(owner: str, audio_id: str, ext: str) -> str:
        """The key of audio ``audio_id`` of ``owner``."""
        return f"{owner}/{audio_id}.{ext}"

    def put(
        self, owner: str, ext: str, chunks: Iterable[bytes], *, audio_id: str | None = None
    ) -> StoredAudio:
        """Store audio for ``owner`` under ``audio_id`` (default: a new uuid), replacing
        what is there; nothing is visible if it fails."""
        key = self.key_for(owner, audio_id or uuid.uuid4().hex, ext)
        size = self.objects.put(key, chunks)
        return StoredAudio(key=key, bytes=size)

    def expire(
        self,
        *,
        older_than: timedelta,
        now: datetime | None = None,
        before_delete: Callable[[str], None] | None = None,
        dry_run: bool = False,
    ) -> ExpiryReport:
        """Delete audio last written more than ``older_than`` before ``now``.

        Only keys of the audio layout are touched, so a store root shared with anything
        else loses nothing else. ``before_delete(key)`` runs before each object goes (the
        API drops the synthesis row there, so no row ever points at missing audio); if it
        raises, that object is kept and the error propagates.
        """
        now = now or datetime.now(UTC)
        cutoff = now - older_than
        deleted: list[str] = []
        kept = 0
        for info in self.objects.list_info():
            if not _AUDIO_KEY.fullmatch(info.key):
                continue
            if info.modified >= cutoff:
                kept += 1
                continue
            if not dry_run:
                if before_delete is not None:
                    before_delete(info.key)
                self.objects.delete(info.key)
            deleted.append(info.key)
        return ExpiryReport(deleted=deleted, kept=kept)
