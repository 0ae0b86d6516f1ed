"""``POST /v1/audio/speech``: OpenAI-compatible, always streamed."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

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
async def create_speech(body: SpeechRequest, owner: Caller, app: App) -> StreamingResponse:
    """Speak ``input`` in ``voice``. The body streams as soon as the first chunk is
    synthesized; with ``stream_format: "sse"`` it is OpenAI's speech SSE events."""
    fmt = audio.check_format(body.response_format)
    params = SynthesisParams(speed=body.speed, noise_scale=body.noise_scale, noise_w=body.noise_w)
    synthesizer = app.synthesizer
    job = await synthesizer.open(
        owner=owner, voice=body.voice, text=body.input, fmt=fmt, params=params
    )
    blocks = synthesizer.audio(job)
    headers = {"X-Voice": job.speech.record.ref}
    if body.stream_format == "sse":
        events = sse_events(blocks, input_chars=job.input_chars)
        return StreamingResponse(
            synthesizer.stream(events), media_type="text/event-stream", headers=headers
        )
    return StreamingResponse(
        synthesizer.stream(blocks), media_type=audio.MEDIA_TYPES[fmt], headers=headers
    )
