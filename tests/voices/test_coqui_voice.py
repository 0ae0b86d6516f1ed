"""coqui VITS voices: registered from trainer checkpoints, compiled to ONNX, served with
onnxruntime alone, and equal to coqui's own ``Synthesizer`` (ids exactly, audio within 1e-4)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from coqui_support import PARITY_TEXTS

from voicepocket.engine import Engine
from voicepocket.registry import VoiceRecord
from voicepocket.registry.repository import CONFIG_NAME, MODEL_NAME, sha256_of
from voicepocket.voices import CoquiVoice, SynthesisParams, load_voice
from voicepocket.voices.coqui_config import CoquiManifest

PAD_SILENCE_SAMPLES = 10_000
"""Zeros coqui's ``Synthesizer.tts`` appends after every sentence."""

DETERMINISTIC = SynthesisParams(noise_scale=0.0, noise_w=0.0)


def strip_padding(wav: np.ndarray, sentences: int = 1) -> list[np.ndarray]:
    """Synthesizer output -> one array per sentence, its 10,000 trailing zeros removed."""
    pieces, rest = [], wav
    for _ in range(sentences):
        end = _first_pad(rest)
        pieces.append(rest[:end])
        rest = rest[end + PAD_SILENCE_SAMPLES :]
    assert len(rest) == 0
    return pieces


def _first_pad(wav: np.ndarray) -> int:
    zero = wav == 0
    for end in range(len(wav) - PAD_SILENCE_SAMPLES + 1):
        if zero[end : end + PAD_SILENCE_SAMPLES].all():
            return end
    raise AssertionError("no 10,000-sample padding found")


@pytest.fixture(scope="module")
def voices(coqui_engine) -> dict[str, CoquiVoice]:
    engine, records = coqui_engine
    loaded = {lang: load_voice("coqui", engine.registry.voices.model_path(r), threads=1)
              for lang, r in records.items()}  # fmt: skip
    yield loaded
    for voice in loaded.values():
        voice.close()


def test_registration_stores_onnx_and_manifest_not_the_checkpoint(
    coqui_engine: tuple[Engine, dict[str, VoiceRecord]], coqui_checkpoints
) -> None:
    engine, records = coqui_engine
    for language, record in records.items():
        checkpoint, config = coqui_checkpoints[language]
        assert record.kind == "coqui" and record.sample_rate == 22050
        stored = engine.registry.voices.model_path(record)
        assert stored.name == MODEL_NAME and sha256_of(stored) == record.model_sha256
        assert stored.read_bytes()[:2] != b"PK"  # ONNX protobuf, not a torch zip
        assert stored.stat().st_size < checkpoint.stat().st_size / 10  # no discriminator
        manifest = CoquiManifest.read(stored.with_name(CONFIG_NAME))
        assert sha256_of(stored.with_name(CONFIG_NAME)) == record.config_sha256
        assert manifest.source["checkpoint_sha256"] == sha256_of(checkpoint)
        assert manifest.source["config_sha256"] == sha256_of(config)
        assert manifest.source["coqui_tts"] == "0.28.0"
        assert record.cost_bytes > 0
    keys = sorted(engine.registry.models.objects.list())
    assert all(k.endswith((MODEL_NAME, CONFIG_NAME)) for k in keys) and len(keys) == 4


def test_decoder_runs_wide_stages_as_2d_and_narrow_ones_as_1d(
    coqui_engine: tuple[Engine, dict[str, VoiceRecord]],
) -> None:
    """The test decoder's input conv and first stage (128 and 64 channels) are 2-D, so
    onnxruntime runs them in its NCHWc layout; the 32-channel stages and below stay 1-D
    (the parity tests below cover both)."""
    engine, records = coqui_engine
    graph = onnx.load(engine.registry.voices.model_path(records["en"])).graph
    weights = {w.name: list(w.dims) for w in graph.initializer}
    convs = [weights[n.input[1]] for n in graph.node
             if n.op_type in ("Conv", "ConvTranspose") and n.input[1] in weights]  # fmt: skip
    wide = {w[0] for w in convs if len(w) == 4} | {w[1] for w in convs if len(w) == 4}
    narrow = {w[0] for w in convs if len(w) == 3 and w[2] > 1 and w[0] < 64}
    assert {128, 64} <= wide and max(wide) == 128
    assert {32, 16, 8} <= narrow


def test_manifests_describe_the_tokenizers(voices: dict[str, CoquiVoice]) -> None:
    english, korean = voices["en"].manifest, voices["ko"].manifest
    assert english.text_cleaner == "english_cleaners" and english.language == "en"
    assert english.add_blank and english.blank == "<BLNK>" and not english.use_eos_bos
    assert english.vocab[:4] == ("<PAD>", "<EOS>", "<BOS>", "<BLNK>")
    assert set("abcXYZ .,!?'") <= english.symbols and "<PAD>" not in english.symbols
    assert korean.text_cleaner == "basic_cleaners" and korean.language == "ko"
    assert {"가", "힣", "한", "글", " ", "."} <= korean.symbols and "a" not in korean.symbols
    assert voices["en"].language == "en" and voices["ko"].language == "ko"
    assert english.trim_silence is not None and english.trim_silence.window == 17640


@pytest.mark.parametrize("language", ["en", "ko"])
def test_ids_equal_coquis_tokenizer(
    language: str, voices: dict[str, CoquiVoice], coqui_reference
) -> None:
    for text, (coqui_ids, _) in zip(PARITY_TEXTS[language], coqui_reference[language],
                                     strict=True):  # fmt: skip
        assert voices[language].text_to_ids(text) == coqui_ids, text


@pytest.mark.parametrize("language", ["en", "ko"])
def test_onnx_audio_equals_synthesizer_tts(
    language: str, voices: dict[str, CoquiVoice], coqui_reference
) -> None:
    for text, (_, coqui_wav) in zip(PARITY_TEXTS[language], coqui_reference[language],
                                     strict=True):  # fmt: skip
        (expected,) = strip_padding(coqui_wav)
        ours = next(voices[language].synthesize([text], DETERMINISTIC)).samples
        assert len(ours) == len(expected) > 2000, text
        assert np.abs(ours - expected).max() < 1e-4, text


def test_engine_paragraph_equals_synthesizer_sentence_by_sentence(
    coqui_engine, coqui_reference
) -> None:
    """The whole request path (our normalization and sentence split) on a paragraph gives
    Synthesizer's audio for it, minus its 10,000-zero pad after each sentence."""
    engine, _ = coqui_engine
    (_, coqui_wav), = coqui_reference["en-paragraph"]
    sentences = len(PARITY_TEXTS["en"])
    expected = strip_padding(coqui_wav, sentences)
    with engine.speak("alice/en", " ".join(PARITY_TEXTS["en"]), params=DETERMINISTIC) as speech:
        assert speech.chunks == PARITY_TEXTS["en"]
        chunks = [chunk.samples for chunk in speech]
    for ours, theirs in zip(chunks, expected, strict=True):
        assert len(ours) == len(theirs)
        assert np.abs(ours - theirs).max() < 1e-4


def test_korean_request_reads_numbers_in_hangul(coqui_engine) -> None:
    engine, _ = coqui_engine
    with engine.speak("alice/ko", "2023년 5월 3일, 21초 남았어요! OK?") as speech:
        assert speech.chunks[0].startswith("이천이십삼년 오월 삼일, 이십일초 남았어요!")
        assert sum(chunk.duration_s for chunk in speech) > 0.1


def test_speed_and_noise(
    coqui_engine: tuple[Engine, dict[str, VoiceRecord]], tmp_path: Path
) -> None:
    # Without trimming: coqui's trim (the signed maximum under a threshold) can cut a
    # random-weight voice's whole output to its first 0.4 s, whatever the speed.
    engine, records = coqui_engine
    model = engine.registry.voices.model_path(records["en"])
    shutil.copy(model, tmp_path / model.name)
    manifest = CoquiManifest.read(model.with_name(CONFIG_NAME))
    (tmp_path / CONFIG_NAME).write_text(replace(manifest, trim_silence=None).to_json())
    voice = CoquiVoice.load(tmp_path / model.name, threads=1)
    text = ["The quick brown fox jumps over the lazy dog."]
    normal = next(voice.synthesize(text, DETERMINISTIC)).samples
    again = next(voice.synthesize(text, DETERMINISTIC)).samples
    np.testing.assert_array_equal(normal, again)
    slow = SynthesisParams(speed=0.5, noise_scale=0.0, noise_w=0.0)
    assert len(next(voice.synthesize(text, slow)).samples) > 1.5 * len(normal)
    noisy = next(voice.synthesize(text, SynthesisParams(noise_w=0.0))).samples
    assert len(noisy) == len(normal) and not np.array_equal(noisy, normal)
    voice.close()


SERVING_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"torch", "TTS", "trainer", "coqpit"}:
                raise ImportError(f"serving must not import {name}")
            return None

    sys.meta_path.insert(0, Refuse())
    from voicepocket.engine import Engine
    from voicepocket.settings import Settings

    engine = Engine(Settings(home=sys.argv[1]))
    with engine.speak("alice/ko", "안녕하세요, 3시에 만나요.") as speech:
        seconds = sum(chunk.duration_s for chunk in speech)
    engine.close()
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "TTS", "trainer"})
    print(json.dumps({"seconds": seconds, "loaded": loaded}))
    """
)


def test_serving_imports_neither_torch_nor_tts(coqui_engine) -> None:
    """A fresh serving process where importing torch or TTS would fail speaks a coqui voice."""
    engine, _ = coqui_engine
    completed = subprocess.run(
        [sys.executable, "-c", SERVING_SCRIPT, str(engine.settings.home)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["loaded"] == [] and result["seconds"] > 0.1


def test_manifest_round_trip(voices: dict[str, CoquiVoice], tmp_path: Path) -> None:
    manifest = voices["ko"].manifest
    path = tmp_path / "m.json"
    path.write_text(manifest.to_json(), encoding="utf-8")
    assert CoquiManifest.read(path) == manifest
    assert json.loads(path.read_text())["format"] == "voicepocket-coqui-vits/1"
