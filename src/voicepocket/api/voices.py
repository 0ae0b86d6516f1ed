"""Voice management: list, upload (validated, registered and pre-warmed), publish, delete."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from voicepocket.api.deps import Caller, ServicesDep
from voicepocket.api.schemas import ListOf, VoiceOut, VoicePatch
from voicepocket.api.speech import ERRORS
from voicepocket.api.training import voice_out
from voicepocket.errors import InvalidVoiceFiles, RequestError, VoiceNotFound
from voicepocket.registry import VoiceRecord
from voicepocket.registry.ids import check_name

router = APIRouter(prefix="/v1/voices", tags=["voices"], responses=ERRORS)

UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["model", "config", "slug"],
                    "properties": {
                        "model": {"type": "string", "format": "binary",
                                  "description": "piper: the voice's .onnx file; coqui: "
                                                 "the trainer's model.pth checkpoint."},
                        "config": {"type": "string", "format": "binary",
                                   "description": "piper: its .onnx.json; coqui: its "
                                                  "config.json."},
                        "kind": {"type": "string", "enum": ["piper", "coqui"],
                                 "default": "piper"},
                        "slug": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"},
                        "public": {"type": "boolean", "default": False},
                        "replace": {"type": "boolean", "default": False},
                    },
                }
            }
        },
    }
}  # fmt: skip


UPLOAD_NAMES = {"piper": ("model.onnx", "model.onnx.json"), "coqui": ("model.pth", "config.json")}
"""Upload kind -> the names its two files are saved under while they are registered."""


def _out(record: VoiceRecord) -> VoiceOut:
    return voice_out(record)


@router.get("")
async def list_voices(owner: Caller, services: ServicesDep) -> ListOf:
    """The caller's voices and every public voice."""
    voices = services.engine.registry.voices
    records = await run_in_threadpool(lambda: voices.list_voices(caller=owner))
    return ListOf(data=[_out(r) for r in records])


@router.post("", status_code=201, openapi_extra=UPLOAD_SCHEMA)
async def upload_voice(request: Request, owner: Caller, services: ServicesDep) -> VoiceOut:
    """Upload a voice (multipart: model, config, slug[, kind, public, replace]): a Piper
    voice, or with ``kind=coqui`` a coqui-tts VITS checkpoint, compiled to ONNX here.
    Answers 201 once it is validated, registered and warm in the pool."""
    async with services.uploads.admitted(owner):
        return await _upload(request, owner, services)


async def _upload(request: Request, owner: str, services: ServicesDep) -> VoiceOut:
    form = await request.form(max_files=2, max_fields=8)
    kind = str(form.get("kind") or "piper")
    if kind not in UPLOAD_NAMES:
        raise RequestError(f"kind must be one of {', '.join(UPLOAD_NAMES)}.", param="kind")
    model, config = form.get("model"), form.get("config")
    if not isinstance(model, UploadFile) or not isinstance(config, UploadFile):
        model_name, config_name = UPLOAD_NAMES[kind]
        raise InvalidVoiceFiles(f"Send the files 'model' ({model_name}) and 'config' "
                                f"({config_name}).")  # fmt: skip
    slug = check_name(str(form.get("slug", "")), param="slug")
    public, replace = _flag(form.get("public")), _flag(form.get("replace"))
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=_work_dir(services)))
    try:
        model_path, config_path = (folder / name for name in UPLOAD_NAMES[kind])
        await services.uploads.run(_save, model, model_path)
        await services.uploads.run(_save, config, config_path)
        record = await services.uploads.run(
            lambda: services.engine.add_voice(
                owner=owner, slug=slug, kind=kind, model_file=model_path,
                config_file=config_path, public=public, replace=replace,
            )
        )  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if replace:
        await run_in_threadpool(services.cache.purge, record)
    return _out(record)


def _work_dir(services: ServicesDep) -> Path:
    folder = services.settings.home / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _flag(value: object) -> bool:
    if value is None:
        return False
    text = str(value).strip().lower()
    if text not in ("true", "false", "1", "0"):
        raise RequestError("Flags must be true or false.", param="public")
    return text in ("true", "1")


def _save(upload: UploadFile, path: Path) -> None:
    upload.file.seek(0)
    with path.open("wb") as sink:
        shutil.copyfileobj(upload.file, sink, 1024 * 1024)


def _own(services: ServicesDep, voice_id: str, owner: str) -> VoiceRecord:
    record = services.engine.registry.voices.resolve(voice_id, caller=owner)
    if record.owner != owner:
        raise VoiceNotFound(f"Voice {voice_id[:130]} not found.", param="voice")
    return record


@router.get("/{voice_id:path}")
async def get_voice(voice_id: str, owner: Caller, services: ServicesDep) -> VoiceOut:
    """One voice the caller may use."""
    def describe() -> VoiceOut:
        record = services.engine.registry.voices.resolve(voice_id, caller=owner)
        if record.owner != owner:
            return voice_out(record)  # someone else's training is not theirs to see
        return voice_out(record, services.training.describe(record))

    return await run_in_threadpool(describe)


@router.patch("/{voice_id:path}")
async def patch_voice(
    voice_id: str, body: VoicePatch, owner: Caller, services: ServicesDep
) -> VoiceOut:
    """Make one of the caller's voices public or private."""

    def patch() -> VoiceRecord:
        voices = services.engine.registry.voices
        return voices.set_public(_own(services, voice_id, owner), body.public)

    return _out(await run_in_threadpool(patch))


@router.delete("/{voice_id:path}", status_code=204)
async def delete_voice(voice_id: str, owner: Caller, services: ServicesDep) -> Response:
    """Delete one of the caller's voices: files, registry row, and its place in the pool."""
    record = await run_in_threadpool(lambda: services.engine.delete_voice(voice_id, caller=owner))
    await run_in_threadpool(services.cache.purge, record)
    return Response(status_code=204)
