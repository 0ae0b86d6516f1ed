"""The request-context middleware: request ids, access logs, HTTP metrics, the drain, and
the upload size limit enforced as a body streams in."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voicepocket.api import error_handlers
from voicepocket.api.state import Lifecycle, Services
from voicepocket.errors import Draining, PayloadTooLarge
from voicepocket.logs import REQUEST_ID

_LOGGER = logging.getLogger("voicepocket.access")
_REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
ALWAYS_SERVED = ("/healthz", "/readyz", "/metrics")
"""Paths that still answer while draining, so orchestrators can watch the drain."""


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
                response = error_handlers.from_error(Draining("The server is shutting down."))
                await response(scope, receive, send_with_id)
                return
            if scope["method"] == "POST" and scope["path"] == "/v1/voices":
                if _content_length(scope) > self.upload_limit:
                    response = error_handlers.from_error(_too_large(self.upload_limit))
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


