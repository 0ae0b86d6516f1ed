"""Asynchronous jobs: ``GET /v1/jobs/{id}``, and the runner that works through the queue.

The runner is one background thread per process. It claims the oldest queued job from the
database, synthesizes it chunk by chunk through the same fair scheduler as live requests
(so a book never starves anyone's sentence), records progress with each chunk, stores the
result atomically at the job's fixed key, and marks the job done. Jobs whose runner died
are queued again once their heartbeat is older than ``VOICEPOCKET_JOB_LEASE_S``.
"""

from __future__ import annotations

import logging
import threading
import time

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from voicepocket.api.deps import App, Caller
from voicepocket.api.speech import ERRORS
from voicepocket.api.synthesis import OpenSynthesis, Synthesizer
from voicepocket.errors import VoicePocketError
from voicepocket.registry.jobs import Job, JobRegistry, JobStatus
from voicepocket.registry.syntheses import Synthesis, SynthesisRegistry
from voicepocket.store import AudioStore
from voicepocket.voices import SynthesisParams

_LOGGER = logging.getLogger(__name__)
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
async def get_job(job_id: str, owner: Caller, app: App) -> JobOut:
    """A job's status and progress (chunks done of total)."""
    job = await run_in_threadpool(lambda: app.engine.registry.jobs.get(job_id, owner=owner))
    return job_out(job)


class Interrupted(Exception):
    """The runner is stopping: the job goes back to the queue."""


class JobRunner:
    """Runs queued jobs in one background thread until stopped."""

    def __init__(self, *, synthesizer: Synthesizer, lease_s: float, poll_s: float = 0.5) -> None:
        self._synthesizer = synthesizer
        engine = synthesizer.engine
        self._jobs: JobRegistry = engine.registry.jobs
        self._syntheses: SynthesisRegistry = engine.registry.syntheses
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-runner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop after the chunk in progress; an unfinished job is queued again."""
        self._stopping.set()
        self._thread.join(60)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._jobs.requeue_stale(lease_s=self._lease_s)
                job = self._jobs.claim_next()
            except Exception:
                _LOGGER.exception("Job queue unavailable")
                job = None
            if job is None:
                self._stopping.wait(self._poll_s)
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        engine = self._synthesizer.engine
        started = time.perf_counter()
        try:
            speech = engine.speak(
                job.voice,
                job.input,
                caller=job.owner,
                params=SynthesisParams(speed=job.speed),
                max_chars=engine.settings.max_job_chars,
            )
            opened = OpenSynthesis(job.owner, None, speech, job.format, started,
                                   input_chars=len(job.input))  # fmt: skip
            total = len(speech.chunks)
            self._jobs.progress(job.id, done=0, total=total)

            def on_chunk(done: int) -> None:
                if self._stopping.is_set():
                    raise Interrupted
                self._jobs.progress(job.id, done=done, total=total)

            key = AudioStore.key_for(job.owner, job.synthesis_id, job.format)
            blocks = self._synthesizer.audio(opened, progressive=False, on_chunk=on_chunk)
            size = engine.audio.objects.put(key, blocks)
            self._syntheses.record_once(Synthesis(
                id=job.synthesis_id, owner=job.owner, voice=speech.record.ref,
                format=job.format, storage_key=key, bytes=size, duration_s=opened.audio_s,
                input_chars=len(job.input), created_at=job.created_at,
            ))  # fmt: skip
        except Interrupted:
            self._jobs.requeue(job.id)
            return
        except VoicePocketError as error:
            self._jobs.finish(job.id, error=error.message)
            return
        except Exception:
            _LOGGER.exception("Job %s failed", job.id)
            self._jobs.finish(job.id, error="Synthesis failed.")
            return
        self._jobs.finish(job.id)
        _LOGGER.info("Job %s done in %.1f s", job.id, time.perf_counter() - started)
