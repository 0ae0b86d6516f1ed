"""Piper ONNX voices (``model.onnx`` + ``model.onnx.json``) through piper-tts and onnxruntime.

piper-tts supplies the phonemizer (its bundled espeak-ng) and the phoneme-id mapping; we
build the ``InferenceSession`` ourselves because ``PiperVoice.load`` takes no session
options and the intra-op thread count must be ours to set.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from piper import PiperVoice as _PiperRuntime
from piper.config import PhonemeType, PiperConfig, SynthesisConfig
from piper.phonemize_espeak import ESPEAK_DATA_DIR, EspeakPhonemizer

from voicepocket.errors import EngineError, InferenceTimeout, InvalidVoiceFiles
from voicepocket.voices.base import AudioChunk, SynthesisParams, TextProfile
from voicepocket.voices.deadline import INFERENCE_DEADLINE_S, DeadlineSession
from voicepocket.voices.onnx_checks import check_onnx_model, initialize_onnxruntime

MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 48_000
SUPPORTED_PHONEME_TYPES = (PhonemeType.ESPEAK, PhonemeType.TEXT)
"""Other Piper phonemizers (pinyin, hebrew, ...) download models at run time: refused."""

REQUIRED_INPUTS = {"input", "input_lengths", "scales"}


def config_path_for(model_path: Path) -> Path:
    """Piper's convention: the config sits beside the model as ``<model>.json``."""
    return model_path.with_name(model_path.name + ".json")


INFERENCE_RANGES = {"length_scale": (0.25, 4.0), "noise_scale": (0.0, 2.0), "noise_w": (0.0, 2.0)}
"""Sane ranges of a config's inference scales (Piper's own voices use 1.0, 0.667 and 0.8):
``length_scale`` multiplies the audio's length, so 200 would make every request of the
voice run 200 times longer and hold its memory.
"""


@cache
def _espeak_symbols() -> frozenset[str]:
    """Characters espeak-ng can read: letters, digits, punctuation and currency of the
    Latin, Greek and Cyrillic blocks plus general punctuation, and the space."""
    code_points = [*range(0x20, 0x0530), *range(0x2000, 0x2070)]
    keep = ("L", "N", "P", "Sc")
    chars = (chr(cp) for cp in code_points)
    return frozenset(c for c in chars if unicodedata.category(c).startswith(keep)) | {" "}


@cache
def _espeak_names(folder: str) -> frozenset[str]:
    """The file names under a folder of the bundled espeak-ng data, lower-cased as espeak
    matches them: voices under ``lang`` (``en-us``, ``de``), variants under ``voices/!v``."""
    return frozenset(p.name.lower() for p in (Path(ESPEAK_DATA_DIR) / folder).rglob("*")
                     if p.is_file())  # fmt: skip


def _known_espeak_voice(voice: object) -> bool:
    if not isinstance(voice, str):
        return False
    name, _, variant = voice.lower().partition("+")
    return name in _espeak_names("lang") and (not variant or variant in _espeak_names("voices/!v"))


def read_config(config_path: Path) -> PiperConfig:
    """Parse and sanity-check a Piper voice config; ``InvalidVoiceFiles`` if it is not one."""
    try:
        raw: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8"))
        config = PiperConfig.from_dict(raw)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidVoiceFiles("The voice config is not valid JSON.", param="config") from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidVoiceFiles(
            "The voice config is not a Piper config (needs audio.sample_rate, espeak.voice, "
            "phoneme_id_map, num_symbols, num_speakers).",
            param="config",
        ) from exc
    _check_config(config)
    return config


def _check_config(config: PiperConfig) -> None:
    if not isinstance(config.sample_rate, int) or not (
        MIN_SAMPLE_RATE <= config.sample_rate <= MAX_SAMPLE_RATE
    ):
        raise InvalidVoiceFiles(
            f"Sample rate must be an integer from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz.",
            param="config",
        )
    if config.phoneme_type not in SUPPORTED_PHONEME_TYPES:
        raise InvalidVoiceFiles(
            f"Phoneme type {config.phoneme_type.value!r} is not supported "
            "(supported: espeak, text).",
            param="config",
        )
    if config.phoneme_type == PhonemeType.ESPEAK and not _known_espeak_voice(config.espeak_voice):
        raise InvalidVoiceFiles(
            f"espeak.voice {config.espeak_voice!r} is not one of the espeak-ng voices this "
            "server has (such as en-us, en-gb-x-rp, de, fr, es).", param="config",
        )  # fmt: skip
    if not _positive_int(config.num_symbols):
        raise InvalidVoiceFiles("num_symbols must be a positive integer.", param="config")
    id_map = config.phoneme_id_map
    if not isinstance(id_map, dict) or not id_map:
        raise InvalidVoiceFiles("phoneme_id_map must be a non-empty object.", param="config")
    for symbol, ids in id_map.items():
        valid_ids = isinstance(ids, list) and all(
            isinstance(i, int) and 0 <= i < config.num_symbols for i in ids
        )
        if not isinstance(symbol, str) or not valid_ids:
            raise InvalidVoiceFiles(
                f"phoneme_id_map entry {symbol!r} must map to ids below num_symbols.",
                param="config",
            )
    if not _positive_int(config.num_speakers):
        raise InvalidVoiceFiles("num_speakers must be a positive integer.", param="config")
    scales = {"length_scale": config.length_scale, "noise_scale": config.noise_scale,
              "noise_w": config.noise_w_scale}  # fmt: skip
    for name, value in scales.items():
        low, high = INFERENCE_RANGES[name]
        if not isinstance(value, int | float) or not low <= value <= high:
            raise InvalidVoiceFiles(
                f"inference.{name} must be a number from {low} to {high}.", param="config"
            )


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_voice_files(model_path: Path) -> PiperConfig:
    """Check a Piper voice's files without running them: config sane, ONNX standard-only.

    Loading the session and a test synthesis happen later, in the registration probe.
    """
    config = read_config(config_path_for(model_path))
    inputs = check_onnx_model(model_path)
    missing = REQUIRED_INPUTS - inputs
    if missing:
        raise InvalidVoiceFiles(
            f"The ONNX model lacks the Piper inputs {sorted(missing)}.", param="model"
        )
    return config


class PiperVoice:
    """A loaded Piper voice; ``synthesize`` yields one chunk per text chunk."""

    kind = "piper"

    def __init__(self, runtime: _PiperRuntime) -> None:
        self._runtime = runtime
        profile = self._profile_of(runtime.config)
        self.sample_rate: int = runtime.config.sample_rate
        self.symbols: frozenset[str] = profile.symbols
        self.language: str = profile.language
        """Primary language of the voice's text (its espeak voice's), for normalization."""

    @classmethod
    def read_profile(cls, path: Path) -> TextProfile:
        """The text profile of the voice at ``path``, from its config alone."""
        return cls._profile_of(read_config(config_path_for(path)))

    @staticmethod
    def validate_files(model_path: Path) -> None:
        """Static checks of a voice's files (see ``check_voice_files``)."""
        check_voice_files(model_path)

    @classmethod
    def load(
        cls, path: Path, *, threads: int = 1, deadline_s: float = INFERENCE_DEADLINE_S
    ) -> PiperVoice:
        """Load ``path`` (the ``.onnx``; its config is ``<path>.json``) into a new session."""
        config = read_config(config_path_for(path))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # The arena keeps the peak of every input length it has seen (joe: 90 MB of weights
        # grew to 570 MB after a few 300-character chunks); without it resident memory stays
        # near weights + one inference, which keeps the pool's byte budget truthful.
        options.enable_cpu_mem_arena = False
        try:
            session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EngineError("The voice model could not be loaded.") from exc
        bounded = DeadlineSession(session, deadline_s=deadline_s)
        return cls(_PiperRuntime(session=bounded, config=config))

    @staticmethod
    def initialize_runtime() -> None:
        """Set up what every Piper voice in a process shares (onnxruntime's environment,
        espeak-ng and its English data), so the probe does not count it as one voice's cost."""
        initialize_onnxruntime()
        EspeakPhonemizer(ESPEAK_DATA_DIR).phonemize("en-us", "Hello.")

    @staticmethod
    def _profile_of(config: PiperConfig) -> TextProfile:
        if config.phoneme_type == PhonemeType.TEXT:
            symbols = frozenset(config.phoneme_id_map) | {" "}
        else:
            symbols = _espeak_symbols()
        return TextProfile(
            symbols=symbols, language=config.espeak_voice.split("-")[0].lower() or "en"
        )

    def sample_text(self) -> str:
        """A sentence this voice can say, for warm-up and probing."""
        return "The quick brown fox jumps over the lazy dog, and then it rests."

    def synthesize(
        self, chunks: Iterable[str], params: SynthesisParams | None = None
    ) -> Iterator[AudioChunk]:
        """Yield one chunk of speech per text chunk (espeak may split a chunk; we rejoin)."""
        config = self._synthesis_config(params or SynthesisParams())
        for text in chunks:
            try:
                pieces = [c.audio_float_array for c in self._runtime.synthesize(text, config)]
            except InferenceTimeout:
                raise
            except Exception as exc:  # phonemizer and onnxruntime errors are untyped
                raise EngineError("Speech synthesis failed.") from exc
            samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
            yield AudioChunk(
                samples=samples.astype(np.float32, copy=False),
                sample_rate=self.sample_rate,
                text=text,
            )

    def _synthesis_config(self, params: SynthesisParams) -> SynthesisConfig:
        return SynthesisConfig(
            length_scale=self._runtime.config.length_scale / params.speed,
            noise_scale=params.noise_scale,
            noise_w_scale=params.noise_w,
        )

    def close(self) -> None:
        """Drop the session; onnxruntime frees its memory when the last reference goes."""
        self._runtime = None  # type: ignore[assignment]
