"""``POST /v1/audio/speech``: OpenAI-compatible, always streamed."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator, Mapping

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from voicepocket import audio
from voicepocket.api.deps import Caller, ServicesDep
from voicepocket.api.schemas import ErrorOut, SpeechRequest
from voicepocket.chunks import SynthesisParams
from voicepocket.errors import EngineError, VoicePocketError
from voicepocket.synthesizer import ClientGone, OpenSynthesis, Synthesizer, close_blocks

_LOGGER = logging.getLogger(__name__)
router = APIRouter(tags=["speech"])

ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorOut}
    for status in (400, 401, 404, 413, 422, 429, 503)
}


class SpeechResponse(StreamingResponse):
    """A streamed synthesis that is released however the response ends: after its last
    byte, when the client leaves mid-stream, and when the client left before the body
    started (no generator ran then, so no generator's ``finally`` would)."""

    def __init__(
        self,
        blocks: Iterator[bytes],
        *,
        synthesizer: Synthesizer,
        job: OpenSynthesis,
        media_type: str,
        headers: Mapping[str, str],
    ) -> None:
        super().__init__(synthesizer.stream(blocks), media_type=media_type, headers=headers)
        self._release: Callable[[], None] = lambda: _release(synthesizer, job, blocks)
        self._stop = lambda: synthesizer.stop(job, ClientGone())

    async def listen_for_disconnect(self, receive: Receive) -> None:
        await super().listen_for_disconnect(receive)
        # A cancelled task waits for its thread, which may be deep in a response that sends
        # nothing until its end (flac): stop the synthesis at its next chunk.
        self._stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(self._release)


def _release(synthesizer: Synthesizer, job: OpenSynthesis, blocks: Iterator[bytes]) -> None:
    close_blocks(blocks)
    synthesizer.release(job)


@router.post(
    "/v1/audio/speech",
    responses={200: {"content": {t: {} for t in audio.MEDIA_TYPES.values()}}, **ERRORS},
    response_class=StreamingResponse,
)
async def create_speech(
    body: SpeechRequest, owner: Caller, services: ServicesDep, request: Request
) -> Response:
    """Speak ``input`` in ``voice``. The body streams as soon as the first chunk is
    synthesized; with ``stream_format: "sse"`` it is OpenAI's speech SSE events. An
    identical earlier request is answered from the output cache (ETag, 304 on
    ``If-None-Match``); ``Cache-Control: no-cache`` synthesizes anew, ``no-store`` keeps
    the result out of the cache.

    A failure after the first byte cannot change the status any more: an SSE stream
    ends with an ``error`` event, any other body is aborted (no terminating chunk), so a
    client never takes cut audio for complete audio."""
    fmt = audio.check_format(body.response_format)
    params = SynthesisParams(speed=body.speed, noise_scale=body.noise_scale, noise_w=body.noise_w)
    synthesizer = services.synthesizer
    job = await synthesizer.open(
        owner=owner, voice=body.voice, text=body.input, fmt=fmt, params=params
    )
    try:
        return await _respond(services, request, job, body, params)
    except BaseException:
        synthesizer.release(job)
        raise


async def _respond(
    services: ServicesDep,
    request: Request,
    job: OpenSynthesis,
    body: SpeechRequest,
    params: SynthesisParams,
) -> Response:
    synthesizer, fmt = services.synthesizer, job.format
    record = job.speech.record
    headers = {"X-Voice": record.ref}
    if body.stream_format == "sse":
        events = sse_events(synthesizer.audio(job), input_chars=job.input_chars)
        return SpeechResponse(events, synthesizer=synthesizer, job=job,
                              media_type="text/event-stream", headers=headers)  # fmt: skip
    key = services.cache.key(owner=job.owner, speech=job.speech, fmt=fmt, params=params)
    headers |= {"ETag": f'"{key}"', "Cache-Control": services.cache.cache_control}
    directives = request.headers.get("cache-control", "").lower()
    if "no-cache" not in directives:
        if request.headers.get("if-none-match", "").strip('"') == key:
            synthesizer.release(job)
            return Response(status_code=304, headers=headers)
        cached = await run_in_threadpool(services.cache.get, record, key, fmt)
        if cached is not None:  # streamed as it is read, the admission held to its end
            services.metrics.cache_hits.inc()
            return SpeechResponse(cached, synthesizer=synthesizer, job=job,
                                  media_type=audio.MEDIA_TYPES[fmt], headers=headers)  # fmt: skip
    services.metrics.cache_misses.inc()
    blocks = synthesizer.audio(job)
    if "no-store" not in directives:
        blocks = services.cache.tee(blocks, record, key, fmt)
    return SpeechResponse(blocks, synthesizer=synthesizer, job=job,
                          media_type=audio.MEDIA_TYPES[fmt], headers=headers)  # fmt: skip


def sse_events(blocks: Iterator[bytes], *, input_chars: int) -> Iterator[bytes]:
    """OpenAI's speech SSE: ``speech.audio.delta`` per block, then ``speech.audio.done``;
    a failure mid-stream is an ``error`` event (in OpenAI's error shape) instead."""
    try:
        for block in blocks:
            delta = {"type": "speech.audio.delta", "audio": base64.b64encode(block).decode()}
            yield _event(delta)
    except ClientGone:
        raise
    except VoicePocketError as error:
        yield _event({"type": "error", "error": _error_body(error)})
        return
    except Exception:
        _LOGGER.exception("Synthesis failed mid-stream")
        yield _event({"type": "error", "error": _error_body(EngineError("Synthesis failed."))})
        return
    finally:
        close_blocks(blocks)
    usage = {"input_tokens": input_chars, "output_tokens": 0, "total_tokens": input_chars}
    yield _event({"type": "speech.audio.done", "usage": usage})


def _event(body: Mapping[str, object]) -> bytes:
    return f"data: {json.dumps(body)}\n\n".encode()


def _error_body(error: VoicePocketError) -> dict[str, object]:
    return {"message": error.message, "type": error.type, "param": error.param,
            "code": error.code}  # fmt: skip
