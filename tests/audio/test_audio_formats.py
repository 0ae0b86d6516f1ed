"""Format names, media types, rates and the float -> 16-bit conversion."""

from __future__ import annotations

import numpy as np
import pytest

from voicepocket import audio
from voicepocket.errors import UnsupportedFormat


def test_every_format_has_a_media_type() -> None:
    assert set(audio.MEDIA_TYPES) == set(audio.FORMATS)
    assert audio.MEDIA_TYPES["mp3"] == "audio/mpeg"
    assert audio.MEDIA_TYPES["opus"] == "audio/ogg"


def test_media_types_are_read_only() -> None:
    with pytest.raises(TypeError):
        audio.MEDIA_TYPES["wav"] = "audio/x-wav"  # type: ignore[index]


@pytest.mark.parametrize("given", ["MP3", " mp3 ", "Mp3"])
def test_check_format_normalizes(given: str) -> None:
    assert audio.check_format(given) == "mp3"


@pytest.mark.parametrize("given", ["ogg", "m4a", "", "wav; rm -rf /"])
def test_unknown_format_is_rejected_with_the_field(given: str) -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        audio.check_format(given)
    assert caught.value.param == "response_format"
    assert caught.value.status == 400
    assert "wav, mp3, opus, flac, pcm" in caught.value.message


def test_aac_says_it_is_not_available() -> None:
    with pytest.raises(UnsupportedFormat, match="'aac' is not available") as caught:
        audio.check_format("AAC")
    assert caught.value.param == "response_format"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("speech.wav", "wav"),
        ("/tmp/a.b/speech.MP3", "mp3"),
        ("speech.opus", "opus"),
        ("speech.ogg", "opus"),
        ("speech.flac", "flac"),
        ("speech.pcm", "pcm"),
        ("speech.raw", "pcm"),
        ("speech", "wav"),
    ],
)
def test_format_from_path(path: str, expected: str) -> None:
    assert audio.format_from_path(path) == expected


def test_format_from_path_default_applies_only_without_extension() -> None:
    assert audio.format_from_path("speech", default="opus") == "opus"
    assert audio.format_from_path("speech.flac", default="opus") == "flac"


@pytest.mark.parametrize("path", ["speech.m4a", "speech.aac", "speech.txt"])
def test_format_from_path_rejects_unknown_extensions(path: str) -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        audio.format_from_path(path)
    assert caught.value.param is None


@pytest.mark.parametrize(
    ("fmt", "voice_rate", "expected"),
    [
        ("wav", 22_050, 22_050),
        ("flac", 16_000, 16_000),
        ("pcm", 22_050, 24_000),
        ("pcm", 48_000, 24_000),
        ("opus", 22_050, 24_000),
        ("opus", 16_000, 16_000),
        ("opus", 44_100, 48_000),
        ("mp3", 22_050, 22_050),
        ("mp3", 16_000, 16_000),
        ("mp3", 20_000, 22_050),
        ("mp3", 96_000, 48_000),
    ],
)
def test_output_rate(fmt: str, voice_rate: int, expected: int) -> None:
    assert audio.output_rate(fmt, voice_rate) == expected


def test_output_rate_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        audio.output_rate("wav", 0)
    with pytest.raises(UnsupportedFormat):
        audio.output_rate("aac", 22_050)


def test_float_to_pcm16_scales_rounds_and_clips() -> None:
    samples = np.array([0.0, 1.0, -1.0, 2.0, -2.0, 0.5, np.nan], dtype=np.float32)
    values = np.frombuffer(audio.float_to_pcm16(samples), dtype="<i2")
    assert values.tolist() == [0, 32767, -32768, 32767, -32768, 16384, 0]


def test_float_to_pcm16_round_trips_int16_exactly() -> None:
    every_value = np.arange(-32768, 32768, dtype=np.int16)
    as_float = every_value.astype(np.float32) / 32768
    assert audio.float_to_pcm16(as_float) == every_value.astype("<i2").tobytes()


def test_float_to_pcm16_rejects_stereo() -> None:
    with pytest.raises(ValueError, match="mono"):
        audio.float_to_pcm16(np.zeros((10, 2), dtype=np.float32))
