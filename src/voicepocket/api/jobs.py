"""``GET /v1/jobs/{id}``: an asynchronous job's status and progress (the runner that
works through the queue is ``voicepocket.jobs``)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from voicepocket.api.deps import Caller, ServicesDep
from voicepocket.api.speech import ERRORS
from voicepocket.registry.jobs import Job, JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERRORS)


class JobOut(BaseModel):
    id: str
    object: str = "job"
    status: JobStatus
    voice: str
    format: str
    chunks_done: int
    chunks_total: int
    progress: float
    attempts: int
    synthesis_id: str | None
    synthesis_url: str | None
    error: str | None


def job_out(job: Job) -> JobOut:
    done = job.status is JobStatus.DONE
    progress = 1.0 if done else (job.chunks_done / job.chunks_total if job.chunks_total else 0)
    return JobOut(
        id=job.id,
        status=job.status,
        voice=job.voice,
        format=job.format,
        chunks_done=job.chunks_done,
        chunks_total=job.chunks_total,
        progress=round(progress, 4),
        attempts=job.attempts,
        synthesis_id=job.synthesis_id if done else None,
        synthesis_url=f"/v1/syntheses/{job.synthesis_id}" if done else None,
        error=job.error,
    )


@router.get("/{job_id}")
async def get_job(job_id: str, owner: Caller, services: ServicesDep) -> JobOut:
    """A job's status and progress (chunks done of total)."""
    job = await run_in_threadpool(lambda: services.engine.registry.jobs.get(job_id, owner=owner))
    return job_out(job)
