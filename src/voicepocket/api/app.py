"""The FastAPI app: built by ``create_app(settings)``, its parts made in the lifespan."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voicepocket import __version__
from voicepocket.api import errors, jobs, ops, page, speech, syntheses, voices
from voicepocket.api.admission import Admission, FairScheduler
from voicepocket.api.cache import OutputCache
from voicepocket.api.metrics import Metrics
from voicepocket.api.state import Lifecycle, Services
from voicepocket.api.synthesis import Synthesizer
from voicepocket.engine import Engine
from voicepocket.errors import Draining, PayloadTooLarge
from voicepocket.settings import Settings
from voicepocket.store import ObjectStore, StorageOptions

_LOGGER = logging.getLogger("voicepocket.access")
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
ALWAYS_SERVED = ("/healthz", "/readyz", "/metrics")
"""Paths that still answer while draining, so orchestrators can watch the drain."""
DEMO_OWNER = "demo"


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
        runner = jobs.JobRunner(synthesizer=services.synthesizer, lease_s=settings.job_lease_s)
        runner.start()
        services.lifecycle = Lifecycle.READY
        try:
            yield
        finally:
            services.lifecycle = Lifecycle.DRAINING
            await run_in_threadpool(runner.stop)
            await run_in_threadpool(services.engine.close)

    app = FastAPI(
        title="VoicePocket",
        version=__version__,
        summary="Text to speech in your own voices; OpenAI-compatible.",
        lifespan=lifespan,
    )
    errors.install(app)
    for module in (speech, syntheses, jobs, voices, ops, page):
        app.include_router(module.router)
    app.mount("/static", page.static_files, name="static")
    app.add_middleware(RequestContext, upload_limit=2 * settings.max_upload_bytes + 1024**2)
    return app


def build_services(
    settings: Settings,
    *,
    engine: Engine | None = None,
    admission: Admission | None = None,
    scheduler: FairScheduler | None = None,
) -> Services:
    """Start the engine (migrations, default voice warm) and everything around it. A
    cluster ingress passes a started engine of its own, shared admission and a scheduler."""
    if engine is None:
        engine = Engine(settings)
        engine.start(prewarm=True)
    ensure_demo_key(engine, settings)
    scheduler = scheduler or FairScheduler(workers=settings.workers)
    admission = admission or Admission(
        capacity=settings.workers + settings.queue_size, per_owner=settings.per_key_requests
    )
    metrics = Metrics(pool_stats=engine.pool.stats, queue_depth=lambda: scheduler.waiting)
    synthesizer = Synthesizer(
        engine=engine,
        admission=admission,
        scheduler=scheduler,
        metrics=metrics,
        first_chunk_chars=settings.first_chunk_chars,
        threads=settings.workers + settings.queue_size + 4,
    )
    cache = OutputCache(
        ObjectStore(settings.cache_url, options=StorageOptions.from_settings(settings)),
        max_age_s=settings.cache_max_age_s,
    )
    return Services(
        settings=settings, engine=engine, synthesizer=synthesizer, metrics=metrics, cache=cache
    )


def ensure_demo_key(engine: Engine, settings: Settings) -> None:
    """First start only: a key for the ``demo`` owner, written to ``$HOME/demo.key``."""
    keys = engine.registry.keys
    if keys.any():
        return
    _, key = keys.create(DEMO_OWNER)
    path = settings.home / "demo.key"
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    logging.getLogger(__name__).warning(
        "First start: created an API key for owner %r in %s", DEMO_OWNER, path
    )


class RequestContext:
    """Per request: an id (``X-Request-ID``), one structured log line, HTTP metrics, the
    in-flight count a drain waits for, 503 while draining, and the upload size limit
    enforced as the body streams in."""

    def __init__(self, app: ASGIApp, *, upload_limit: int) -> None:
        self.app = app
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services: Services = scope["app"].state.services
        request_id = _request_id(scope)
        REQUEST_ID.set(request_id)
        status = [500]
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        services.in_flight.enter()
        try:
            if services.lifecycle is Lifecycle.DRAINING and scope["path"] not in ALWAYS_SERVED:
                response = errors.from_error(Draining("The server is shutting down."))
                await response(scope, receive, send_with_id)
                return
            if scope["method"] == "POST" and scope["path"] == "/v1/voices":
                if _content_length(scope) > self.upload_limit:
                    response = errors.from_error(_too_large(self.upload_limit))
                    await response(scope, receive, send_with_id)
                    return
                receive = _limited(receive, self.upload_limit)
            await self.app(scope, receive, send_with_id)
        finally:
            services.in_flight.leave()
            self._observe(services, scope, status[0], time.perf_counter() - started, request_id)

    @staticmethod
    def _observe(
        services: Services, scope: Scope, status: int, elapsed: float, request_id: str
    ) -> None:
        route = scope.get("route")
        template = getattr(route, "path", "unmatched")
        method = scope["method"]
        services.metrics.requests.labels(method, template, str(status)).inc()
        services.metrics.latency.labels(method, template).observe(elapsed)
        state = scope.get("state") or {}
        _LOGGER.info(
            "%s %s %s %.1fms",
            method,
            scope["path"],
            status,
            elapsed * 1000,
            extra={
                "request_id": request_id,
                "method": method,
                "path": scope["path"],
                "route": template,
                "status": status,
                "duration_ms": round(elapsed * 1000, 1),
                "owner": state.get("owner"),
            },
        )


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _REQUEST_ID_PATTERN.fullmatch(candidate):
                return candidate
    return uuid.uuid4().hex


def _content_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.isdigit():
            return int(value)
    return 0


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The upload exceeds the limit of {limit} bytes.", param="model")


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises ``PayloadTooLarge`` once the body passes ``limit`` bytes."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _too_large(limit)
        return message

    return wrapped


class JsonFormatter(logging.Formatter):
    """One JSON object per log line, with the request id and any structured extras."""

    FIELDS = ("request_id", "method", "path", "route", "status", "duration_ms", "owner")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", REQUEST_ID.get()),
        }
        entry.update({f: getattr(record, f) for f in self.FIELDS if hasattr(record, f)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)
