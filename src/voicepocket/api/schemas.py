"""Request and response bodies at the HTTP edge (pydantic; inside, plain dataclasses)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

OPENAI_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")


class SpeechRequest(BaseModel):
    """OpenAI's ``POST /v1/audio/speech`` body, plus two optional VoicePocket fields."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(
        default="tts-1",
        max_length=200,
        description="Accepted for compatibility: tts-1, tts-1-hd, gpt-4o-mini-tts or a voice "
        "id; the voice alone decides how it sounds.",
    )
    input: str = Field(description="Text to speak.")
    voice: str = Field(
        max_length=200,
        description="owner/slug, or a bare slug: the caller's own voice of that name, else "
        "a public one (e.g. joe).",
    )
    response_format: str = Field(
        default="mp3", max_length=16, description="wav, mp3, opus, flac or pcm."
    )
    speed: float = Field(default=1.0, ge=0.25, le=4.0, description="Speaking rate.")
    instructions: str | None = Field(
        default=None, max_length=4096, description="Accepted and ignored (no style control)."
    )
    stream_format: Literal["audio", "sse"] = Field(
        default="audio",
        description="audio: the file's bytes; sse: speech.audio.delta/done events.",
    )
    noise_scale: float | None = Field(
        default=None, ge=0, le=2, description="VoicePocket: generator noise; 0 = deterministic."
    )
    noise_w: float | None = Field(
        default=None, ge=0, le=2, description="VoicePocket: duration noise; 0 = deterministic."
    )


class TrainRequest(BaseModel):
    """``POST /v1/voices/{owner}/{slug}/train``: an optional body."""

    steps: int | None = Field(
        default=None, ge=1,
        description="Steps of this round, at most VOICEPOCKET_TRAIN_MAX_STEPS; default: "
        "VOICEPOCKET_TRAIN_STEPS_PER_MINUTE per minute of accepted speech, within that cap.",
    )  # fmt: skip


class SynthesisRequest(BaseModel):
    """``POST /v1/syntheses``: synthesize and store."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    voice: str = Field(max_length=200)
    input: str
    response_format: str = Field(default="mp3", max_length=16)
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    run_async: bool = Field(
        default=False,
        alias="async",
        description="Answer 202 with a job at once (automatic above VOICEPOCKET_MAX_INPUT_CHARS).",
    )


class SynthesisOut(BaseModel):
    id: str
    object: Literal["synthesis"] = "synthesis"
    voice: str
    format: str
    url: str
    bytes: int
    duration_s: float
    input_chars: int
    created_at: datetime


class TrainingOut(BaseModel):
    """Where a trained voice's training is."""

    state: Literal["draft", "queued", "training", "compiling", "ready", "failed", "cancelled"]
    step: int
    steps: int
    loss: float | None = Field(description="Mel-spectrogram L1 loss on the training clips, "
                               "averaged over the epoch.")
    eval_loss: float | None = Field(description="The same on the held-out clips, at the last "
                                    "evaluation (once per epoch).")
    eta_s: float | None
    started_at: datetime | None
    finished_at: datetime | None
    message: str | None
    base: str
    language: str
    rounds: int = Field(description="Rounds finished: from the first, a new round continues "
                        "from the last one's checkpoint.")


class VoiceOut(BaseModel):
    id: str = Field(description="owner/slug")
    object: Literal["voice"] = "voice"
    owner: str
    slug: str
    kind: str
    public: bool
    ready: bool = Field(description="Whether it can speak (a trained voice's draft cannot).")
    sample_rate: int
    resident_bytes: int
    model_sha256: str
    created_at: datetime
    dataset_duration_s: float | None = Field(
        default=None, description="Trained voices: seconds of accepted speech."
    )
    consent: bool | None = Field(
        default=None, description="Trained voices: whether a consent recording is accepted."
    )
    training: TrainingOut | None = Field(default=None, description="Trained voices only.")


class TrainedVoiceCreate(BaseModel):
    """``POST /v1/voices/trained``: a draft of a voice trained from your recordings."""

    model_config = ConfigDict(extra="forbid")

    slug: str = Field(max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    language: Literal["en", "ko"]
    base: str | None = Field(default=None, max_length=64,
                             description="A training base; default: the server's for the "
                             "language.")  # fmt: skip
    public: bool = False


class SampleOut(BaseModel):
    id: str
    object: Literal["voice.sample"] = "voice.sample"
    kind: Literal["sample", "consent"]
    text: str
    prompt_id: str | None
    duration_s: float
    problems: list[str] = Field(default_factory=list,
                                description="Always empty for an accepted sample.")  # fmt: skip
    created_at: datetime


class SamplesOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[SampleOut]
    dataset_duration_s: float


class PromptOut(BaseModel):
    id: str
    text: str


class PromptsOut(BaseModel):
    language: str
    consent: str = Field(description="The sentence a user reads to consent.")
    prompts: list[PromptOut]


class VoicePatch(BaseModel):
    public: bool


class Quota(BaseModel):
    used: int
    limit: int


class UsageOut(BaseModel):
    object: str = "usage"
    owner: str
    quotas: dict[str, Quota]
    """Stored and queued (``VOICEPOCKET_QUOTA_*``): voices, samples, syntheses,
    synthesis_bytes, jobs."""
    limits: dict[str, float]
    """Per request and per key: requests_in_flight, uploads_in_flight, input_chars,
    job_input_chars, audio_s, job_audio_s."""


class KeyOut(BaseModel):
    object: str = "api_key"
    id: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class ListOf(BaseModel):
    object: Literal["list"] = "list"
    data: list[VoiceOut] | list[SynthesisOut] | list[KeyOut]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorOut(BaseModel):
    error: ErrorBody
