"""What a user does with a voice of their own, as the API asks it: create a draft, add
samples and a consent recording (each checked at once), train, follow, cancel, export.

``VoiceTraining`` owns these operations and their tenancy: every one takes the caller,
and another owner's draft, samples, consent or training is ``VoiceNotFound``, exactly as
if it did not exist. Checks are CPU work (decode, VAD, recognizer); callers run these
methods in a worker thread, never on an event loop.
"""

from __future__ import annotations

import io
import threading
import uuid
import zipfile
from dataclasses import dataclass

from voicepocket.engine import Engine
from voicepocket.errors import (
    NotFound,
    RequestError,
    SampleRejected,
    TrainingRefused,
    VoiceNotFound,
)
from voicepocket.registry import VoiceRecord
from voicepocket.registry.training import BaseModel, Sample, Training, TrainingRegistry
from voicepocket.store import ObjectStore
from voicepocket.training.bases import base_manifest, unsayable
from voicepocket.training.checks import CheckedSample, Recognizer, SampleLimits, check_sample
from voicepocket.training.files import VoiceFiles
from voicepocket.training.prompts import LANGUAGES, prompt_set
from voicepocket.voices.coqui_config import CoquiManifest

CONSENT = "consent"
SAMPLE = "sample"


@dataclass(frozen=True, slots=True)
class TrainedVoice:
    """A trained voice as its owner sees it."""

    record: VoiceRecord
    training: Training
    dataset_duration_s: float
    samples: int
    consent: bool


class VoiceTraining:
    """The training side's operations for one engine."""

    def __init__(self, engine: Engine, *, recognizer: Recognizer | None = None) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.limits = SampleLimits.from_settings(self.settings)
        self._recognizer = recognizer
        self._recognizer_lock = threading.Lock()

    @property
    def _trainings(self) -> TrainingRegistry:
        return self.engine.registry.training

    def recognizer(self) -> Recognizer:
        with self._recognizer_lock:
            if self._recognizer is None:
                self._recognizer = Recognizer.bundled()
            return self._recognizer

    # -- drafts ----------------------------------------------------------------------

    def create(
        self, *, owner: str, slug: str, language: str, base: str | None, public: bool
    ) -> TrainedVoice:
        if language not in LANGUAGES:
            raise RequestError(f"language must be one of {', '.join(LANGUAGES)}.",
                               param="language")  # fmt: skip
        name = base or self.settings.train_bases.get(language)
        if name is None:
            raise NotFound(
                f"No training base is set up for {language!r} on this server (the operator "
                "adds one with `voicepocket bases add` and VOICEPOCKET_TRAIN_BASES).",
                param="base",
            )
        self.engine.registry.usage.check(owner, "voices")
        chosen = self._trainings.base(name)
        if chosen.language != language:
            raise RequestError(f"Base {name} is for {chosen.language!r}, not {language!r}.",
                               param="base")  # fmt: skip
        record, training = self._trainings.create_draft(
            owner=owner, slug=slug, language=language, base=chosen, public=public
        )
        return self._trained(record, training)

    def own(self, voice: str, owner: str) -> tuple[VoiceRecord, Training]:
        """The caller's trained voice ``voice``; anything else is ``VoiceNotFound``."""
        record = self.engine.registry.voices.resolve(voice, caller=owner)
        training = self._trainings.get(record.id) if record.owner == owner else None
        if training is None:
            raise VoiceNotFound(f"Voice {voice[:130]} not found among your trained voices.",
                                param="voice")  # fmt: skip
        return record, training

    def describe(self, record: VoiceRecord) -> TrainedVoice | None:
        """The voice with its training, or ``None`` for a voice that was uploaded."""
        training = self._trainings.get(record.id)
        return None if training is None else self._trained(record, training)

    def _trained(self, record: VoiceRecord, training: Training) -> TrainedVoice:
        samples = self._trainings.samples(record.id, kind=None)
        return TrainedVoice(
            record=record,
            training=training,
            dataset_duration_s=round(sum(s.duration_s for s in samples if s.kind == SAMPLE), 3),
            samples=sum(1 for s in samples if s.kind == SAMPLE),
            consent=any(s.kind == CONSENT for s in samples),
        )

    # -- samples ---------------------------------------------------------------------

    def add_sample(
        self, *, owner: str, voice: str, data: bytes, text: str | None, prompt_id: str | None
    ) -> Sample:
        """Check a recording of ``text`` (or of prompt ``prompt_id``) and keep it."""
        record, training = self.own(voice, owner)
        self.engine.registry.usage.check(owner, "samples")
        if prompt_id:
            text = prompt_set(training.language).get(prompt_id).text
        if not text:
            raise SampleRejected(
                "Send the text you read ('text') or the prompt's id ('prompt_id').",
                code="unsupported_text", param="text",
            )  # fmt: skip
        checked = self._check(data, text=text, training=training)
        return self._keep(record, SAMPLE, text, prompt_id, checked)

    def add_consent(self, *, owner: str, voice: str, data: bytes) -> Sample:
        """Check a recording of the consent sentence; it replaces an earlier one."""
        record, training = self.own(voice, owner)
        sentence = prompt_set(training.language).consent
        checked = self._check(data, text=sentence, training=training)
        for earlier in self._trainings.samples(record.id, kind=CONSENT):
            self._trainings.delete_sample(record.id, earlier.id)
            self._objects().delete(earlier.storage_key)
        return self._keep(record, CONSENT, sentence, None, checked)

    def samples(self, *, owner: str, voice: str) -> list[Sample]:
        record, _ = self.own(voice, owner)
        return self._trainings.samples(record.id)

    def delete_sample(self, *, owner: str, voice: str, sample_id: str) -> None:
        record, _ = self.own(voice, owner)
        sample = self._trainings.delete_sample(record.id, sample_id)
        self._objects().delete(sample.storage_key)

    def _check(self, data: bytes, *, text: str, training: Training) -> CheckedSample:
        manifest = self._base_manifest(training.base)
        recognizer = self.recognizer() if training.language == "en" else None
        return check_sample(
            data, text=text, language=training.language, target_rate=manifest.sample_rate,
            limits=self.limits, unsayable=lambda t: unsayable(manifest, t),
            recognizer=recognizer,
        )  # fmt: skip

    def _base_manifest(self, name: str) -> CoquiManifest:
        base: BaseModel = self._trainings.base(name)
        cache = self.settings.home / "cache" / "bases"
        return base_manifest(self.engine.registry, base, cache_dir=cache)

    def _keep(
        self, record: VoiceRecord, kind: str, text: str, prompt_id: str | None,
        checked: CheckedSample,
    ) -> Sample:  # fmt: skip
        sample_id = uuid.uuid4().hex
        key = VoiceFiles(self._objects(), record.owner, record.slug).sample(sample_id)
        self._objects().put_bytes(key, checked.wav_bytes())
        try:
            return self._trainings.add_sample(
                voice_id=record.id, kind=kind, text=text, prompt_id=prompt_id,
                duration_s=checked.duration_s, storage_key=key, sample_id=sample_id,
            )  # fmt: skip
        except BaseException:
            self._objects().delete(key)
            raise

    def _objects(self) -> ObjectStore:
        return self.engine.registry.models.objects

    # -- training --------------------------------------------------------------------

    def request(self, *, owner: str, voice: str, steps: int | None = None) -> TrainedVoice:
        """Queue a training round (202): needs consent and enough speech; ``steps``, when
        given, replaces the budget the worker would derive from the dataset."""
        described = self._trained(*self.own(voice, owner))
        if steps is not None and steps > self.settings.train_max_steps:
            raise TrainingRefused(
                f"A round runs at most {self.settings.train_max_steps} steps on this server "
                "(VOICEPOCKET_TRAIN_MAX_STEPS); ask for fewer.", code="too_many_steps"
            )  # fmt: skip
        if not described.consent:
            raise TrainingRefused(
                "Record the consent sentence first (POST .../consent).", code="consent_missing"
            )
        needed = self.settings.train_min_seconds
        if described.dataset_duration_s < needed or described.samples < 2:
            raise TrainingRefused(
                f"The voice has {described.dataset_duration_s:.0f} s of accepted speech in "
                f"{described.samples} samples; training needs at least {needed:.0f} s "
                "(and two samples): record more prompts.",
                code="dataset_too_small",
            )
        record = described.record
        queued = self._trainings.request(
            record.id, per_owner=self.settings.trainings_per_owner, steps=steps or 0
        )
        return self._trained(record, queued)

    def cancel(self, *, owner: str, voice: str) -> TrainedVoice:
        record, _ = self.own(voice, owner)
        return self._trained(record, self._trainings.cancel(record.id))

    def export(self, *, owner: str, voice: str) -> bytes:
        """A zip of the voice as served (``voice.onnx`` + ``voice.onnx.json``)."""
        record = self.engine.registry.voices.resolve(voice, caller=owner)
        if record.owner != owner:
            raise VoiceNotFound(f"Voice {voice[:130]} not found.", param="voice")
        if not record.ready:
            raise NotFound(f"Voice {record.ref} has no trained model yet.", param="voice")
        model = self.engine.registry.voices.model_path(record)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.write(model, f"{record.slug}.onnx")
            archive.write(model.with_name(model.name + ".json"), f"{record.slug}.onnx.json")
        return buffer.getvalue()
