"""What each owner keeps and has queued, against the operator's per-owner quotas: voices
(training drafts included), recorded samples, stored syntheses and their bytes, and jobs
queued or running. Checked before anything is added; two requests racing past the last
free place may overshoot it by one each."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from voicepocket.errors import QuotaExceeded
from voicepocket.registry.models import JobRow, SampleRow, SynthesisRow, VoiceRow
from voicepocket.settings import Settings

WAITING = ("queued", "running")


@dataclass(frozen=True, slots=True)
class Usage:
    """One owner's counts (or, as quotas, the most each may reach)."""

    voices: int
    samples: int
    syntheses: int
    synthesis_bytes: int
    jobs: int
    """Jobs queued or running."""


NAMES = {
    "voices": "voices (training drafts included)",
    "samples": "recorded samples",
    "syntheses": "stored syntheses",
    "synthesis_bytes": "bytes of stored syntheses",
    "jobs": "jobs queued or running",
}


def quotas_from(settings: Settings) -> Usage:
    """The per-owner quotas ``VOICEPOCKET_QUOTA_*`` set."""
    return Usage(
        voices=settings.quota_voices, samples=settings.quota_samples,
        syntheses=settings.quota_syntheses, synthesis_bytes=settings.quota_synthesis_bytes,
        jobs=settings.quota_jobs,
    )  # fmt: skip


class UsageRegistry:
    """Counts an owner's usage and refuses what would go past a quota."""

    def __init__(self, sessions: sessionmaker[Session], quotas: Usage) -> None:
        self._sessions = sessions
        self.quotas = quotas

    def of(self, owner: str) -> Usage:
        """``owner``'s usage now."""
        with self._sessions() as session:
            voices = session.scalar(select(func.count()).where(VoiceRow.owner == owner))
            samples = session.scalar(
                select(func.count(SampleRow.id))
                .join(VoiceRow, VoiceRow.id == SampleRow.voice_id)
                .where(VoiceRow.owner == owner)
            )
            syntheses, synthesis_bytes = session.execute(
                select(func.count(), func.coalesce(func.sum(SynthesisRow.bytes), 0)).where(
                    SynthesisRow.owner == owner
                )
            ).one()
            jobs = session.scalar(
                select(func.count()).where(JobRow.owner == owner, JobRow.status.in_(WAITING))
            )
        return Usage(int(voices or 0), int(samples or 0), int(syntheses), int(synthesis_bytes),
                     int(jobs or 0))  # fmt: skip

    def check(self, owner: str, *names: str) -> None:
        """``QuotaExceeded`` when ``owner`` has reached the quota of any of ``names``."""
        used, most = asdict(self.of(owner)), asdict(self.quotas)
        for name in names:
            if used[name] >= most[name]:
                raise QuotaExceeded(
                    f"Quota reached: {used[name]:,} of {most[name]:,} {NAMES[name]}. Delete "
                    "some (GET /v1/usage shows where you stand) or ask the operator for more."
                )
