"""What every voice backend yields and takes: audio chunks and synthesis parameters."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Speech for one text chunk."""

    samples: np.ndarray
    """Mono float32 PCM in [-1, 1]."""

    sample_rate: int
    """Rate of ``samples`` in Hertz."""

    text: str
    """The text chunk these samples speak."""

    @property
    def duration_s(self) -> float:
        """Length of the chunk in seconds."""
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True, slots=True)
class SynthesisParams:
    """Per-request settings; ``None`` means the voice's own default."""

    speed: float = 1.0
    """Speaking rate multiplier (0.25-4.0); 2.0 speaks twice as fast."""

    noise_scale: float | None = None
    """Generator noise (VITS ``noise_scale``); 0 makes output deterministic."""

    noise_w: float | None = None
    """Duration predictor noise (VITS ``noise_scale_w``); 0 makes durations deterministic."""


class Voice(Protocol):
    """A loaded voice: owns an inference session until ``close()``."""

    sample_rate: int
    """Rate of the audio this voice produces, in Hertz."""

    symbols: frozenset[str]
    """Characters the voice can speak; text normalization drops everything else."""

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
