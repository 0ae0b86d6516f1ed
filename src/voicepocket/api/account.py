"""The caller's account: where they stand against quotas and limits (``GET /v1/usage``),
and their API keys (``GET /v1/keys``, ``DELETE /v1/keys/{id}``; creating keys stays the
operator's, ``voicepocket keys create``)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from voicepocket.api.deps import Caller, ServicesDep
from voicepocket.api.schemas import KeyOut, ListOf, Quota, UsageOut
from voicepocket.api.speech import ERRORS
from voicepocket.registry.keys import ApiKey

router = APIRouter(prefix="/v1", tags=["account"], responses=ERRORS)


def _key_out(key: ApiKey) -> KeyOut:
    return KeyOut(id=key.id, prefix=key.prefix, created_at=key.created_at,
                  revoked_at=key.revoked_at)  # fmt: skip


@router.get("/usage")
async def usage(owner: Caller, services: ServicesDep) -> UsageOut:
    """The caller's usage against each quota, and the limits every request has."""
    registry = services.engine.registry.usage
    used, most = asdict(await run_in_threadpool(registry.of, owner)), asdict(registry.quotas)
    settings = services.settings
    limits = {
        "requests_in_flight": settings.per_key_requests,
        "uploads_in_flight": settings.per_key_uploads,
        "input_chars": settings.max_input_chars,
        "job_input_chars": settings.max_job_chars,
        "audio_s": settings.max_audio_s,
        "job_audio_s": settings.max_job_audio_s,
    }
    quotas = {name: Quota(used=used[name], limit=most[name]) for name in used}
    return UsageOut(owner=owner, quotas=quotas, limits=limits)


@router.get("/keys")
async def list_keys(owner: Caller, services: ServicesDep) -> ListOf:
    """The caller's API keys (never the keys themselves), oldest first."""
    keys = await run_in_threadpool(services.engine.registry.keys.list, owner)
    return ListOf(data=[_key_out(key) for key in keys])


@router.delete("/keys/{key_id}")
async def revoke_key(key_id: str, owner: Caller, services: ServicesDep) -> KeyOut:
    """Revoke one of the caller's keys (by id or prefix); another owner's is 404."""
    keys = services.engine.registry.keys
    return _key_out(await run_in_threadpool(lambda: keys.revoke(key_id, owner=owner)))
