"""The job runner: works through the queue of asynchronous syntheses, with
``VOICEPOCKET_JOB_RUNNERS`` background threads per process (the HTTP server's; the same
object runs anywhere a ``Synthesizer`` is built), so one owner's book does not hold up
every other owner's jobs.

Each thread claims the next queued job from the database (fair across owners, see
``JobRegistry.claim_next``), synthesizes it chunk by chunk through
the same fair scheduler as live requests (so a book never starves anyone's sentence),
records progress with each chunk, stores the result through the archive at the job's
fixed id, and marks the job done. Jobs whose runner died are queued again once their
heartbeat is older than ``VOICEPOCKET_JOB_LEASE_S``, and ``failed`` once they have been
run ``VOICEPOCKET_JOB_ATTEMPTS`` times: a job that kills its process is no crash loop.
"""

from __future__ import annotations

import logging
import threading
import time

from voicepocket.archive import AudioArchive
from voicepocket.chunks import SynthesisParams
from voicepocket.errors import VoicePocketError
from voicepocket.registry.jobs import Job, JobRegistry
from voicepocket.synthesizer import Synthesizer

_LOGGER = logging.getLogger(__name__)


class Interrupted(Exception):
    """The runner is stopping: the job goes back to the queue."""


class JobRunner:
    """Runs queued jobs in ``runners`` background threads until stopped."""

    def __init__(
        self,
        *,
        synthesizer: Synthesizer,
        jobs: JobRegistry,
        archive: AudioArchive,
        max_chars: int,
        max_audio_s: float,
        lease_s: float,
        attempts: int,
        runners: int = 1,
        poll_s: float = 0.5,
    ) -> None:
        self._synthesizer = synthesizer
        self._jobs = jobs
        self._archive = archive
        self._max_chars = max_chars
        self._max_audio_s = max_audio_s
        self._lease_s = lease_s
        self._attempts = attempts
        self._poll_s = poll_s
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name=f"job-runner-{n}", daemon=True)
            for n in range(runners)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop after the chunk in progress; an unfinished job is queued again."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(60)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._jobs.requeue_stale(lease_s=self._lease_s, attempts=self._attempts)
                job = self._jobs.claim_next()
            except Exception:
                _LOGGER.exception("Job queue unavailable")
                job = None
            if job is None:
                self._stopping.wait(self._poll_s)
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        started = time.perf_counter()
        try:
            opened = self._synthesizer.open_job(
                owner=job.owner, voice=job.voice, text=job.input, fmt=job.format,
                params=SynthesisParams(speed=job.speed), limit=self._max_chars,
                max_audio_s=self._max_audio_s,
            )  # fmt: skip
            total = len(opened.speech.chunks)
            self._jobs.progress(job.id, done=0, total=total)

            def on_chunk(done: int) -> None:
                if self._stopping.is_set():
                    raise Interrupted
                self._jobs.progress(job.id, done=done, total=total)

            try:
                self._archive.store(
                    self._synthesizer.audio(opened, progressive=False, on_chunk=on_chunk),
                    owner=job.owner, voice=opened.speech.record.ref, fmt=job.format,
                    input_chars=len(job.input), duration_s=lambda: opened.audio_s,
                    synthesis_id=job.synthesis_id, created_at=job.created_at,
                )  # fmt: skip
            finally:
                self._synthesizer.release(opened)
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
