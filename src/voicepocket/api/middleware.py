"""The request-context middleware: request ids, access logs, HTTP metrics, the drain, and
the guard on request bodies: a body is read only after its API key checks out (401
before a byte of it is read), never past its route's size limit (413 as it streams in)
nor past its deadline (408: a client sending a byte a second holds nothing)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voicepocket.api import error_handlers
from voicepocket.api.state import Lifecycle, Services
from voicepocket.errors import AuthenticationError, BodyTimeout, Draining, PayloadTooLarge
from voicepocket.logs import REQUEST_ID
from voicepocket.settings import Settings

_LOGGER = logging.getLogger("voicepocket.access")
_REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
ALWAYS_SERVED = ("/healthz", "/readyz", "/metrics")
"""Paths that still answer while draining, so orchestrators can watch the drain."""


CLIENT_CLOSED = 499
"""Status logged for a request whose client left before its answer (nginx's): a client
leaving is not a server error."""

JSON_PER_CHAR = 6
"""Most JSON bytes one character of text can take (``\\uXXXX``)."""


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """How large and how slow a request body may be, by route."""

    json_bytes: int
    synthesis_bytes: int
    recording_bytes: int
    upload_bytes: int
    timeout_s: float
    min_rate: int

    @classmethod
    def from_settings(cls, settings: Settings, *, recording_bytes: int) -> BodyLimits:
        form_overhead = 1024**2
        return cls(
            json_bytes=settings.max_body_bytes,
            synthesis_bytes=JSON_PER_CHAR * settings.max_job_chars + settings.max_body_bytes,
            recording_bytes=recording_bytes + form_overhead,
            upload_bytes=settings.max_upload_bytes + settings.max_config_bytes + form_overhead,
            timeout_s=settings.body_timeout_s,
            min_rate=settings.body_min_rate,
        )

    def for_path(self, path: str) -> int:
        if path == "/v1/voices":
            return self.upload_bytes
        if _is_recording(path):
            return self.recording_bytes
        if path == "/v1/syntheses":
            return self.synthesis_bytes
        return self.json_bytes

    @staticmethod
    def is_upload(path: str) -> bool:
        """Multipart uploads, streamed to the route (JSON bodies are read whole first)."""
        return path == "/v1/voices" or _is_recording(path)

    def deadline_s(self, size: int) -> float:
        return self.timeout_s + size / self.min_rate


def _is_recording(path: str) -> bool:
    return path.startswith("/v1/voices/") and path.endswith(("/samples", "/consent"))


class RequestContext:
    """Per request: an id (``X-Request-ID``), one structured log line, HTTP metrics, the
    in-flight count a drain waits for, 503 while draining, and the body guard."""

    def __init__(self, app: ASGIApp, *, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

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
                response = error_handlers.from_error(Draining("The server is shutting down."))
                await response(scope, receive, send_with_id)
                return
            if _has_body(scope):
                refusal, receive = await self._guard_body(services, scope, receive)
                if refusal is not None:
                    await error_handlers.from_error(refusal)(scope, receive, send_with_id)
                    return
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            if status[0] == 500:  # no response started: log what nginx logs
                status[0] = CLIENT_CLOSED
        finally:
            services.in_flight.leave()
            self._observe(services, scope, status[0], time.perf_counter() - started, request_id)

    async def _guard_body(
        self, services: Services, scope: Scope, receive: Receive
    ) -> tuple[Exception | None, Receive]:
        """(a refusal, or None and the ``receive`` that enforces the size and deadline)."""
        if scope["path"].startswith("/v1/"):
            owner = await _authenticate(services, scope)
            if isinstance(owner, AuthenticationError):
                return owner, receive
            scope.setdefault("state", {})["owner"] = owner  # deps.caller takes it from here
        limit = self.limits.for_path(scope["path"])
        declared = _content_length(scope)
        if declared > limit:
            return _too_large(limit), receive
        deadline = time.monotonic() + self.limits.deadline_s(declared or limit)
        guarded = _guarded(receive, limit, deadline)
        if self.limits.is_upload(scope["path"]):
            return None, guarded  # the route reads the form, and our errors reach the client
        # FastAPI turns any error while it reads a JSON body into a 400: read it here.
        try:
            return None, _replay(await _read_body(guarded), receive)
        except (PayloadTooLarge, BodyTimeout) as refusal:
            return refusal, receive

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


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False


async def _authenticate(services: Services, scope: Scope) -> str | AuthenticationError:
    """The owner of the request's bearer key, or the refusal ``deps.caller`` would give."""
    header = next((v for n, v in scope.get("headers", []) if n == b"authorization"), b"")
    scheme, _, key = header.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return AuthenticationError("Missing API key: send 'Authorization: Bearer <key>'.")
    owner = await run_in_threadpool(services.engine.registry.keys.owner_of, key.strip())
    if owner is None:
        return AuthenticationError("Invalid or revoked API key.")
    return owner


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body exceeds this route's limit of {limit} bytes.")


async def _read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(parts)  # the client left: the route will see an empty body
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that gives ``body`` in one message, then what ``receive`` gives."""
    given = False

    async def wrapped() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return wrapped


def _guarded(receive: Receive, limit: int, deadline: float) -> Receive:
    """``receive`` that raises ``PayloadTooLarge`` once the body passes ``limit`` bytes and
    ``BodyTimeout`` if it is not all in by ``deadline`` (``time.monotonic()``); after the
    body, messages (the disconnect a streaming response waits for) pass untouched."""
    seen = 0
    complete = False

    async def wrapped() -> Message:
        nonlocal seen, complete
        if complete:
            return await receive()
        try:
            message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0))
        except TimeoutError:
            raise BodyTimeout("The request body did not arrive in time; send it faster.") from None
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _too_large(limit)
            complete = not message.get("more_body", False)
        return message

    return wrapped


