"""coqui-tts VITS voices on paper: the uploaded ``config.json`` and our stored manifest.

Both sides of registration use this module, and neither needs torch:

- ``check_coqui_config`` refuses, before any torch code sees it, an uploaded config that is
  not a single-speaker, character-based VITS config whose cleaner we reproduce exactly, or
  that points at other files (speaker, d-vector, language or encoder files are paths on the
  training machine; coqui would open them), or whose sizes (channels, layers, kernels,
  FFT) are out of range: coqui builds the model from them before it reads a weight;
- ``CoquiManifest`` is what registration stores beside the ONNX model
  (``voice.onnx.json``): the vocabulary in id order, special tokens, cleaner, language,
  sample rate, inference defaults, silence trimming, and the sha256 of the source files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from voicepocket.errors import InvalidVoiceFiles
from voicepocket.voices.coqui_text import CLEANERS, CoquiTokenizer, primary_language

MANIFEST_FORMAT = "voicepocket-coqui-vits/1"
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 48_000
MAX_VOCAB = 20_000

CHARACTER_CLASSES = frozenset(
    {
        "TTS.tts.models.vits.VitsCharacters",
        "TTS.tts.utils.text.characters.Graphemes",
        "TTS.tts.utils.text.characters.BaseCharacters",
    }
)
"""coqui character classes whose vocabulary is built from the config alone."""

PHONEMIZERS_AVAILABLE: frozenset[str] = frozenset()
"""coqui phonemizers this installation reproduces: none. coqui's ``espeak`` backend runs the
espeak-ng program (not installed here, and Piper's bundled library phonemizes differently),
``gruut`` and the Korean/Japanese/Chinese/Bangla ones are extra packages we do not ship."""

_PATH_FIELDS = (
    "speakers_file",
    "d_vector_file",
    "language_ids_file",
    "speaker_encoder_model_path",
    "speaker_encoder_config_path",
)
_SPEAKER_SWITCHES = ("use_speaker_embedding", "use_d_vector_file", "use_speaker_encoder_as_loss")


MODEL_SIZES = {
    "num_chars": MAX_VOCAB, "out_channels": 4097, "spec_segment_size": 1024,
    "hidden_channels": 1024, "hidden_channels_ffn_text_encoder": 4096,
    "num_heads_text_encoder": 16, "num_layers_text_encoder": 16, "kernel_size_text_encoder": 15,
    "kernel_size_posterior_encoder": 15, "dilation_rate_posterior_encoder": 16,
    "num_layers_posterior_encoder": 32, "kernel_size_flow": 15, "dilation_rate_flow": 16,
    "num_layers_flow": 16, "upsample_initial_channel_decoder": 2048,
    "speaker_embedding_channels": 1024, "d_vector_dim": 4096, "embedded_language_dim": 1024,
}  # fmt: skip
"""Largest value of each size in ``model_args`` (defaults: 192 hidden channels, 6 text
encoder layers, 512 decoder channels...): coqui builds the model from the config before it
reads a weight, so a ``hidden_channels: 100000`` would take the memory first."""

MODEL_SIZE_LISTS = {
    "resblock_kernel_sizes_decoder": 15, "resblock_dilation_sizes_decoder": 64,
    "upsample_rates_decoder": 64, "upsample_kernel_sizes_decoder": 128,
    "periods_multi_period_discriminator": 64,
}  # fmt: skip
"""Largest entry of each list of sizes in ``model_args`` (each at most 8 lists of 8)."""

AUDIO_SIZES = {"fft_size": 8192, "win_length": 8192, "hop_length": 4096, "num_mels": 512}


def _refuse(message: str) -> InvalidVoiceFiles:
    return InvalidVoiceFiles(message, param="config")


def read_json(path: Path, *, param: str) -> dict[str, Any]:
    """A JSON object from ``path``; ``InvalidVoiceFiles`` if it is not one."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidVoiceFiles(f"The {param} file is not valid JSON.", param=param) from exc
    if not isinstance(raw, dict):
        raise InvalidVoiceFiles(f"The {param} file is not a JSON object.", param=param)
    return raw


def check_coqui_config(raw: dict[str, Any]) -> None:
    """Refuse a coqui config we cannot register; see the module docstring."""
    model = raw.get("model")
    if model != "vits" or raw.get("base_model") not in (None, "vits"):
        raise _refuse(
            f"Only coqui-tts VITS checkpoints are supported; this config is for {model!r}."
        )
    if raw.get("use_phonemes"):
        phonemizer = raw.get("phonemizer") or "espeak (coqui's default)"
        if not _one_of(phonemizer, PHONEMIZERS_AVAILABLE):
            raise _refuse(
                f"This config uses phonemes (phonemizer {phonemizer!r}), which is not available "
                "on this server; only character-based coqui configs (use_phonemes: false) "
                "can be registered."
            )
    cleaner = raw.get("text_cleaner")
    if cleaner is not None and not _one_of(cleaner, CLEANERS):
        raise _refuse(
            f"Text cleaner {cleaner!r} is not supported (supported: {', '.join(CLEANERS)})."
        )
    characters = raw.get("characters")
    if characters is not None:
        if not isinstance(characters, dict):
            raise _refuse("characters must be an object.")
        character_class = characters.get("characters_class")
        if character_class is not None and not _one_of(character_class, CHARACTER_CLASSES):
            raise _refuse(f"Character class {character_class!r} is not supported.")
        if characters.get("vocab_dict"):
            raise _refuse("Vocabulary files (characters.vocab_dict) are not supported.")
    args = raw.get("model_args")
    if not isinstance(args, dict):
        raise _refuse("The config has no model_args object; it is not a coqui VITS config.")
    if any(args.get(name) for name in _SPEAKER_SWITCHES) or _int(raw.get("num_speakers")) > 1:
        raise _refuse("Multi-speaker VITS configs are not supported; register one voice each.")
    if args.get("use_language_embedding"):
        raise _refuse("Multilingual VITS configs (language embeddings) are not supported.")
    for holder in (raw, args):
        for name in _PATH_FIELDS:
            if holder.get(name):
                raise _refuse(f"The config refers to another file ({name}); it must not.")
    audio = raw.get("audio")
    if not isinstance(audio, dict):
        raise _refuse("The config has no audio object.")
    _check_sizes(args, audio)
    rate = audio.get("sample_rate")
    if not isinstance(rate, int) or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise _refuse(
            f"audio.sample_rate must be an integer from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE}."
        )


def _one_of(value: Any, names: Collection[str]) -> bool:
    """Whether ``value`` is one of ``names`` (a config may hold a list or an object where a
    name belongs: not hashable, and not a name either)."""
    return isinstance(value, str) and value in names


def _check_sizes(args: dict[str, Any], audio: dict[str, Any]) -> None:
    for holder, limits, where in ((args, MODEL_SIZES, "model_args"), (audio, AUDIO_SIZES, "audio")):
        for name, most in limits.items():
            value = holder.get(name)
            if value is not None and not _size_ok(value, most):
                raise _refuse(f"{where}.{name} must be an integer from 0 to {most}.")
    for name, most in MODEL_SIZE_LISTS.items():
        value = args.get(name)
        if value is not None and not _sizes_ok(value, most):
            raise _refuse(f"model_args.{name} must be at most 8 integers (or lists of 8) "
                          f"from 0 to {most}.")  # fmt: skip


def _size_ok(value: Any, most: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= most


def _sizes_ok(value: Any, most: int, *, depth: int = 0) -> bool:
    if not isinstance(value, list) or len(value) > 8:
        return False
    if depth == 0 and all(isinstance(item, list) for item in value):
        return all(_sizes_ok(item, most, depth=1) for item in value)
    return all(_size_ok(item, most) for item in value)


def sanitized(raw: dict[str, Any]) -> dict[str, Any]:
    """A copy of a checked config with every path-valued field emptied, so the coqui code
    that builds the model never opens a file the uploader named."""
    clean: dict[str, Any] = json.loads(json.dumps(raw))
    clean.get("audio", {})["stats_path"] = None
    for key in ("output_path", "phoneme_cache_path"):
        clean[key] = None
    for dataset in clean.get("datasets") or []:
        if isinstance(dataset, dict):
            for key in ("path", "meta_file_train", "meta_file_val", "meta_file_attn_mask"):
                dataset[key] = ""
    return clean


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True, slots=True)
class TrimSilence:
    """coqui's ``find_endpoint`` after each sentence (``audio.do_trim_silence``)."""

    window: int
    """Silence that ends the audio, in samples (0.8 s)."""

    threshold: float
    """Amplitude under which a window counts as silent (``trim_db`` as amplitude)."""


@dataclass(frozen=True, slots=True)
class CoquiManifest:
    """What a registered coqui voice needs besides its ONNX model (``voice.onnx.json``)."""

    sample_rate: int
    """Rate of the model's audio, in Hertz."""

    vocab: tuple[str, ...]
    """Tokens in id order, as coqui's tokenizer built them from the config."""

    pad: str | None
    """Padding token (never produced from text)."""

    blank: str | None
    """Blank token (interspersed when ``add_blank``)."""

    bos: str | None
    """Beginning-of-sentence token."""

    eos: str | None
    """End-of-sentence token."""

    blank_id: int
    """Id of ``blank`` (coqui's value when it is unset: the vocabulary size)."""

    bos_id: int
    """Id of ``bos`` (likewise)."""

    eos_id: int
    """Id of ``eos`` (likewise)."""

    add_blank: bool
    """Blank between ids and at both ends."""

    use_eos_bos: bool
    """bos/eos around the ids."""

    text_cleaner: str | None
    """coqui cleaner name, or ``None``."""

    language: str | None
    """The model's one language as coqui names it (e.g. ``en``, ``ko``), or ``None``."""

    noise_scale: float
    """Default generator noise (``inference_noise_scale``)."""

    length_scale: float
    """Default duration scale (``length_scale``); larger is slower."""

    noise_scale_dp: float
    """Default duration-predictor noise (``inference_noise_scale_dp``)."""

    trim_silence: TrimSilence | None
    """Trailing-silence trimming per sentence, as coqui's Synthesizer does, or ``None``."""

    source: dict[str, str] = field(default_factory=dict)
    """Provenance: sha256 of the checkpoint and config, coqui-tts and torch versions."""

    format: str = MANIFEST_FORMAT
    """Manifest format tag."""

    def tokenizer(self) -> CoquiTokenizer:
        """The tokenizer this manifest describes."""
        return CoquiTokenizer(
            vocab=self.vocab,
            cleaner=self.text_cleaner,
            language=self.language,
            add_blank=self.add_blank,
            use_eos_bos=self.use_eos_bos,
            blank_id=self.blank_id,
            bos_id=self.bos_id,
            eos_id=self.eos_id,
        )

    @property
    def symbols(self) -> frozenset[str]:
        """Characters the voice can speak: its single-character tokens other than the
        special ones (what the seed's ``normalize_text`` kept)."""
        special = {self.pad, self.blank, self.bos, self.eos}
        return frozenset(t for t in self.vocab if len(t) == 1 and t not in special)

    @property
    def text_language(self) -> str:
        """Primary language for text normalization: Korean for a vocabulary of Hangul
        syllables without Latin letters (coqui names such a model "en" when its config
        names no language), else the model's language, else English."""
        hangul = any("\uac00" <= t <= "\ud7a3" for t in self.vocab)
        latin = any(t.isascii() and t.isalpha() for t in self.vocab)
        if hangul and not latin:
            return "ko"
        language = primary_language(self.language)
        return language.lower() if language else "en"

    def to_json(self) -> str:
        """The manifest as stored."""
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CoquiManifest:
        """Parse and check a stored manifest; ``InvalidVoiceFiles`` if it is not one."""
        if raw.get("format") != MANIFEST_FORMAT:
            raise _refuse("The voice config is not a VoicePocket coqui manifest.")
        try:
            trim = raw.get("trim_silence")
            manifest = cls(
                **{
                    **raw,
                    "vocab": tuple(raw["vocab"]),
                    "trim_silence": None if trim is None else TrimSilence(**trim),
                }
            )
        except (KeyError, TypeError) as exc:
            raise _refuse("The coqui manifest is incomplete or malformed.") from exc
        manifest._check()
        return manifest

    @classmethod
    def read(cls, path: Path) -> CoquiManifest:
        """Read a stored manifest file."""
        return cls.from_dict(read_json(path, param="config"))

    def _check(self) -> None:
        vocab = self.vocab
        if not vocab or len(vocab) > MAX_VOCAB or not all(isinstance(t, str) for t in vocab):
            raise _refuse(f"The vocabulary must be 1 to {MAX_VOCAB} strings.")
        if not MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise _refuse("The manifest's sample rate is out of range.")
        if self.text_cleaner is not None and self.text_cleaner not in CLEANERS:
            raise _refuse(f"Text cleaner {self.text_cleaner!r} is not supported.")
        used = [self.blank_id] if self.add_blank else []
        used += [self.bos_id, self.eos_id] if self.use_eos_bos else []
        if any(not 0 <= i < len(vocab) for i in used):
            raise _refuse(
                "The config adds blank or bos/eos tokens that its vocabulary does not have."
            )
        scales = (self.noise_scale, self.length_scale, self.noise_scale_dp)
        if not all(isinstance(s, int | float) and math.isfinite(s) and s >= 0 for s in scales):
            raise _refuse("The inference scales must be finite and not negative.")
        if self.length_scale <= 0:
            raise _refuse("length_scale must be positive.")
        if self.trim_silence is not None and self.trim_silence.window <= 0:
            raise _refuse("The silence-trimming window must be positive.")
        if not self.symbols:
            raise _refuse("The vocabulary has no characters to speak.")
