"""Operations: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from voicepocket.api.deps import ServicesDep
from voicepocket.api.state import Lifecycle

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers (on the event loop: inference never blocks it)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    """Ready when started, not draining, and the default voice is resident and warm."""
    default = services.engine.default_pool_key
    ready = services.lifecycle is Lifecycle.READY and default is not None and (
        services.residency.is_resident(default)
    )
    body = {"status": "ready" if ready else services.lifecycle.value}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics")
async def metrics(services: ServicesDep) -> Response:
    """Prometheus exposition of requests, latency, TTFA, RTF, queue and pool."""
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
