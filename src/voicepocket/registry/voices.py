"""Voices in the registry: owners and their voices, registered, looked up and deleted.

Owns :class:`VoiceRecord` and :class:`VoiceRegistry`: registration (copy the files aside,
validate them statically, probe them in a child process, checksum, store them in the
model repository, record them), listing, lookup by reference with tenancy rules, making a
voice public or private, and deletion. The one writer of the model repository. Knows
nothing of inference beyond asking ``voicepocket.voices`` to validate and probe.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from voicepocket.errors import (
    Conflict,
    InvalidVoiceFiles,
    PayloadTooLarge,
    VoiceExists,
    VoiceNotFound,
    VoiceTooLarge,
)
from voicepocket.registry.ids import VoiceRef, check_name
from voicepocket.registry.models import OwnerRow, VoiceRow, utcnow
from voicepocket.registry.repository import (
    CONFIG_NAME,
    MODEL_NAME,
    ModelRepository,
    sha256_of,
    training_prefix,
)
from voicepocket.voices import backend, convert_files
from voicepocket.voices.probe import probe_voice

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class VoiceRecord:
    """A registered voice, as the registry holds it."""

    id: str
    """Opaque unique id (hex uuid)."""

    owner: str
    """Owner name."""

    slug: str
    """Name within the owner."""

    kind: str
    """Backend kind, e.g. ``piper``."""

    public: bool
    """Whether every caller may use it."""

    model_key: str
    """Prefix of its files in the model repository."""

    model_sha256: str
    """sha256 of the model file."""

    config_sha256: str
    """sha256 of the config file."""

    sample_rate: int
    """Rate of its audio, in Hertz."""

    cost_bytes: int
    """Measured resident cost in the pool, in bytes."""

    load_s: float
    """Measured load time at registration, in seconds."""

    created_at: datetime
    """When this version was registered."""

    @property
    def ref(self) -> str:
        """``owner/slug``."""
        return f"{self.owner}/{self.slug}"

    @property
    def ready(self) -> bool:
        """Whether it has a model to speak with (a trained voice's draft has none)."""
        return bool(self.model_key)

    @property
    def pool_key(self) -> str:
        """Key in the pool: changes when the files change, so a replaced voice reloads."""
        return f"{self.ref}@{self.model_sha256[:16]}"

    @classmethod
    def of(cls, row: VoiceRow) -> VoiceRecord:
        return cls(**{name: getattr(row, name) for name in cls.__slots__})


class VoiceRegistry:
    """Owners and their voices; the one writer of the model repository."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        models: ModelRepository,
        *,
        work_dir: Path,
        max_upload_bytes: int,
        max_config_bytes: int,
        pool_budget_bytes: int,
        probe_threads: int,
        default_voice: VoiceRef,
        coqui_python: Path | None = None,
    ) -> None:
        self.models = models
        self.default_voice = default_voice
        """The service's default voice (owner and slug): it can be neither replaced, made
        private nor deleted, and its slug names it for anyone who has no voice of that name."""
        self._sessions = sessions
        self._work_dir = work_dir
        self._max_upload_bytes = max_upload_bytes
        self._max_config_bytes = max_config_bytes
        self._pool_budget_bytes = pool_budget_bytes
        self._probe_threads = probe_threads
        self._coqui_python = coqui_python

    def ensure_owner(self, name: str) -> str:
        """Create owner ``name`` if it does not exist."""
        check_name(name, param="owner")
        with self._sessions.begin() as session:
            if session.get(OwnerRow, name) is None:
                session.add(OwnerRow(name=name))
        return name

    # -- registration ----------------------------------------------------------------

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
        """Validate, probe, store and record a voice; nothing is left behind on failure.

        ``bundled`` marks files shipped with VoicePocket itself (the default voice): they
        are validated like any other but not held to the upload size limit.

        With ``replace`` an existing voice of that slug gets the new files (its old files
        are removed once the new version is recorded); without it that is ``VoiceExists``.
        """
        check_name(owner, param="owner")
        check_name(slug, param="slug")
        voice_class = backend(kind)
        if replace:
            self._refuse_if_default(owner, slug, "replaced")
        if not replace and self._find(owner, slug) is not None:
            raise VoiceExists(f"Voice {owner}/{slug} already exists.", param="slug")
        staging = self._work_dir / f"register-{uuid.uuid4().hex}"
        try:
            limits = (None, None) if bundled else (self._max_upload_bytes, self._max_config_bytes)
            model, config = self._copy_aside(staging, model_file, config_file, limits=limits)
            model, config = convert_files(
                kind, model, config, out_dir=staging / "compiled", coqui_python=self._coqui_python
            )
            voice_class.validate_files(model)
            probe = probe_voice(kind, model, threads=self._probe_threads)
            if probe.resident_bytes > self._pool_budget_bytes:
                raise VoiceTooLarge(
                    f"The voice needs {probe.resident_bytes / 1e6:.0f} MB resident, more than "
                    f"the pool budget of {self._pool_budget_bytes / 1e6:.0f} MB."
                )
            model_sha, config_sha = sha256_of(model), sha256_of(config)
            model_key = ModelRepository.key_for(owner, slug, model_sha)
            row = VoiceRow(
                id=uuid.uuid4().hex, owner=owner, slug=slug, kind=kind, public=public,
                model_key=model_key, model_sha256=model_sha, config_sha256=config_sha,
                sample_rate=probe.sample_rate, cost_bytes=probe.resident_bytes,
                load_s=probe.load_s, created_at=utcnow(),
            )  # fmt: skip
            self.models.put_voice(model_key, model, config)
            previous = self._record(row, replace=replace)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if previous is not None and previous.ready and previous.model_key != model_key:
            self.models.delete(previous.model_key)
        _LOGGER.info("Registered voice %s/%s (%d MB resident)", owner, slug, row.cost_bytes >> 20)
        return VoiceRecord.of(row)

    @staticmethod
    def _copy_aside(
        staging: Path, model_file: Path, config_file: Path,
        *, limits: tuple[int | None, int | None],
    ) -> tuple[Path, Path]:  # fmt: skip
        """Copy the caller's files into a private folder under fixed names, each checked
        against its size limit (model, config) before anything parses it, so what is
        validated is exactly what gets stored."""
        staging.mkdir(parents=True)
        copies = (staging / MODEL_NAME, staging / CONFIG_NAME)
        sources = (model_file, config_file)
        for source, target, param, limit in zip(
            sources, copies, ("model", "config"), limits, strict=True
        ):
            try:
                size = source.stat().st_size
            except OSError as exc:
                raise InvalidVoiceFiles(f"Cannot read the {param} file.", param=param) from exc
            if limit is not None and size > limit:
                raise PayloadTooLarge(
                    f"The {param} file is {size} bytes; the limit is {limit}.",
                    param=param,
                )
            shutil.copyfile(source, target)
        return copies

    def _record(self, row: VoiceRow, *, replace: bool) -> VoiceRecord | None:
        """Insert (or, with ``replace``, update) the row; on failure remove its files."""
        try:
            with self._sessions.begin() as session:
                if session.get(OwnerRow, row.owner) is None:
                    session.add(OwnerRow(name=row.owner))
                    session.flush()
                existing = self._find_in(session, row.owner, row.slug) if replace else None
                if existing is None:
                    session.add(row)
                    return None
                previous = VoiceRecord.of(existing)
                # created_at stays: which public voice a bare slug names must not change
                # because its owner uploaded new files.
                for name in ("kind", "model_key", "model_sha256", "config_sha256",
                             "sample_rate", "cost_bytes", "load_s"):  # fmt: skip
                    setattr(existing, name, getattr(row, name))
                row.id, row.public = existing.id, existing.public
                row.created_at = existing.created_at
                return previous
        except IntegrityError as exc:
            self.models.delete(row.model_key)
            raise VoiceExists(f"Voice {row.owner}/{row.slug} already exists.") from exc
        except BaseException:
            self.models.delete(row.model_key)
            raise

    # -- lookup ----------------------------------------------------------------------

    def resolve(self, ref: str | VoiceRef, *, caller: str | None) -> VoiceRecord:
        """The voice ``ref`` names for ``caller`` (``None``: a local operator who sees all).

        ``owner/slug`` is that owner's voice if it is public or the caller's; a bare
        ``slug`` is the caller's own voice of that name, else the default voice if that is
        its slug, else the public voice of that name created first (a replace keeps its
        creation time). Anything the caller may not see is ``VoiceNotFound``, exactly as if
        it did not exist.
        """
        parsed = ref if isinstance(ref, VoiceRef) else VoiceRef.parse(ref)
        with self._sessions() as session:
            row = self._resolve_in(session, parsed, caller)
        if row is None:
            raise VoiceNotFound(f"Voice {parsed} not found.", param="voice")
        return VoiceRecord.of(row)

    def _resolve_in(self, session: Session, ref: VoiceRef, caller: str | None) -> VoiceRow | None:
        if ref.owner is not None:
            row = self._find_in(session, ref.owner, ref.slug)
            visible = row is not None and (row.public or caller is None or row.owner == caller)
            return row if visible else None
        if caller is not None:
            own = self._find_in(session, caller, ref.slug)
            if own is not None:
                return own
        if ref.slug == self.default_voice.slug:
            default = self._find_in(session, str(self.default_voice.owner), ref.slug)
            if default is not None:
                return default
        query = (
            select(VoiceRow)
            .where(VoiceRow.slug == ref.slug, VoiceRow.public.is_(True))
            .order_by(VoiceRow.created_at, VoiceRow.id)
        )
        return session.scalars(query).first()

    def resolve_id(self, voice_id: str) -> VoiceRecord:
        """The voice with opaque id ``voice_id`` (for the operator's own workers)."""
        with self._sessions() as session:
            row = session.get(VoiceRow, voice_id)
        if row is None:
            raise VoiceNotFound(f"Voice {voice_id[:40]} not found.", param="voice")
        return VoiceRecord.of(row)

    def list_voices(self, *, caller: str | None) -> list[VoiceRecord]:
        """The caller's voices and every public one (all voices for ``None``)."""
        query = select(VoiceRow).order_by(VoiceRow.owner, VoiceRow.slug)
        if caller is not None:
            query = query.where((VoiceRow.owner == caller) | VoiceRow.public.is_(True))
        with self._sessions() as session:
            return [VoiceRecord.of(row) for row in session.scalars(query)]

    def set_public(self, record: VoiceRecord, public: bool) -> VoiceRecord:
        """Make a voice public or private (the default voice stays public)."""
        if not public:
            self._refuse_if_default(record.owner, record.slug, "made private")
        with self._sessions.begin() as session:
            row = session.get(VoiceRow, record.id)
            if row is None:
                raise VoiceNotFound(f"Voice {record.ref} not found.", param="voice")
            row.public = public
            return VoiceRecord.of(row)

    def delete_voice(self, record: VoiceRecord) -> None:
        """Remove a voice's row, then its files."""
        self._refuse_if_default(record.owner, record.slug, "deleted")
        with self._sessions.begin() as session:
            row = session.get(VoiceRow, record.id)
            if row is None:
                raise VoiceNotFound(f"Voice {record.ref} not found.", param="voice")
            session.delete(row)
        if record.ready:
            self.models.delete(record.model_key)
        self.models.objects.delete(training_prefix(record.owner, record.slug))

    def _refuse_if_default(self, owner: str, slug: str, change: str) -> None:
        if VoiceRef(owner, slug) == self.default_voice:
            raise Conflict(f"The default voice {owner}/{slug} cannot be {change}.", param="voice")

    def model_path(self, record: VoiceRecord) -> Path:
        """A local path to load the voice from."""
        return self.models.model_path(
            record.model_key, record.model_sha256, config_sha256=record.config_sha256
        )

    def _find(self, owner: str, slug: str) -> VoiceRow | None:
        with self._sessions() as session:
            return self._find_in(session, owner, slug)

    @staticmethod
    def _find_in(session: Session, owner: str, slug: str) -> VoiceRow | None:
        query = select(VoiceRow).where(VoiceRow.owner == owner, VoiceRow.slug == slug)
        return session.scalars(query).one_or_none()
