"""Asynchronous synthesis jobs, persisted so a killed service never loses one.

A job is ``queued`` until a runner claims it (``running``, with a heartbeat it renews as
chunks complete), then ``done`` or ``failed``. A running job whose heartbeat is older than
the lease (its runner died) is queued again and re-run from the start. Its synthesis id,
and so its storage key, is fixed when the job is created: a re-run overwrites the same
object atomically and records the same synthesis once, so nothing is ever stored twice.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from voicepocket.errors import NotFound
from voicepocket.registry.models import JobRow, OwnerRow, utcnow

QueuedJob = aliased(JobRow)
"""The queued job being ranked, beside the owner's other jobs."""


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Job:
    """A job as stored."""

    id: str
    """Opaque id (hex uuid)."""
    owner: str
    """Whose job; nobody else sees it."""
    voice: str
    """The voice as requested (``owner/slug`` or a bare slug)."""
    input: str
    """The text to speak."""
    format: str
    """Audio format of the result."""
    speed: float
    """Speaking rate."""
    status: JobStatus
    """Where the job is in its life."""
    chunks_done: int
    """Text chunks synthesized in the current attempt."""
    chunks_total: int
    """Text chunks in all (0 until the first attempt has split the text)."""
    attempts: int
    """How many times a runner has claimed it."""
    synthesis_id: str
    """The stored synthesis it produces (fixed at creation)."""
    error: str | None
    """Why it failed, for the client."""
    created_at: datetime
    """When it was submitted."""
    finished_at: datetime | None
    """When it ended, if it has."""

    @classmethod
    def of(cls, row: JobRow) -> Job:
        values = {name: getattr(row, name) for name in cls.__slots__}
        values["status"] = JobStatus(row.status)
        return cls(**values)


class JobRegistry:
    """Creating, claiming, tracking and finishing jobs."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def create(self, *, owner: str, voice: str, text: str, fmt: str, speed: float) -> Job:
        row = JobRow(
            id=uuid.uuid4().hex, owner=owner, voice=voice, input=text, format=fmt, speed=speed,
            status=JobStatus.QUEUED.value, chunks_done=0, chunks_total=0, attempts=0,
            synthesis_id=uuid.uuid4().hex, created_at=utcnow(),
        )  # fmt: skip
        with self._sessions.begin() as session:
            if session.get(OwnerRow, owner) is None:
                session.add(OwnerRow(name=owner))
                session.flush()
            session.add(row)
        return Job.of(row)

    def get(self, job_id: str, *, owner: str) -> Job:
        """The caller's job ``job_id``; anyone else's is ``NotFound``."""
        with self._sessions() as session:
            row = session.get(JobRow, job_id) if len(job_id) <= 32 else None
            if row is None or row.owner != owner:
                raise NotFound(f"Job {job_id[:40]} not found.", param="id")
            return Job.of(row)

    def claim_next(self) -> Job | None:
        """Atomically move the next queued job to running, or ``None`` if there is none.
        Fair across owners: an owner with a job running waits behind every owner without
        one, and among those the owner whose jobs ran least recently (never, first) goes
        first, so owners take turns however many each queued; then oldest first."""
        running = select(JobRow.owner).where(JobRow.status == JobStatus.RUNNING.value)
        last_run = (
            select(func.max(func.coalesce(JobRow.finished_at, JobRow.heartbeat_at)))
            .where(JobRow.owner == QueuedJob.owner, JobRow.status != JobStatus.QUEUED.value)
            .correlate(QueuedJob)
            .scalar_subquery()
        )
        with self._sessions.begin() as session:
            candidates = session.scalars(
                select(QueuedJob.id)
                .where(QueuedJob.status == JobStatus.QUEUED.value)
                .order_by(
                    QueuedJob.owner.in_(running),
                    last_run.asc().nulls_first(),
                    QueuedJob.created_at,
                )
                .limit(5)
            ).all()
            for job_id in candidates:
                claimed = session.execute(
                    update(JobRow)
                    .where(JobRow.id == job_id, JobRow.status == JobStatus.QUEUED.value)
                    .values(
                        status=JobStatus.RUNNING.value,
                        attempts=JobRow.attempts + 1,
                        chunks_done=0,
                        heartbeat_at=utcnow(),
                    )
                )
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    return Job.of(session.get_one(JobRow, job_id))
        return None

    def progress(self, job_id: str, *, done: int, total: int) -> None:
        """Record progress and renew the job's heartbeat."""
        with self._sessions.begin() as session:
            session.execute(
                update(JobRow)
                .where(JobRow.id == job_id)
                .values(chunks_done=done, chunks_total=total, heartbeat_at=utcnow())
            )

    def finish(self, job_id: str, *, error: str | None = None) -> None:
        """Mark the job done, or failed with ``error``."""
        status = JobStatus.FAILED if error else JobStatus.DONE
        with self._sessions.begin() as session:
            session.execute(
                update(JobRow)
                .where(JobRow.id == job_id)
                .values(status=status.value, error=error, finished_at=utcnow())
            )

    def requeue(self, job_id: str) -> None:
        """Put a claimed job back in the queue (its runner is stopping): that run does not
        count as an attempt."""
        with self._sessions.begin() as session:
            session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == JobStatus.RUNNING.value)
                .values(
                    status=JobStatus.QUEUED.value, chunks_done=0, attempts=JobRow.attempts - 1
                )
            )

    def requeue_stale(self, *, lease_s: float, attempts: int) -> int:
        """Queue again every running job whose runner stopped renewing it, or mark it
        failed once it has been run ``attempts`` times; how many were queued again."""
        cutoff = utcnow() - timedelta(seconds=lease_s)
        stale = (JobRow.status == JobStatus.RUNNING.value) & (JobRow.heartbeat_at < cutoff)
        with self._sessions.begin() as session:
            error = (f"The job was run {attempts} times and its runner was lost each time; "
                     "it is not run again.")  # fmt: skip
            session.execute(
                update(JobRow)
                .where(stale, JobRow.attempts >= attempts)
                .values(status=JobStatus.FAILED.value, finished_at=utcnow(), error=error)
            )
            result = session.execute(
                update(JobRow)
                .where(stale)
                .values(status=JobStatus.QUEUED.value, chunks_done=0)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]
