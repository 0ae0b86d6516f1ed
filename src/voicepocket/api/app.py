"""The FastAPI app: built by ``create_app(settings)``, its parts made in the lifespan.

The app is built from an ``Engine`` (registry, stores, voice management), a
``SpeechSource`` and a ``Residency`` (the engine's voice host: this process's pool, or a
cluster's workers), and an admission object. It knows nothing of how voices are loaded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from voicepocket import __version__
from voicepocket.admission import Admission, AdmissionControl, FairScheduler
from voicepocket.api import (
    account,
    error_handlers,
    jobs,
    ops,
    page,
    speech,
    syntheses,
    training,
    voices,
)
from voicepocket.api.middleware import BodyLimits, RequestContext
from voicepocket.api.state import Lifecycle, Services
from voicepocket.api.uploads import HeavyWork
from voicepocket.cache import OutputCache
from voicepocket.engine import Engine
from voicepocket.jobs import JobRunner
from voicepocket.metrics import Metrics
from voicepocket.settings import Settings
from voicepocket.store import ObjectStore, StorageOptions
from voicepocket.synthesizer import Synthesizer
from voicepocket.training.service import VoiceTraining
from voicepocket.training.worker import TrainingWorker


def create_app(
    settings: Settings | None = None, *, build: Callable[[Settings], Services] | None = None
) -> FastAPI:
    """The service as an ASGI app; nothing is built until its lifespan starts, by
    ``build`` (default ``build_services``; a cluster ingress passes its own)."""
    settings = settings or Settings()
    build = build or build_services

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await run_in_threadpool(build, settings)
        app.state.services = services
        runner = JobRunner(
            synthesizer=services.synthesizer,
            jobs=services.engine.registry.jobs,
            archive=services.archive,
            max_chars=settings.max_job_chars,
            max_audio_s=settings.max_job_audio_s,
            lease_s=settings.job_lease_s,
            attempts=settings.job_attempts,
            runners=settings.job_runners,
        )
        runner.start()
        trainer = TrainingWorker(services.engine) if settings.train_worker else None
        if trainer is not None:
            trainer.start()
        services.lifecycle = Lifecycle.READY
        try:
            yield
        finally:
            services.lifecycle = Lifecycle.DRAINING
            await run_in_threadpool(runner.stop)
            if trainer is not None:
                await run_in_threadpool(trainer.stop)
            await run_in_threadpool(services.engine.close)

    app = FastAPI(
        title="VoicePocket",
        version=__version__,
        summary="Text to speech in your own voices; OpenAI-compatible.",
        lifespan=lifespan,
        # Swagger UI and ReDoc load their scripts from a CDN, on the origin where the web
        # page keeps the caller's key: off. The schema stays at /openapi.json.
        docs_url=None,
        redoc_url=None,
    )
    error_handlers.install(app)
    # training before voices: its /v1/voices/... routes would be swallowed by voice_id:path
    for module in (speech, syntheses, jobs, training, voices, account, ops, page):
        app.include_router(module.router)
    app.mount("/static", page.static_files, name="static")
    limits = BodyLimits.from_settings(settings, recording_bytes=training.MAX_RECORDING_BYTES)
    app.add_middleware(RequestContext, limits=limits)
    return app


def build_services(
    settings: Settings,
    *,
    engine: Engine | None = None,
    admission: AdmissionControl | None = None,
    scheduler: FairScheduler | None = None,
) -> Services:
    """Start the engine (migrations, default voice warm, the demo key on first start) and
    everything around it. A cluster ingress passes a started engine whose voices are the
    workers', shared admission and a scheduler of its own."""
    if engine is None:
        engine = Engine(settings)
        engine.start(prewarm=True, demo_key=True)
    scheduler = scheduler or FairScheduler(workers=settings.workers)
    admission = admission or Admission(
        capacity=settings.workers + settings.queue_size, per_owner=settings.per_key_requests
    )
    uploads = HeavyWork(workers=settings.upload_workers, queue=settings.upload_queue,
                        per_owner=settings.per_key_uploads)  # fmt: skip
    metrics = Metrics(
        pool_stats=engine.voices.stats,
        queue_depth=lambda: scheduler.waiting,
        admitted=lambda: admission.admitted,
        uploads=lambda: uploads.in_flight,
    )
    synthesizer = Synthesizer(
        speech=engine.voices,
        chunking=engine.chunking(),
        short_first=engine.chunking(short_first=True),
        limit=settings.max_input_chars,
        max_audio_s=settings.max_audio_s,
        admission=admission,
        scheduler=scheduler,
        metrics=metrics,
        threads=settings.workers + settings.queue_size + 4,
    )
    cache = OutputCache(
        ObjectStore(settings.cache_url, options=StorageOptions.from_settings(settings)),
        max_age_s=settings.cache_max_age_s,
    )
    return Services(
        settings=settings,
        engine=engine,
        residency=engine.voices,
        synthesizer=synthesizer,
        archive=engine.archive,
        metrics=metrics,
        cache=cache,
        training=VoiceTraining(engine),
        uploads=uploads,
    )
