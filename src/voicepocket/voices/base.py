"""What every voice backend is: the ``Voice`` protocol and its ``TextProfile``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from voicepocket.chunks import AudioChunk, SynthesisParams

__all__ = ["AudioChunk", "SynthesisParams", "TextProfile", "Voice"]


@dataclass(frozen=True, slots=True)
class TextProfile:
    """What text preparation needs of a voice, read from its config without loading it."""

    symbols: frozenset[str]
    """Characters the voice can speak; text normalization drops everything else."""

    language: str
    """Primary language of the voice's text ("en", "ko"), for normalization."""


class Voice(Protocol):
    """A loaded voice: owns an inference session until ``close()``."""

    sample_rate: int
    """Rate of the audio this voice produces, in Hertz."""

    symbols: frozenset[str]
    """Characters the voice can speak; text normalization drops everything else."""

    language: str
    """Primary language of the voice's text ("en", "ko"), for normalization."""

    def sample_text(self) -> str:
        """A sentence in the voice's own symbols, used to warm it up and to probe it."""
        ...

    def synthesize(
        self, chunks: Iterable[str], params: SynthesisParams | None = None
    ) -> Iterator[AudioChunk]:
        """Yield one ``AudioChunk`` per text chunk, in order."""
        ...

    def close(self) -> None:
        """Release the session; the voice must not be used afterwards."""
        ...
