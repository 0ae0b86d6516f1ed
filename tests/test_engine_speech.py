"""The bundled voice really speaks: Whisper hears the words we asked for, and the same
check fails on noise and silence, so it can fail."""

from __future__ import annotations

import numpy as np
import pytest
from speech_check import transcribe, word_error_rate

from voicepocket.engine import Engine
from voicepocket.errors import EmptyText, TextTooLong, VoiceNotFound

SENTENCES = [
    "Dr. Smith paid $3.50 on May 5th for a cup of coffee and a small muffin.",
    "The train leaves at 10:30 in the morning and arrives about 2 hours later.",
    "Mr. Brown has lived on Main St. since 1998, together with his 3 cats.",
    "Please call me back when you get home, because the weather is getting worse.",
    "About 25% of the 1,200 students chose the science course this year.",
    "The meeting on Jan. 21st was moved to the second floor of the old library.",
]
MAX_WER = 0.10


def speak(engine: Engine, text: str) -> tuple[np.ndarray, int]:
    with engine.speak("joe", text) as speech:
        chunks = list(speech)
    return np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate


def test_sentences_cover_the_spec() -> None:
    assert sum(len(s.split()) for s in SENTENCES) >= 60 and len(SENTENCES) >= 5


def test_bundled_voice_speaks_the_words(engine: Engine) -> None:
    heard = {}
    for sentence in SENTENCES:
        samples, rate = speak(engine, sentence)
        heard[sentence] = transcribe(samples, rate)
    rates = {s: word_error_rate(s, h) for s, h in heard.items()}
    overall = sum(rates[s] * len(s.split()) for s in SENTENCES) / sum(
        len(s.split()) for s in SENTENCES
    )
    assert overall <= MAX_WER, heard


@pytest.mark.parametrize("kind", ["white_noise", "silence"])
def test_the_check_fails_on_noise_and_silence(kind: str) -> None:
    rng = np.random.default_rng(7)
    samples = (
        rng.uniform(-0.5, 0.5, 22050 * 4).astype(np.float32)
        if kind == "white_noise"
        else np.zeros(22050 * 4, dtype=np.float32)
    )
    assert word_error_rate(SENTENCES[0], transcribe(samples, 22050)) > MAX_WER


def test_long_text_streams_in_chunks_in_order(engine: Engine) -> None:
    text = " ".join(SENTENCES * 3)
    with engine.speak("joe", text) as speech:
        chunks = list(speech)
    assert len(chunks) == len(speech.chunks) >= 6
    assert all(len(c.text) <= engine.settings.max_chunk_chars for c in chunks)


def test_input_errors_surface_before_audio(engine: Engine) -> None:
    with pytest.raises(EmptyText):
        engine.speak("joe", "   😀 ")
    with pytest.raises(TextTooLong):
        engine.speak("joe", "a" * (engine.settings.max_input_chars + 1),
                     limit=engine.settings.max_input_chars)
    with pytest.raises(VoiceNotFound):
        engine.speak("nobody/nothing", "Hello.")
    assert engine.voices.pool.stats().in_use == 0  # no lease left behind


def test_default_voice_is_pinned_and_warm(engine: Engine) -> None:
    record = engine.registry.voices.resolve("demo/joe", caller=None)
    assert record.public
    assert engine.voices.pool.is_resident(record.pool_key)
