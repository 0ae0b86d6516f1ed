"""Stored syntheses (the seed's flow): synthesize, store at ``{owner}/{uuid}.{ext}``, list,
fetch, delete — each owner sees only their own."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from voicepocket import audio
from voicepocket.api.deps import Caller, ServicesDep
from voicepocket.api.jobs import JobOut, job_out
from voicepocket.api.schemas import ListOf, SynthesisOut, SynthesisRequest
from voicepocket.api.speech import ERRORS
from voicepocket.api.state import Services
from voicepocket.chunks import SynthesisParams
from voicepocket.errors import EmptyText, TextTooLong
from voicepocket.registry.jobs import Job
from voicepocket.registry.syntheses import Synthesis

router = APIRouter(prefix="/v1/syntheses", tags=["syntheses"], responses=ERRORS)


def _out(synthesis: Synthesis) -> SynthesisOut:
    return SynthesisOut(
        id=synthesis.id,
        voice=synthesis.voice,
        format=synthesis.format,
        url=f"/v1/syntheses/{synthesis.id}/audio",
        bytes=synthesis.bytes,
        duration_s=round(synthesis.duration_s, 3),
        input_chars=synthesis.input_chars,
        created_at=synthesis.created_at,
    )


@router.post("", status_code=201, response_model=SynthesisOut, responses={202: {"model": JobOut}})
async def create_synthesis(
    body: SynthesisRequest, owner: Caller, services: ServicesDep
) -> SynthesisOut | JSONResponse:
    """Synthesize ``input`` and store the audio; answers once it is stored. With
    ``"async": true``, or for input longer than VOICEPOCKET_MAX_INPUT_CHARS, answers 202
    with a job to follow at ``GET /v1/jobs/{id}``."""
    fmt = audio.check_format(body.response_format)
    if body.run_async or len(body.input) > services.settings.max_input_chars:
        job = await run_in_threadpool(_submit_job, services, owner, body, fmt)
        return JSONResponse(job_out(job).model_dump(mode="json"), status_code=202)
    usage = services.engine.registry.usage
    await run_in_threadpool(usage.check, owner, "syntheses", "synthesis_bytes")
    synthesizer = services.synthesizer
    opened = await synthesizer.open(
        owner=owner, voice=body.voice, text=body.input, fmt=fmt,
        params=SynthesisParams(speed=body.speed),
    )  # fmt: skip
    try:
        synthesis = await synthesizer.run(
            lambda: services.archive.store(
                synthesizer.audio(opened, progressive=False),
                owner=owner,
                voice=opened.speech.record.ref,
                fmt=fmt,
                input_chars=opened.input_chars,
                duration_s=lambda: opened.audio_s,
            )
        )
    finally:
        synthesizer.release(opened)
    return _out(synthesis)


def _submit_job(services: Services, owner: str, body: SynthesisRequest, fmt: str) -> Job:
    """Check what can be checked now (voice, length, text), then queue the job."""
    if len(body.input) > services.settings.max_job_chars:
        raise TextTooLong(
            f"Input is {len(body.input)} characters; the limit for a job is "
            f"{services.settings.max_job_chars}.",
            param="input",
        )
    if not body.input.strip():
        raise EmptyText("Input has no text the voice can speak.", param="input")
    services.engine.registry.voices.resolve(body.voice, caller=owner)
    services.engine.registry.usage.check(owner, "jobs", "syntheses", "synthesis_bytes")
    return services.engine.registry.jobs.create(
        owner=owner, voice=body.voice, text=body.input, fmt=fmt, speed=body.speed
    )


@router.get("")
async def list_syntheses(owner: Caller, services: ServicesDep) -> ListOf:
    """The caller's stored syntheses, newest first."""
    found = await run_in_threadpool(lambda: services.archive.list(owner=owner))
    return ListOf(data=[_out(s) for s in found])


@router.get("/{synthesis_id}")
async def get_synthesis(synthesis_id: str, owner: Caller, services: ServicesDep) -> SynthesisOut:
    synthesis = await run_in_threadpool(lambda: services.archive.get(synthesis_id, owner=owner))
    return _out(synthesis)


@router.get(
    "/{synthesis_id}/audio",
    response_class=StreamingResponse,
    responses={200: {"content": {t: {} for t in audio.MEDIA_TYPES.values()}}},
)
async def get_synthesis_audio(synthesis_id: str, owner: Caller, services: ServicesDep) -> Response:
    """The stored audio, streamed from storage; with ``VOICEPOCKET_AUDIO_REDIRECT`` a 307
    to a short-lived signed URL instead, where the store can sign (GCS, S3)."""
    archive = services.archive
    synthesis = await run_in_threadpool(lambda: archive.get(synthesis_id, owner=owner))
    if services.settings.audio_redirect:
        expires_s = services.settings.signed_url_expiry_s
        url = await run_in_threadpool(lambda: archive.signed_url(synthesis, expires_s=expires_s))
        if url is not None:
            return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    blocks = archive.read(synthesis)
    return StreamingResponse(
        services.synthesizer.stream(blocks),
        media_type=audio.MEDIA_TYPES[synthesis.format],
        headers={
            "Content-Length": str(synthesis.bytes),
            "Content-Disposition": f'attachment; filename="{synthesis.id}.{synthesis.format}"',
            # A stored synthesis never changes: its id is a strong validator.
            "ETag": f'"{synthesis.id}"',
            "Cache-Control": services.cache.cache_control,
        },
    )


@router.delete("/{synthesis_id}", status_code=204)
async def delete_synthesis(synthesis_id: str, owner: Caller, services: ServicesDep) -> Response:
    await run_in_threadpool(lambda: services.archive.delete(synthesis_id, owner=owner))
    return Response(status_code=204)
