"""``POST /v1/audio/speech``: OpenAI-compatible, always streamed."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from voicepocket import audio
from voicepocket.api.deps import App, Caller
from voicepocket.api.schemas import ErrorOut, SpeechRequest
from voicepocket.api.synthesis import sse_events
from voicepocket.voices import SynthesisParams

router = APIRouter(tags=["speech"])

ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorOut}
    for status in (400, 401, 404, 413, 422, 429, 503)
}


@router.post(
    "/v1/audio/speech",
    responses={200: {"content": {t: {} for t in audio.MEDIA_TYPES.values()}}, **ERRORS},
    response_class=StreamingResponse,
)
async def create_speech(
    body: SpeechRequest, owner: Caller, app: App, request: Request
) -> Response:
    """Speak ``input`` in ``voice``. The body streams as soon as the first chunk is
    synthesized; with ``stream_format: "sse"`` it is OpenAI's speech SSE events. An
    identical earlier request is answered from the output cache (ETag, 304 on
    ``If-None-Match``); ``Cache-Control: no-cache`` synthesizes anew, ``no-store`` keeps
    the result out of the cache."""
    fmt = audio.check_format(body.response_format)
    params = SynthesisParams(speed=body.speed, noise_scale=body.noise_scale, noise_w=body.noise_w)
    synthesizer = app.synthesizer
    job = await synthesizer.open(
        owner=owner, voice=body.voice, text=body.input, fmt=fmt, params=params
    )
    record = job.speech.record
    headers = {"X-Voice": record.ref}
    if body.stream_format == "sse":
        events = sse_events(synthesizer.audio(job), input_chars=job.input_chars)
        return StreamingResponse(
            synthesizer.stream(events), media_type="text/event-stream", headers=headers
        )
    key = app.cache.key(owner=owner, speech=job.speech, fmt=fmt, params=params)
    headers |= {"ETag": f'"{key}"', "Cache-Control": app.cache.cache_control}
    directives = request.headers.get("cache-control", "").lower()
    if "no-cache" not in directives:
        if request.headers.get("if-none-match", "").strip('"') == key:
            synthesizer.cancel(job)
            return Response(status_code=304, headers=headers)
        cached = await run_in_threadpool(app.cache.get, record, key, fmt)
        if cached is not None:
            synthesizer.cancel(job)
            app.metrics.cache_hits.inc()
            return Response(cached, media_type=audio.MEDIA_TYPES[fmt], headers=headers)
    app.metrics.cache_misses.inc()
    blocks = synthesizer.audio(job)
    if "no-store" not in directives:
        blocks = app.cache.tee(blocks, record, key, fmt)
    return StreamingResponse(
        synthesizer.stream(blocks), media_type=audio.MEDIA_TYPES[fmt], headers=headers
    )
