"""Training records: bases, each trained voice's training, and its samples, in SQL.

A trained voice is a ``voices`` row from the moment its draft is created (so its
``owner/slug`` is taken, listed and deleted like any voice); until its first training
ends it has no model (``VoiceRecord.ready`` is false). Beside it one ``trainings`` row is
the truth of where its training is: ``draft → queued → training → compiling → ready``,
or ``failed``/``cancelled``; a worker claims a queued row, renews its heartbeat while it
runs, and a row whose heartbeat is older than the lease (its worker died) is queued again
and resumed from its last checkpoint. Samples are rows pointing at audio objects the
training part stores.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from voicepocket.errors import (
    NotFound,
    TooManyTrainings,
    TrainingBusy,
    VoiceExists,
)
from voicepocket.registry.ids import check_name
from voicepocket.registry.models import (
    BaseRow,
    OwnerRow,
    SampleRow,
    TrainingRow,
    VoiceRow,
    utcnow,
)
from voicepocket.registry.voices import VoiceRecord


class TrainingState(enum.StrEnum):
    DRAFT = "draft"
    QUEUED = "queued"
    TRAINING = "training"
    COMPILING = "compiling"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = (TrainingState.QUEUED, TrainingState.TRAINING, TrainingState.COMPILING)
"""States in which a training holds a place in its owner's quota and a worker's time."""

RUNNING = (TrainingState.TRAINING, TrainingState.COMPILING)


@dataclass(frozen=True, slots=True)
class BaseModel:
    """A registered training base: a coqui VITS trainer checkpoint others fine-tune from."""

    name: str
    language: str
    files_key: str
    """Prefix of ``model.pth``, ``config.json`` and the compiled manifest in the model
    repository."""
    checkpoint_sha256: str
    sample_rate: int
    created_at: datetime

    @classmethod
    def of(cls, row: BaseRow) -> BaseModel:
        return cls(**{name: getattr(row, name) for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class Training:
    """One trained voice's training, as stored."""

    voice_id: str
    owner: str
    language: str
    base: str
    state: TrainingState
    step: int
    steps: int
    loss: float | None
    """Mel-spectrogram L1 loss on the training clips, averaged over the current epoch."""
    eval_loss: float | None
    """The same on the held-out clips, at the last evaluation."""
    eta_s: float | None
    message: str | None
    crashes: int
    rounds: int
    """Rounds that ended ready: from the first, a new round starts from the last one's
    checkpoint instead of the base."""
    run_key: str | None
    """The current round's id: its checkpoints live under it, so a resumed process finds
    them and a new round starts clean."""
    worker: str | None
    requested_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: TrainingRow) -> Training:
        values = {name: getattr(row, name) for name in cls.__slots__}
        values["state"] = TrainingState(row.state)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Sample:
    """One accepted recording (``kind`` ``sample`` or ``consent``)."""

    id: str
    voice_id: str
    kind: str
    text: str
    prompt_id: str | None
    duration_s: float
    storage_key: str
    created_at: datetime

    @classmethod
    def of(cls, row: SampleRow) -> Sample:
        return cls(**{name: getattr(row, name) for name in cls.__slots__})


class TrainingRegistry:
    """Bases, trainings and samples."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    # -- bases -----------------------------------------------------------------------

    def add_base(self, base: BaseModel) -> BaseModel:
        """Record a base; its files are stored already. An existing name is replaced."""
        with self._sessions.begin() as session:
            row = session.get(BaseRow, base.name) or BaseRow(name=base.name)
            for name in BaseModel.__slots__:
                setattr(row, name, getattr(base, name))
            session.add(row)
        return base

    def base(self, name: str) -> BaseModel:
        with self._sessions() as session:
            row = session.get(BaseRow, name) if len(name) <= 64 else None
            if row is None:
                raise NotFound(f"Training base {name[:64]} not found.", param="base")
            return BaseModel.of(row)

    def bases(self) -> list[BaseModel]:
        with self._sessions() as session:
            rows = session.scalars(select(BaseRow).order_by(BaseRow.name))
            return [BaseModel.of(row) for row in rows]

    # -- drafts ----------------------------------------------------------------------

    def create_draft(
        self, *, owner: str, slug: str, language: str, base: BaseModel, public: bool
    ) -> tuple[VoiceRecord, Training]:
        """A voice with no model yet and its training in ``draft``."""
        check_name(owner, param="owner")
        check_name(slug, param="slug")
        now = utcnow()
        voice = VoiceRow(
            id=uuid.uuid4().hex, owner=owner, slug=slug, kind="coqui", public=public,
            model_key="", model_sha256="", config_sha256="", sample_rate=base.sample_rate,
            cost_bytes=0, load_s=0.0, created_at=now,
        )  # fmt: skip
        training = TrainingRow(
            voice_id=voice.id, owner=owner, language=language, base=base.name,
            state=TrainingState.DRAFT.value, step=0, steps=0, crashes=0, rounds=0,
        )  # fmt: skip
        try:
            with self._sessions.begin() as session:
                if session.get(OwnerRow, owner) is None:
                    session.add(OwnerRow(name=owner))
                    session.flush()
                session.add(voice)
                session.flush()
                session.add(training)
        except IntegrityError as exc:
            raise VoiceExists(f"Voice {owner}/{slug} already exists.", param="slug") from exc
        return VoiceRecord.of(voice), Training.of(training)

    def get(self, voice_id: str) -> Training | None:
        """The training of a voice, or ``None`` for a voice that was uploaded, not trained."""
        with self._sessions() as session:
            row = session.get(TrainingRow, voice_id)
            return None if row is None else Training.of(row)

    # -- samples ---------------------------------------------------------------------

    def add_sample(
        self, *, voice_id: str, kind: str, text: str, prompt_id: str | None,
        duration_s: float, storage_key: str, sample_id: str,
    ) -> Sample:  # fmt: skip
        """Record an accepted sample whose audio is stored already."""
        row = SampleRow(
            id=sample_id, voice_id=voice_id, kind=kind, text=text, prompt_id=prompt_id,
            duration_s=duration_s, storage_key=storage_key, created_at=utcnow(),
        )  # fmt: skip
        with self._sessions.begin() as session:
            session.add(row)
        return Sample.of(row)

    def samples(self, voice_id: str, *, kind: str | None = "sample") -> list[Sample]:
        query = select(SampleRow).where(SampleRow.voice_id == voice_id)
        if kind is not None:
            query = query.where(SampleRow.kind == kind)
        with self._sessions() as session:
            return [Sample.of(r) for r in session.scalars(query.order_by(SampleRow.created_at))]

    def delete_sample(self, voice_id: str, sample_id: str) -> Sample:
        with self._sessions.begin() as session:
            row = session.get(SampleRow, sample_id) if len(sample_id) <= 32 else None
            if row is None or row.voice_id != voice_id:
                raise NotFound(f"Sample {sample_id[:40]} not found.", param="sample_id")
            sample = Sample.of(row)
            session.delete(row)
        return sample

    # -- the queue -------------------------------------------------------------------

    def request(self, voice_id: str, *, per_owner: int, steps: int = 0) -> Training:
        """Queue a training round of ``steps`` steps (0: the worker sizes it):
        ``TrainingBusy`` while one is active, ``TooManyTrainings`` when the owner has
        ``per_owner`` active already."""
        with self._sessions.begin() as session:
            row = session.get_one(TrainingRow, voice_id, with_for_update=True)
            if row.state in ACTIVE:
                raise TrainingBusy(f"The voice is already {row.state}.", param="voice")
            session.scalar(  # serializes one owner's requests on PostgreSQL
                select(OwnerRow.name).where(OwnerRow.name == row.owner).with_for_update()
            )
            active = session.scalar(
                select(func.count()).select_from(TrainingRow).where(
                    TrainingRow.owner == row.owner, TrainingRow.state.in_(ACTIVE)
                )
            )  # fmt: skip
            if (active or 0) >= per_owner:
                raise TooManyTrainings(
                    f"You have {active} training(s) queued or running, the most allowed; "
                    "wait for one to finish or cancel it.",
                    retry_after_s=60,
                )
            row.state, row.step, row.steps = TrainingState.QUEUED.value, 0, steps
            row.loss = row.eval_loss = row.eta_s = row.message = None
            row.crashes, row.run_key, row.worker = 0, uuid.uuid4().hex[:16], None
            row.requested_at, row.started_at, row.finished_at = utcnow(), None, None
            return Training.of(row)

    def cancel(self, voice_id: str) -> Training:
        """Cancel an active training (its worker stops at its next heartbeat)."""
        with self._sessions.begin() as session:
            row = session.get_one(TrainingRow, voice_id)
            if row.state not in ACTIVE:
                raise TrainingBusy(f"The voice is {row.state}: nothing to cancel.", param="voice")
            row.state, row.finished_at = TrainingState.CANCELLED.value, utcnow()
            row.message, row.eta_s = "Cancelled.", None
            return Training.of(row)

    def claim_next(self, worker: str) -> Training | None:
        """Claim a queued training, fairly: the owner whose last training started longest
        ago (or never) first, then the oldest request."""
        with self._sessions.begin() as session:
            queued = session.scalars(
                select(TrainingRow).where(TrainingRow.state == TrainingState.QUEUED.value)
            ).all()
            if not queued:
                return None
            last_start = dict(
                session.execute(
                    select(TrainingRow.owner, func.max(TrainingRow.started_at)).group_by(
                        TrainingRow.owner
                    )
                ).all()
            )
            epoch = datetime.min.replace(tzinfo=utcnow().tzinfo)
            for row in sorted(
                queued,
                key=lambda r: (last_start.get(r.owner) or epoch, r.requested_at or epoch),
            ):
                now = utcnow()
                claimed = session.execute(
                    update(TrainingRow)
                    .where(
                        TrainingRow.voice_id == row.voice_id,
                        TrainingRow.state == TrainingState.QUEUED.value,
                    )
                    .values(
                        state=TrainingState.TRAINING.value, worker=worker, heartbeat_at=now,
                        started_at=func.coalesce(TrainingRow.started_at, now),
                    )
                )
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    session.expire(row)
                    return Training.of(session.get_one(TrainingRow, row.voice_id))
        return None

    def heartbeat(self, voice_id: str, worker: str, **progress: object) -> TrainingState | None:
        """Renew a claimed training's lease, recording ``progress`` (``step``, ``steps``,
        ``loss``, ``eval_loss``, ``eta_s``, ``state``, ``message``); the state it is in
        now, or ``None`` when it is no longer this worker's (deleted, or claimed again)."""
        with self._sessions.begin() as session:
            row = session.get(TrainingRow, voice_id)
            if row is None or row.worker != worker:
                return None
            if row.state not in RUNNING:
                return TrainingState(row.state)
            for name, value in progress.items():
                setattr(row, name, value)
            row.heartbeat_at = utcnow()
            return TrainingState(row.state)

    def crashed(self, voice_id: str, worker: str, *, message: str, max_crashes: int) -> bool:
        """Count a dead training process; past ``max_crashes`` the training fails. True
        when it may be resumed."""
        with self._sessions.begin() as session:
            row = session.get(TrainingRow, voice_id)
            if row is None or row.worker != worker or row.state not in RUNNING:
                return False
            row.crashes += 1
            if row.crashes < max_crashes:
                return True
            row.state, row.finished_at, row.eta_s = TrainingState.FAILED.value, utcnow(), None
            row.message = f"{message} (the training process died {row.crashes} times)"
            return False

    def finish(
        self, voice_id: str, worker: str, *, state: TrainingState, message: str | None = None
    ) -> bool:
        """End a claimed training as ``ready`` or ``failed``; False if it was not this
        worker's any more (cancelled or deleted meanwhile)."""
        with self._sessions.begin() as session:
            row = session.get(TrainingRow, voice_id)
            if row is None or row.worker != worker or row.state not in RUNNING:
                return False
            row.state, row.message, row.finished_at = state.value, message, utcnow()
            row.eta_s = None
            if state == TrainingState.READY:
                row.rounds += 1
            return True

    def release(self, voice_id: str, worker: str) -> None:
        """Put a claimed training back in the queue (its worker is stopping); it resumes
        from its last checkpoint."""
        with self._sessions.begin() as session:
            session.execute(
                update(TrainingRow)
                .where(TrainingRow.voice_id == voice_id, TrainingRow.worker == worker,
                       TrainingRow.state.in_(RUNNING))
                .values(state=TrainingState.QUEUED.value, worker=None)
            )  # fmt: skip

    def requeue_stale(self, *, lease_s: float) -> int:
        """Queue again every running training whose worker stopped renewing it; how many."""
        cutoff = utcnow() - timedelta(seconds=lease_s)
        with self._sessions.begin() as session:
            result = session.execute(
                update(TrainingRow)
                .where(TrainingRow.state.in_(RUNNING), TrainingRow.heartbeat_at < cutoff)
                .values(state=TrainingState.QUEUED.value, worker=None)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]
