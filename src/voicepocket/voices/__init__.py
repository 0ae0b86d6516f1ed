"""Voices: loading a voice from its files and turning text chunks into PCM.

Owns the backends (Piper ONNX voices now; coqui VITS compiled to ONNX later), the static
validation of untrusted model files, and the probe that loads a voice in a throwaway
process at registration to measure its resident cost. Knows nothing of HTTP, storage or
users.
"""

from __future__ import annotations

from pathlib import Path

from voicepocket.errors import InvalidVoiceFiles
from voicepocket.voices.base import AudioChunk, SynthesisParams, TextProfile, Voice
from voicepocket.voices.coqui import CoquiVoice
from voicepocket.voices.deadline import INFERENCE_DEADLINE_S
from voicepocket.voices.piper import PiperVoice

Backend = type[PiperVoice] | type[CoquiVoice]

BACKENDS: dict[str, Backend] = {PiperVoice.kind: PiperVoice, CoquiVoice.kind: CoquiVoice}
"""Voice kind -> backend class; the kind is recorded with every registered voice."""


def backend(kind: str) -> Backend:
    """The backend class for a voice kind."""
    try:
        return BACKENDS[kind]
    except KeyError:
        raise InvalidVoiceFiles(f"Unknown voice kind {kind!r}.", param="kind") from None


def load_voice(
    kind: str, model_path: Path, *, threads: int, deadline_s: float = INFERENCE_DEADLINE_S
) -> Voice:
    """Load a registered voice of ``kind`` from its model file; each of its inference calls
    ends with ``InferenceTimeout`` past ``deadline_s``."""
    return backend(kind).load(model_path, threads=threads, deadline_s=deadline_s)


def read_profile(kind: str, model_path: Path) -> TextProfile:
    """What text preparation needs of a registered voice, without loading it."""
    return backend(kind).read_profile(model_path)


def convert_files(
    kind: str, model: Path, config: Path, *, out_dir: Path, coqui_python: Path | None
) -> tuple[Path, Path]:
    """A voice's files as uploaded -> as served: a coqui checkpoint + config is compiled to
    ONNX + manifest in ``out_dir`` (in the coqui environment); other kinds are served as
    uploaded."""
    if backend(kind) is not CoquiVoice:
        return model, config
    if coqui_python is None:
        raise InvalidVoiceFiles("This server does not register coqui checkpoints.", param="kind")
    return CoquiVoice.convert(model, config, out_dir=out_dir, python=coqui_python)


__all__ = [
    "AudioChunk",
    "CoquiVoice",
    "PiperVoice",
    "SynthesisParams",
    "TextProfile",
    "Voice",
    "backend",
    "convert_files",
    "load_voice",
    "read_profile",
]
