"""Voices: loading a voice from its files and turning text chunks into PCM.

Owns the backends (Piper ONNX voices now; coqui VITS compiled to ONNX later), the static
validation of untrusted model files, and the probe that loads a voice in a throwaway
process at registration to measure its resident cost. Knows nothing of HTTP, storage or
users.
"""

from __future__ import annotations

from pathlib import Path

from voicepocket.errors import InvalidVoiceFiles
from voicepocket.voices.base import AudioChunk, SynthesisParams, Voice
from voicepocket.voices.piper import PiperVoice

BACKENDS: dict[str, type[PiperVoice]] = {PiperVoice.kind: PiperVoice}
"""Voice kind -> backend class; the kind is recorded with every registered voice."""


def backend(kind: str) -> type[PiperVoice]:
    """The backend class for a voice kind."""
    try:
        return BACKENDS[kind]
    except KeyError:
        raise InvalidVoiceFiles(f"Unknown voice kind {kind!r}.", param="kind") from None


def load_voice(kind: str, model_path: Path, *, threads: int) -> Voice:
    """Load a registered voice of ``kind`` from its model file."""
    return backend(kind).load(model_path, threads=threads)


__all__ = ["AudioChunk", "PiperVoice", "SynthesisParams", "Voice", "backend", "load_voice"]
