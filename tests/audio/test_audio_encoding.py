"""Encoding round trips: every format decodes back, streams progressively and stays small."""

from __future__ import annotations

import io
import struct
import tracemalloc
import wave
from collections.abc import Iterator

import numpy as np
import pytest
import soundfile as sf
import soxr

from voicepocket import audio
from voicepocket.errors import UnsupportedFormat
from voicepocket.voices.base import AudioChunk

PIPER_RATE = 22_050
SECONDS = 1.7
TONE_HZ = 440.0
# Uneven on purpose: a 1-sample chunk, a prime, one longer than an MP3 or Opus frame...
CHUNK_SIZES = (1, 4_409, 777, 12_000, 3, 9_001)

PROGRESSIVE = ("wav", "mp3", "opus", "pcm")
LOSSLESS = ("wav", "flac")
# Streamed MP3 lacks the Info tag, so decoders also play the encoder delay and padding.
MP3_STREAM_SLACK_S = 0.15


def tone(seconds: float = SECONDS, rate: int = PIPER_RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)


def split(samples: np.ndarray, rate: int = PIPER_RATE) -> list[AudioChunk]:
    bounds = np.cumsum((0, *CHUNK_SIZES))
    starts = [int(b) for b in bounds if b < len(samples)]
    ends = [*starts[1:], len(samples)]
    return [AudioChunk(samples[a:b], rate, f"chunk {a}") for a, b in zip(starts, ends, strict=True)]


def decode(data: bytes, fmt: str, dtype: str = "float32") -> tuple[np.ndarray, int]:
    if fmt == "pcm":
        samples, rate = sf.read(
            io.BytesIO(data),
            format="RAW",
            subtype="PCM_16",
            samplerate=audio.PCM_RATE,
            channels=1,
            endian="LITTLE",
            dtype=dtype,
        )
    else:
        samples, rate = sf.read(io.BytesIO(data), dtype=dtype)
    assert samples.ndim == 1
    return samples, rate


def encode(
    chunks: list[AudioChunk], fmt: str, *, stream: bool, sample_rate: int | None = None
) -> bytes:
    """The file as the HTTP layer would stream it, or as it would be stored."""
    if stream:
        return b"".join(audio.encode_stream(chunks, fmt, sample_rate=sample_rate))
    return audio.encode_all(chunks, fmt, sample_rate=sample_rate)


def pcm16(samples: np.ndarray) -> np.ndarray:
    return np.frombuffer(audio.float_to_pcm16(samples), dtype="<i2")


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("fmt", audio.FORMATS)
@pytest.mark.parametrize("voice_rate", [16_000, 20_000, PIPER_RATE, 24_000, 44_100])
def test_encode_all_decodes_to_the_same_tone_and_length(fmt: str, voice_rate: int) -> None:
    data = audio.encode_all(split(tone(rate=voice_rate), voice_rate), fmt)

    samples, rate = decode(data, fmt)
    assert rate == audio.output_rate(fmt, voice_rate)
    assert len(samples) / rate == pytest.approx(SECONDS, rel=0.02)
    assert peak_hz(samples, rate) == pytest.approx(TONE_HZ, abs=5)


@pytest.mark.parametrize("fmt", audio.FORMATS)
def test_streamed_bytes_concatenate_to_a_decodable_file(fmt: str) -> None:
    data = b"".join(audio.encode_stream(split(tone()), fmt))

    samples, rate = decode(data, fmt)
    if fmt == "mp3":
        assert SECONDS <= len(samples) / rate <= SECONDS + MP3_STREAM_SLACK_S
    else:
        assert len(samples) / rate == pytest.approx(SECONDS, rel=0.02)
    assert peak_hz(samples, rate) == pytest.approx(TONE_HZ, abs=5)


@pytest.mark.parametrize("fmt", LOSSLESS)
@pytest.mark.parametrize("stream", [False, True])
def test_lossless_formats_keep_every_sample(fmt: str, stream: bool) -> None:
    signal = tone()
    data = encode(split(signal), fmt, stream=stream)

    samples, rate = decode(data, fmt, dtype="int16")
    assert rate == PIPER_RATE
    np.testing.assert_array_equal(samples, pcm16(signal))


@pytest.mark.parametrize("stream", [False, True])
def test_pcm_is_the_whole_signal_resampled_to_24k(stream: bool) -> None:
    signal = tone()
    data = encode(split(signal), "pcm", stream=stream)

    samples, _ = decode(data, "pcm", dtype="int16")
    reference = pcm16(soxr.resample(signal, PIPER_RATE, audio.PCM_RATE, quality="HQ"))
    assert len(samples) == len(reference)
    assert np.abs(samples.astype(np.int32) - reference).max() <= 1


def test_resampling_has_no_seams_even_with_tiny_chunks() -> None:
    signal = tone()
    sizes = np.random.default_rng(7).integers(1, 60, size=len(signal))
    bounds = np.cumsum(sizes)
    pieces = np.split(signal, bounds[bounds < len(signal)])
    with audio.StreamEncoder("pcm", sample_rate=PIPER_RATE) as encoder:
        data = b"".join(encoder.encode(piece) for piece in pieces) + encoder.finish()

    streamed = np.frombuffer(data, dtype="<i2").astype(np.int32)
    whole = pcm16(soxr.resample(signal, PIPER_RATE, audio.PCM_RATE, quality="HQ"))
    assert len(streamed) == len(whole)
    assert np.abs(streamed - whole).max() <= 1


def test_streamed_wav_has_max_sizes_and_the_stored_one_exact_sizes() -> None:
    chunks = split(tone())
    streamed = b"".join(audio.encode_stream(chunks, "wav"))
    stored = audio.encode_all(chunks, "wav")

    assert len(streamed) == len(stored) == 44 + 2 * len(tone())
    riff, data = struct.unpack_from("<I", stored, 4)[0], struct.unpack_from("<I", stored, 40)[0]
    assert (riff, data) == (len(stored) - 8, len(stored) - 44)
    riff, data = struct.unpack_from("<I", streamed, 4)[0], struct.unpack_from("<I", streamed, 40)[0]
    assert (riff, data) == (0xFFFFFFFE, 0xFFFFFFDA)
    assert data % 2 == 0 and riff == data + 36
    # Only the two size fields differ.
    assert streamed[:4] + streamed[8:40] + streamed[44:] == stored[:4] + stored[8:40] + stored[44:]
    np.testing.assert_array_equal(
        decode(streamed, "wav", dtype="int16")[0], decode(stored, "wav", dtype="int16")[0]
    )


def test_streamed_wav_reads_with_pythons_wave_module() -> None:
    signal = tone()
    data = b"".join(audio.encode_stream(split(signal), "wav"))
    with wave.open(io.BytesIO(data)) as reader:
        assert (reader.getnchannels(), reader.getsampwidth()) == (1, 2)
        assert reader.getframerate() == PIPER_RATE
        frames = reader.readframes(reader.getnframes())
    np.testing.assert_array_equal(np.frombuffer(frames, dtype="<i2"), pcm16(signal))


@pytest.mark.parametrize("fmt", PROGRESSIVE)
def test_progressive_formats_hand_out_audio_before_finish(fmt: str) -> None:
    signal = tone()
    first_sentence = int(0.3 * PIPER_RATE)
    with audio.StreamEncoder(fmt, sample_rate=PIPER_RATE) as encoder:
        assert encoder.progressive
        first = encoder.encode(signal[:first_sentence])
        rest = encoder.encode(signal[first_sentence:])
        tail = encoder.finish()

    assert first, "nothing came out after the first chunk"
    before_finish = first + rest
    assert len(before_finish) > 0.8 * len(before_finish + tail)
    # What was sent after the first chunk is already playable audio, not just a header.
    samples, _ = decode(first, fmt)
    assert len(samples) > 0


def test_flac_is_held_until_finish() -> None:
    signal = tone()
    with audio.StreamEncoder("flac", sample_rate=PIPER_RATE) as encoder:
        assert not encoder.progressive
        assert encoder.encode(signal[:10_000]) == b""
        assert encoder.encode(signal[10_000:]) == b""
        data = encoder.finish()
    with sf.SoundFile(io.BytesIO(data)) as decoded:
        assert decoded.frames == len(signal)  # STREAMINFO has the real count


@pytest.mark.parametrize("fmt", audio.FORMATS)
def test_encode_all_hands_out_nothing_before_finish(fmt: str) -> None:
    with audio.StreamEncoder(fmt, sample_rate=PIPER_RATE, progressive=False) as encoder:
        assert encoder.encode(tone()) == b""
        assert encoder.finish()


def test_stored_mp3_has_its_info_tag_so_its_length_is_exact() -> None:
    signal = tone()
    samples, rate = decode(audio.encode_all(split(signal), "mp3"), "mp3")
    assert len(samples) == len(signal)
    assert rate == PIPER_RATE


@pytest.mark.parametrize("fmt", audio.FORMATS)
@pytest.mark.parametrize("stream", [False, True])
def test_empty_audio_gives_a_valid_file(fmt: str, stream: bool) -> None:
    for chunks in ([], [AudioChunk(np.zeros(0, dtype=np.float32), PIPER_RATE, "")]):
        data = encode(chunks, fmt, stream=stream, sample_rate=PIPER_RATE)
        if fmt == "pcm":
            assert data == b""
            continue
        samples, rate = decode(data, fmt)
        if fmt == "wav":
            assert len(samples) == 0
        elif fmt == "mp3" and stream:
            assert len(samples) / rate <= MP3_STREAM_SLACK_S
            assert np.abs(samples).max(initial=0.0) == 0.0
        else:
            # One sample of silence: libsndfile writes nothing decodable for zero samples.
            np.testing.assert_allclose(samples, np.zeros(1), atol=1e-6)


def test_empty_audio_without_a_rate_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        audio.encode_all([], "wav")


def test_chunks_must_share_one_rate() -> None:
    chunks = [AudioChunk(tone(0.1), PIPER_RATE, "a"), AudioChunk(tone(0.1), 16_000, "b")]
    with pytest.raises(ValueError, match="16000 Hz"):
        audio.encode_all(chunks, "wav")


def test_unsupported_format_is_refused_before_any_synthesis() -> None:
    def synthesis() -> Iterator[AudioChunk]:
        raise AssertionError("synthesis must not start for a bad format")
        yield  # pragma: no cover

    with pytest.raises(UnsupportedFormat) as caught:
        audio.encode_stream(synthesis(), "aac")
    assert caught.value.param == "response_format"
    with pytest.raises(UnsupportedFormat):
        audio.encode_all(synthesis(), "ogg")
    with pytest.raises(UnsupportedFormat):
        audio.StreamEncoder("m4a", sample_rate=PIPER_RATE)


def test_a_closed_encoder_refuses_more_audio() -> None:
    encoder = audio.StreamEncoder("mp3", sample_rate=PIPER_RATE)
    encoder.encode(tone(0.2))
    encoder.close()
    encoder.close()
    with pytest.raises(ValueError, match="closed"):
        encoder.encode(tone(0.1))
    with pytest.raises(ValueError, match="closed"):
        encoder.finish()


@pytest.mark.parametrize("fmt", audio.FORMATS)
def test_abandoning_a_stream_midway_is_clean(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that goes away closes the generator: the encoder is closed, not finished,
    libsndfile's handle is freed, no more synthesis is pulled and nothing more comes out."""
    encoders: list[audio.StreamEncoder] = []
    finished: list[audio.StreamEncoder] = []
    sndfiles: list[sf.SoundFile] = []

    class SpyEncoder(audio.StreamEncoder):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            encoders.append(self)

        def finish(self) -> bytes:
            finished.append(self)
            return super().finish()

    class SpySoundFile(sf.SoundFile):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            sndfiles.append(self)

    monkeypatch.setattr(audio, "StreamEncoder", SpyEncoder)
    monkeypatch.setattr(sf, "SoundFile", SpySoundFile)
    chunks = split(tone())
    pulled: list[AudioChunk] = []

    def synthesis() -> Iterator[AudioChunk]:
        for chunk in chunks:
            pulled.append(chunk)
            yield chunk

    stream = audio.encode_stream(synthesis(), fmt)
    assert next(stream)
    (encoder,) = encoders
    assert len(sndfiles) == (fmt in ("mp3", "opus", "flac"))
    pulled_before_close = len(pulled)

    stream.close()  # raises nothing

    with pytest.raises(StopIteration):
        next(stream)
    assert len(pulled) == pulled_before_close
    # The encoder was closed by the generator, not left open for the garbage collector.
    with pytest.raises(ValueError, match="closed"):
        encoder.encode(tone(0.1))
    assert all(file.closed for file in sndfiles)
    if fmt == "flac":
        # Not progressive: the first bytes out were the whole file, after finish().
        assert finished == [encoder] and len(pulled) == len(chunks)
    else:
        assert finished == [] and len(pulled) < len(chunks)


def _peak_traced_bytes(fmt: str, chunk_count: int) -> tuple[int, int]:
    """Peak Python memory while streaming ``chunk_count`` sentences, and the bytes sent."""
    sentence = tone(0.05)
    sent = 0
    tracemalloc.start()
    try:
        with audio.StreamEncoder(fmt, sample_rate=PIPER_RATE) as encoder:
            for _ in range(chunk_count):
                sent += len(encoder.encode(sentence))
            sent += len(encoder.finish())
        return tracemalloc.get_traced_memory()[1], sent
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("fmt", PROGRESSIVE)
def test_streaming_memory_does_not_grow_with_the_number_of_chunks(fmt: str) -> None:
    short_peak, short_sent = _peak_traced_bytes(fmt, 100)
    long_peak, long_sent = _peak_traced_bytes(fmt, 1_000)

    assert long_sent > 9 * short_sent
    # Holding on to sent bytes would add (long_sent - short_sent) to the peak.
    assert long_peak - short_peak < 0.1 * (long_sent - short_sent)


@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus", "flac"])
@pytest.mark.parametrize("stream", [False, True])
def test_ffmpeg_decodes_every_file(fmt: str, stream: bool) -> None:
    av = pytest.importorskip("av")  # PyAV comes with the test extras (faster-whisper)
    data = encode(split(tone()), fmt, stream=stream)

    with av.open(io.BytesIO(data)) as container:
        frames = [frame.to_ndarray()[0] for frame in container.decode(audio=0)]
        rate = container.streams.audio[0].codec_context.sample_rate
    seconds = sum(len(frame) for frame in frames) / rate
    if fmt == "mp3" and stream:
        assert SECONDS <= seconds <= SECONDS + MP3_STREAM_SLACK_S
    else:
        assert seconds == pytest.approx(SECONDS, rel=0.02)
