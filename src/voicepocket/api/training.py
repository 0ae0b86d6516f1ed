"""Your own voice over HTTP: prompts, drafts, samples, consent, training, progress, export.

Registered before the voices router, whose ``/v1/voices/{voice_id:path}`` would swallow
these paths (``prompts`` and ``trained`` are reserved names, so no owner or slug takes
them). Uploads are read whole (recordings are small; the request body limit bounds them)
and checked in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from voicepocket.api.deps import Caller, ServicesDep
from voicepocket.api.schemas import (
    PromptOut,
    PromptsOut,
    SampleOut,
    SamplesOut,
    TrainedVoiceCreate,
    TrainingOut,
    TrainRequest,
    VoiceOut,
)
from voicepocket.api.speech import ERRORS
from voicepocket.api.state import Lifecycle
from voicepocket.errors import SampleRejected
from voicepocket.registry import VoiceRecord
from voicepocket.registry.training import Sample, Training
from voicepocket.training.prompts import prompt_set
from voicepocket.training.service import TrainedVoice

router = APIRouter(prefix="/v1/voices", tags=["your own voice"], responses=ERRORS)

MAX_RECORDING_BYTES = 16 * 1024 * 1024
"""Largest recording accepted: 20 s of 48 kHz stereo float WAV is 7.7 MB."""

EVENTS_POLL_S = 0.5

SAMPLE_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["audio"],
                    "properties": {
                        "audio": {"type": "string", "format": "binary",
                                  "description": "wav, flac, ogg/opus, mp3 or webm/opus."},
                        "text": {"type": "string", "description": "What was read."},
                        "prompt_id": {"type": "string", "description": "Or: the prompt read."},
                    },
                }
            }
        },
    }
}  # fmt: skip


def training_out(training: Training) -> TrainingOut:
    return TrainingOut(
        state=training.state.value, step=training.step, steps=training.steps,
        loss=training.loss, eval_loss=training.eval_loss, eta_s=training.eta_s,
        started_at=training.started_at,
        finished_at=training.finished_at, message=training.message, base=training.base,
        language=training.language, rounds=training.rounds,
    )  # fmt: skip


def voice_out(record: VoiceRecord, trained: TrainedVoice | None = None) -> VoiceOut:
    return VoiceOut(
        id=record.ref, owner=record.owner, slug=record.slug, kind=record.kind,
        public=record.public, ready=record.ready, sample_rate=record.sample_rate,
        resident_bytes=record.cost_bytes, model_sha256=record.model_sha256,
        created_at=record.created_at,
        dataset_duration_s=None if trained is None else trained.dataset_duration_s,
        consent=None if trained is None else trained.consent,
        training=None if trained is None else training_out(trained.training),
    )  # fmt: skip


def _sample_out(sample: Sample) -> SampleOut:
    return SampleOut(id=sample.id, kind=sample.kind, text=sample.text,  # type: ignore[arg-type]
                     prompt_id=sample.prompt_id, duration_s=round(sample.duration_s, 3),
                     created_at=sample.created_at)  # fmt: skip


@router.get("/prompts")
async def prompts(language: str = Query("en", max_length=8)) -> PromptsOut:
    """The sentences to read, and the consent sentence, for a language (en, ko)."""
    found = prompt_set(language)
    return PromptsOut(
        language=found.language, consent=found.consent,
        prompts=[PromptOut(id=p.id, text=p.text) for p in found.prompts],
    )  # fmt: skip


@router.post("/trained", status_code=201)
async def create_trained(
    body: TrainedVoiceCreate, owner: Caller, services: ServicesDep
) -> VoiceOut:
    """A draft voice (``training.state`` ``draft``) to add samples to and train."""
    trained = await run_in_threadpool(
        lambda: services.training.create(owner=owner, slug=body.slug, language=body.language,
                                         base=body.base, public=body.public)
    )
    return voice_out(trained.record, trained)


async def _recording(request: Request) -> tuple[bytes, dict[str, str]]:
    form = await request.form(max_files=1, max_fields=4, max_part_size=MAX_RECORDING_BYTES)
    audio = form.get("audio")
    if not isinstance(audio, UploadFile):
        raise SampleRejected("Send the recording as the multipart file 'audio'.", code="bad_audio")
    data = await audio.read(MAX_RECORDING_BYTES + 1)
    if len(data) > MAX_RECORDING_BYTES:
        raise SampleRejected(f"The recording is over {MAX_RECORDING_BYTES >> 20} MB; record "
                             "one sentence at a time.", code="too_long")  # fmt: skip
    fields = {k: str(v) for k, v in form.items() if not isinstance(v, UploadFile)}
    return data, fields


@router.post("/{owner_name}/{slug}/samples", status_code=201, openapi_extra=SAMPLE_SCHEMA)
async def add_sample(
    owner_name: str, slug: str, request: Request, owner: Caller, services: ServicesDep
) -> SampleOut:
    """Add a recording of a prompt (``prompt_id``) or of ``text``; checked at once: 201, or
    422 with the reason (``code``) and what to do."""
    async with services.uploads.admitted(owner):
        data, fields = await _recording(request)
        sample = await services.uploads.run(
            lambda: services.training.add_sample(
                owner=owner, voice=f"{owner_name}/{slug}", data=data,
                text=fields.get("text") or None, prompt_id=fields.get("prompt_id") or None,
            )
        )
    return _sample_out(sample)


@router.get("/{owner_name}/{slug}/samples")
async def list_samples(
    owner_name: str, slug: str, owner: Caller, services: ServicesDep
) -> SamplesOut:
    samples = await run_in_threadpool(
        lambda: services.training.samples(owner=owner, voice=f"{owner_name}/{slug}")
    )
    total = round(sum(s.duration_s for s in samples), 3)
    return SamplesOut(data=[_sample_out(s) for s in samples], dataset_duration_s=total)


@router.delete("/{owner_name}/{slug}/samples/{sample_id}", status_code=204)
async def delete_sample(
    owner_name: str, slug: str, sample_id: str, owner: Caller, services: ServicesDep
) -> Response:
    await run_in_threadpool(
        lambda: services.training.delete_sample(owner=owner, voice=f"{owner_name}/{slug}",
                                                sample_id=sample_id)
    )
    return Response(status_code=204)


@router.post("/{owner_name}/{slug}/consent", status_code=201, openapi_extra=SAMPLE_SCHEMA)
async def add_consent(
    owner_name: str, slug: str, request: Request, owner: Caller, services: ServicesDep
) -> SampleOut:
    """The owner reading the consent sentence (``consent`` of ``GET /v1/voices/prompts``);
    English recordings are checked against it by the offline recognizer."""
    async with services.uploads.admitted(owner):
        data, _ = await _recording(request)
        sample = await services.uploads.run(
            lambda: services.training.add_consent(owner=owner, voice=f"{owner_name}/{slug}",
                                                  data=data)
        )
    return _sample_out(sample)


@router.post("/{owner_name}/{slug}/train", status_code=202)
async def train(
    owner_name: str, slug: str, owner: Caller, services: ServicesDep,
    body: TrainRequest | None = None,
) -> VoiceOut:  # fmt: skip
    """Queue a training round (202). 422 ``consent_missing`` / ``dataset_too_small`` /
    ``too_many_steps``; 409 while one is queued or running; 429 over the owner's quota."""
    steps = body.steps if body is not None else None
    voice = f"{owner_name}/{slug}"
    trained = await run_in_threadpool(
        lambda: services.training.request(owner=owner, voice=voice, steps=steps)
    )
    return voice_out(trained.record, trained)


@router.delete("/{owner_name}/{slug}/train")
async def cancel(owner_name: str, slug: str, owner: Caller, services: ServicesDep) -> VoiceOut:
    """Cancel a queued or running training (samples are kept)."""
    trained = await run_in_threadpool(
        lambda: services.training.cancel(owner=owner, voice=f"{owner_name}/{slug}")
    )
    return voice_out(trained.record, trained)


@router.get("/{owner_name}/{slug}/training/events", response_class=StreamingResponse)
async def training_events(
    owner_name: str, slug: str, owner: Caller, services: ServicesDep
) -> StreamingResponse:
    """The voice's ``training`` as server-sent events: one ``training`` event whenever it
    changes; the stream ends once the training is ready, failed or cancelled."""
    voice = f"{owner_name}/{slug}"
    await run_in_threadpool(lambda: services.training.own(voice, owner))  # 404 before 200

    async def events() -> AsyncIterator[bytes]:
        last = None
        while services.lifecycle is not Lifecycle.DRAINING:
            _, training = await run_in_threadpool(lambda: services.training.own(voice, owner))
            body = training_out(training).model_dump(mode="json")
            if body != last:
                yield f"event: training\ndata: {json.dumps(body)}\n\n".encode()
                last = body
            if training.state.value in ("ready", "failed", "cancelled", "draft"):
                return
            await asyncio.sleep(EVENTS_POLL_S)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@router.get("/{owner_name}/{slug}/export")
async def export(owner_name: str, slug: str, owner: Caller, services: ServicesDep) -> Response:
    """Your voice to take away: a zip of its ONNX model and config (Piper-style layout)."""
    async with services.uploads.admitted(owner):
        data = await services.uploads.run(
            lambda: services.training.export(owner=owner, voice=f"{owner_name}/{slug}")
        )
    disposition = f'attachment; filename="{owner_name}-{slug}.zip"'
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": disposition})  # fmt: skip
