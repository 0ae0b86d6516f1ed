"""API keys: created once and shown once, stored only as a sha256 of the key.

A key is ``vp_`` + 32 random URL-safe bytes: with that much entropy a plain sha256 is the
right store (a slow password hash buys nothing and costs every request).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from voicepocket.errors import NotFound
from voicepocket.registry.ids import check_name
from voicepocket.registry.models import ApiKeyRow, OwnerRow, utcnow

KEY_PREFIX = "vp_"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as listed (never the key itself)."""

    id: str
    """Opaque id, used to revoke it."""

    owner: str
    """Who the key acts as."""

    prefix: str
    """The key's first characters, to recognize it."""

    created_at: datetime
    """When it was created."""

    revoked_at: datetime | None
    """When it was revoked, if it was."""


class KeyRegistry:
    """Creating, checking, listing and revoking API keys."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def create(self, owner: str) -> tuple[ApiKey, str]:
        """A new key for ``owner`` (created if new): the record and the key, shown once."""
        check_name(owner, param="owner")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(
            id=uuid.uuid4().hex,
            owner=owner,
            prefix=key[:10],
            sha256=_digest(key),
            created_at=utcnow(),
        )
        with self._sessions.begin() as session:
            if session.get(OwnerRow, owner) is None:
                session.add(OwnerRow(name=owner))
                session.flush()
            session.add(row)
        return self._of(row), key

    def owner_of(self, key: str) -> str | None:
        """The owner a live key acts as, or ``None``."""
        if not key.startswith(KEY_PREFIX) or len(key) > 128:
            return None
        query = select(ApiKeyRow.owner).where(
            ApiKeyRow.sha256 == _digest(key), ApiKeyRow.revoked_at.is_(None)
        )
        with self._sessions() as session:
            return session.scalars(query).first()

    def list(self, owner: str | None = None) -> list[ApiKey]:
        """Every key (of ``owner``, if given), oldest first."""
        query = select(ApiKeyRow).order_by(ApiKeyRow.created_at)
        if owner is not None:
            query = query.where(ApiKeyRow.owner == owner)
        with self._sessions() as session:
            return [self._of(row) for row in session.scalars(query)]

    def revoke(self, key_id: str, *, owner: str | None = None) -> ApiKey:
        """Revoke a key (of ``owner``, if given: another's is not found) by id or by its
        prefix; it stops working at once."""
        with self._sessions.begin() as session:
            query = select(ApiKeyRow).where(
                (ApiKeyRow.id == key_id) | (ApiKeyRow.prefix == key_id)
            )
            if owner is not None:
                query = query.where(ApiKeyRow.owner == owner)
            rows = list(session.scalars(query))
            if len(rows) != 1:
                raise NotFound(f"No single key matches {key_id[:40]!r}.")
            rows[0].revoked_at = rows[0].revoked_at or utcnow()
            return self._of(rows[0])

    def any(self) -> bool:
        """Whether any key exists (first start creates a demo key otherwise)."""
        with self._sessions() as session:
            return session.scalars(select(ApiKeyRow.id).limit(1)).first() is not None

    @staticmethod
    def _of(row: ApiKeyRow) -> ApiKey:
        return ApiKey(
            id=row.id,
            owner=row.owner,
            prefix=row.prefix,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
        )
